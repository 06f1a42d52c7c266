"""``cello1.tl.solve``: run CellPuzzles through a model, with a resumable cache."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sc_cello1._config import SHARED_DOCS, doc_params
from sc_cello1._logging import logger
from sc_cello1._secrets import redact
from sc_cello1.data._prompts import PromptStyle
from sc_cello1.inference._base import BackendName

from ._solve_config import SolveConfig
from ._solve_run import (
    CACHE_VERSION,
    SolveError,
    cache_key,
    failure_error,
    key_settings,
    run_cached,
)

if TYPE_CHECKING:
    from sc_cello1.data import Puzzle
    from sc_cello1.inference import Backend
    from sc_cello1.models import ResolvedModel

__all__ = [
    "CACHE_VERSION",
    "SolveConfig",
    "SolveError",
    "SolveResult",
    "cache_key",
    "run_solve",
    "solve",
]

# Prompts per generate call when ``batch_size`` is not given, by backend.
_DEFAULT_BATCH = {"transformers": 8, "vllm": 1024, "openai": 64}


class SolveResult(list):
    """The records of :func:`solve` (a list of dicts) with a ``provenance`` dict."""

    def __init__(
        self, records: Sequence[dict[str, Any]] = (), provenance: dict[str, Any] | None = None
    ):
        super().__init__(records)
        self.provenance: dict[str, Any] = dict(provenance or {})

    def to_dataframe(self):
        """Return the records as a :class:`pandas.DataFrame` (one row per puzzle and sample)."""
        import pandas as pd

        return pd.DataFrame(list(self))


def _as_puzzles(puzzles: Any) -> list[Puzzle]:
    from sc_cello1.data import Puzzle

    if isinstance(puzzles, Puzzle):
        return [puzzles]
    if isinstance(puzzles, str | bytes | os.PathLike | Mapping) or not isinstance(
        puzzles, Sequence
    ):
        msg = (
            "`puzzles` must be a list of cello1.data.Puzzle (or CellPuzzles record dicts); "
            "read a file with `cello1.data.read_puzzles(path)` first."
        )
        raise TypeError(msg)
    if len(puzzles) == 0:
        msg = "`puzzles` is empty; give at least one puzzle."
        raise ValueError(msg)
    out = []
    for i, p in enumerate(puzzles):
        if isinstance(p, Puzzle):
            out.append(p)
        elif isinstance(p, Mapping):
            try:
                out.append(Puzzle.from_record(p))
            except (ValueError, TypeError) as e:
                msg = f"puzzles[{i}] is not a valid CellPuzzles record: {e}"
                raise ValueError(msg) from e
        else:
            msg = f"puzzles[{i}] is a {type(p).__name__}; expected a cello1.data.Puzzle or a record dict."
            raise TypeError(msg)
        if not out[-1].candidates or any(
            not isinstance(c, str) or not c.strip() for c in out[-1].candidates
        ):
            msg = f"puzzles[{i}] has no candidates or an empty candidate label; every puzzle needs non-empty labels."
            raise ValueError(msg)
        bad = [
            c
            for c in out[-1].candidates
            if "|" in c or any(t in c.lower() for t in ("<answer>", "</answer>", "</think>"))
        ]
        if bad:
            msg = (
                f"puzzles[{i}] has candidate {bad[0]!r}, which contains '|' or a tag of the "
                "answer format (<answer>, </answer>, </think>), so answers naming it could not "
                "be read; rename it."
            )
            raise ValueError(msg)
    return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


#: Characters of a completion kept in the records (head and tail, the answer at the end
#: always parsed from the whole text first); longer ones are cut in the middle and the
#: record's ``cut`` says how many characters went.
MAX_COMPLETION_CHARS = 100_000


def _cap(text: str | None, limit: int = MAX_COMPLETION_CHARS) -> tuple[str | None, int]:
    if text is None or len(text) <= limit:
        return text, 0
    cut = len(text) - limit
    head = limit // 2
    marker = f"\n[... {cut} characters cut by sc_cello1 ...]\n"
    return text[:head] + marker + text[len(text) - (limit - head) :], cut


def _record(
    puzzle: Puzzle, index: int, sample: int, gen: Mapping[str, Any], *, repair: bool, unique: bool
) -> dict[str, Any]:
    from sc_cello1._answer import (
        THINK_CLOSE,
        THINK_OPEN,
        extract_answer,
        extract_reasoning,
        is_permutation,
        is_valid_format,
        join_items,
        split_items,
    )
    from sc_cello1.inference import repair_items

    content = gen["text"]
    reasoning = gen.get("reasoning")
    if reasoning:
        text = f"{THINK_OPEN}{reasoning}{THINK_CLOSE}\n{content.lstrip()}"
    else:
        text = content
        reasoning = extract_reasoning(text) or None
    answer = extract_answer(text)
    items = split_items(answer)
    cands = puzzle.candidates
    valid = is_valid_format(text)
    kept, cut = _cap(text)
    text = kept or ""
    content = _cap(content)[0] or ""
    reasoning, _ = _cap(reasoning)
    return {
        "puzzle": index,
        "sample": sample,
        "text": text,
        "content": content,
        "reasoning": reasoning,
        "answer": answer,
        "items": items,
        "valid_format": valid,
        "is_permutation": is_permutation(items, cands),
        "repaired": repair_items(items, cands, n_items=puzzle.n_cells, unique=unique)
        if repair
        else None,
        "gold": join_items(puzzle.answer) if puzzle.answer is not None else None,
        "n_cells": puzzle.n_cells,
        "candidates": list(cands),
        "finish_reason": gen.get("finish_reason"),
        "n_tokens": gen.get("n_tokens", 0),
        "cut": cut,
    }


@doc_params(**SHARED_DOCS)
def solve(
    puzzles: Sequence[Puzzle] | Sequence[Mapping[str, Any]],
    *,
    model: str | os.PathLike | ResolvedModel | Backend,
    backend: BackendName = "auto",
    num_generations: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int = 3500,
    seed: int | None = 0,
    style: PromptStyle = "eval",
    constrained: bool = False,
    repair: bool = True,
    one_to_one: bool = True,
    answer_dir: str | os.PathLike | None = None,
    batch_size: int | None = None,
    backend_kwargs: Mapping[str, Any] | None = None,
    skip_failed: bool = False,
    unique: bool | None = None,
    n_samples: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> SolveResult:
    r"""Ask a model to solve CellPuzzles; one record per puzzle and sample.

    Every input is validated before any model is loaded. Prompts are sent in batches
    (longest first), so a batched backend pads little. With ``answer_dir``, each finished
    puzzle is written to its own file atomically, so an interrupted run resumes where it
    stopped; the cache key holds the prompt, the model's provenance and every sampling
    setting, so a changed setting is never served from an old entry.

    Parameters
    ----------
    puzzles
        :class:`~sc_cello1.data.Puzzle` objects or CellPuzzles record dicts
        (``system_msg``, ``user_msg``, ``assistant_msg``); read a file with
        :func:`~sc_cello1.data.read_puzzles`.
    {doc_model}
    {doc_backend}
    num_generations
        Completions per puzzle (use ``temperature > 0`` for different ones); the same
        word as :attr:`~sc_cello1.train.GRPOConfig.num_generations`.
    {doc_temperature}
    {doc_max_new_tokens}
        With ``constrained=True`` it must leave room for the tags and the longest answer;
        that is checked with the tokenizer alone, before the model loads
        (:func:`~sc_cello1.inference.check_answer_budget`).
    seed
        Random seed of sampling. Samples depend on how prompts are batched, so a resumed
        run can differ from an uninterrupted one when sampling (greedy runs do not).
    style
        Prompt layout (:func:`~sc_cello1.data.build_messages`): ``"eval"`` (the paper's
        evaluation prompt, what Cell-o1 expects), ``"sft"`` or ``"rl"``.
    constrained
        Restrict the answer to the candidates: with transformers, each answer is a
        permutation of the candidates by construction (reasoning stays free, up to a
        budget); with vLLM, a structured-output regex guarantees the format and that
        each item is a candidate; the openai backend ignores it.
    repair
        Add ``repaired``: one candidate per cell, near-miss labels mapped to candidates
        and duplicates resolved by a maximum-similarity assignment.
    one_to_one
        Each candidate at most once in ``repaired`` (and in constrained answers) when
        there are no more cells than candidates; ``False`` allows repeats (the same word
        as annotate's ``one_to_one``).
    {doc_answer_dir}
    {doc_batch_size}
    {doc_backend_kwargs}
    skip_failed
        ``False``: when puzzles fail (a request that failed after the client's retries),
        the others still run and are kept, and one :class:`~sc_cello1.tl.SolveError` at the end says
        how many failed, which, and how to go on. ``True``: return the records of the
        answered puzzles only, with a warning; ``provenance["failed"]`` lists the others.
    unique
        Deprecated name of ``one_to_one`` (warns; removed in the next release).
    n_samples
        Deprecated name of ``num_generations`` (warns; removed in the next release).
    cache_dir
        Deprecated name of ``answer_dir`` (warns; removed in the next release).

    Returns
    -------
    A :class:`SolveResult` (a list of dicts, puzzle-major, then sample) with keys
    ``puzzle`` (index), ``sample``, ``text`` (the completion; when a server returned the
    reasoning separately, ``<think>{reasoning}</think>\n{content}``), ``content`` (what
    the server returned as content), ``reasoning`` (the think part, or ``None``),
    ``answer`` (:func:`~sc_cello1.metrics.extract_answer`), ``items`` (raw answer items),
    ``valid_format`` (:func:`~sc_cello1.metrics.is_valid_format`), ``is_permutation``
    (raw items are exactly the candidates, case-insensitive), ``repaired`` (or ``None``
    with ``repair=False``), ``gold`` (the true answer joined by ``" | "``, or ``None``),
    ``n_cells``, ``candidates``, ``finish_reason``, ``n_tokens`` and ``cut`` (characters
    cut from the middle of ``text`` beyond 100,000 characters; the answer is
    read from the whole text first). Its ``provenance``
    attribute records the backend, model, revision, settings and package version.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> puzzles = cello1.data.read_puzzles("test.parquet")  # doctest: +SKIP
    >>> records = cello1.tl.solve(puzzles, model="cell-o1", answer_dir="runs/answers")  # doctest: +SKIP
    >>> cello1.metrics.evaluate([r["text"] for r in records], puzzles)  # doctest: +SKIP
    """
    given = dict(locals())
    items = given.pop("puzzles")
    return run_solve(items, SolveConfig.from_locals(given))


def run_solve(puzzles: Any, config: SolveConfig) -> SolveResult:
    """Run :func:`solve` with its settings checked (see there); the stages of a solve."""
    from sc_cello1._answer import one_each
    from sc_cello1.inference import AnswerConstraint, check_answer_budget

    from ._verb_options import check_model_and_backend

    # -- validate everything before any loading -----------------------------------------
    items = _as_puzzles(puzzles)
    model, backend_name = check_model_and_backend(
        config.model, config.backend, config.backend_kwargs
    )
    kwargs = dict(config.backend_kwargs or {})
    batch_size = config.batch_size or _DEFAULT_BATCH.get(backend_name, 8)
    messages = [p.messages(config.style) for p in items]
    constraints = None
    if config.constrained:
        constraints = [
            AnswerConstraint(
                tuple(p.candidates),
                p.n_cells,
                unique=one_each(config.one_to_one, p.n_cells, len(p.candidates)),
            )
            for p in items
        ]
        if backend_name in ("transformers", "vllm"):
            # Only the tokenizer is read here; the model loads below.
            check_answer_budget(model, constraints, max_new_tokens=config.max_new_tokens)

    # -- load, then run, resuming from the cache; each answer is stored as it arrives ---
    runner = _load(model, backend_name, kwargs, batch_size)
    prov = redact(_jsonable(runner.provenance()))
    keys, old_keys = _keys(messages, constraints, prov, config)
    outcome = run_cached(
        messages,
        keys,
        runner,
        n=config.num_generations,
        temperature=config.temperature,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
        batch_size=batch_size,
        answer_dir=config.answer_dir,
        constraints=constraints,
        order=lambda i: -len(items[i].user_msg),
        old_keys=old_keys,
    )
    _log_speed(outcome, config.num_generations)
    if outcome.failed:
        error = failure_error(outcome, len(items), config.answer_dir)
        if not config.skip_failed:
            raise error
        logger.warning("%s Their records are left out (skip_failed=True).", error)
    done = outcome.done
    records = [
        _record(p, i, j, done[i][j], repair=config.repair, unique=config.one_to_one)
        for i, p in enumerate(items)
        if i in done
        for j in range(config.num_generations)
    ]
    return SolveResult(records, _provenance(prov, config, batch_size, len(items), outcome, records))


def _load(model: Any, backend_name: str, kwargs: dict[str, Any], batch_size: int) -> Backend:
    """Return the backend: ``model`` itself when it is one, else built (the model loads)."""
    from sc_cello1.inference import Backend, get_backend

    if isinstance(model, Backend):
        return model
    if backend_name == "transformers":
        kwargs.setdefault("batch_size", batch_size)
    if backend_name != "openai":
        from sc_cello1.models import resolve

        model = resolve(model)  # once; the backend takes the record as it is
    return get_backend(model, backend_name, **kwargs)


def _keys(
    messages: list[Any], constraints: list[Any] | None, prov: Mapping[str, Any], config: SolveConfig
) -> tuple[list[str], list[str]]:
    """Return the cache key of every puzzle, and the key the previous release gave it.

    The key names the completions per puzzle ``num_generations``; until this release it
    said ``n_samples``, and entries stored under those keys are still read.
    """
    common = {
        "temperature": float(config.temperature),
        "max_new_tokens": config.max_new_tokens,
        "seed": config.seed,
        "constraint": None,
    }
    n = config.num_generations
    settings = key_settings(prov, num_generations=n, **common)
    old_settings = key_settings(prov, n_samples=n, **common)
    keys, old_keys = [], []
    for i, m in enumerate(messages):
        s, old = dict(settings), dict(old_settings)
        if constraints is not None:
            c = constraints[i]
            s["constraint"] = old["constraint"] = [list(c.candidates), c.n_items, c.unique]
        keys.append(cache_key(m, s))
        old_keys.append(cache_key(m, old))
    return keys, old_keys


def _log_speed(outcome: Any, num_generations: int) -> None:
    n_new = len(outcome.done) - outcome.n_from_cache
    if n_new:
        elapsed = outcome.seconds
        logger.info(
            "solved %d puzzles x %d samples in %.1f s (%.1f puzzles/min, %d new tokens)",
            n_new,
            num_generations,
            elapsed,
            60 * n_new / elapsed if elapsed else float("inf"),
            outcome.n_tokens,
        )


def _provenance(
    prov: Mapping[str, Any],
    config: SolveConfig,
    batch_size: int,
    n_puzzles: int,
    outcome: Any,
    records: list[dict[str, Any]],
) -> dict[str, Any]:
    """Return what ``SolveResult.provenance`` records: the backend's and the settings."""
    from sc_cello1._version import __version__
    from sc_cello1.data import PROMPT_VERSION

    return {
        **prov,
        "num_generations": config.num_generations,
        "temperature": float(config.temperature),
        "max_new_tokens": config.max_new_tokens,
        "seed": config.seed,
        "style": config.style,
        "constrained": config.constrained,
        "repair": config.repair,
        "one_to_one": config.one_to_one,
        "batch_size": batch_size,
        "prompt_version": PROMPT_VERSION,
        "sc_cello1": __version__,
        "n_puzzles": n_puzzles,
        "n_from_cache": outcome.n_from_cache,
        "seconds": outcome.seconds,
        "failed": {str(i): e for i, e in sorted(outcome.failed.items())},
        "max_completion_chars": MAX_COMPLETION_CHARS,
        "n_cut": sum(1 for r in records if r["cut"]),
    }

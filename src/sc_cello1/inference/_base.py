"""The backend Protocol, the :class:`Generation` record and answer constraints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args, runtime_checkable

#: Default cap on new tokens per completion (the paper's evaluation uses 3,500).
DEFAULT_MAX_NEW_TOKENS = 3500

#: A name accepted by ``backend=`` (``"auto"``: see :func:`~sc_cello1.inference.choose_backend`).
BackendName = Literal["auto", "transformers", "vllm", "openai"]

#: Names accepted by ``backend=`` (the choices of :data:`BackendName`).
BACKENDS: tuple[str, ...] = get_args(BackendName)


@dataclass
class Generation:
    """One completion returned by a backend.

    Attributes
    ----------
    text
        The generated text (for servers that split reasoning off: the content only).
    reasoning
        The think part when the server returned it separately as ``reasoning_content``;
        ``None`` otherwise (in-process backends keep it inside :attr:`text`).
    finish_reason
        ``"stop"`` (end of sequence), ``"length"`` (hit ``max_new_tokens``) or what the
        server reported.
    n_tokens
        Number of generated tokens (``0`` when a server does not report usage).
    """

    text: str
    reasoning: str | None = None
    finish_reason: str = "stop"
    n_tokens: int = 0


@dataclass(frozen=True)
class AnswerConstraint:
    r"""What a valid ``<answer>`` is for one prompt (for constrained decoding).

    Attributes
    ----------
    candidates
        The labels an answer item may take.
    n_items
        Number of items in the answer (the number of cells).
    unique
        Each candidate at most once (a permutation when ``n_items == len(candidates)``).
    think_budget
        Reasoning allowed before ``</think>\n<answer>`` is forced: new tokens with
        transformers, characters of the structured-output regex with vLLM; ``None``: as
        much as ``max_new_tokens`` leaves room for (transformers) or unbounded (vLLM).

    Examples
    --------
    >>> from sc_cello1.inference import AnswerConstraint
    >>> AnswerConstraint(("B cell", "T cell"), 2).unique
    True
    """

    candidates: tuple[str, ...]
    n_items: int
    unique: bool = True
    think_budget: int | None = None

    def __post_init__(self) -> None:
        if not self.candidates:
            msg = "An AnswerConstraint needs at least one candidate."
            raise ValueError(msg)
        if self.n_items < 1:
            msg = f"n_items={self.n_items} must be at least 1."
            raise ValueError(msg)
        if self.unique and self.n_items > len(self.candidates):
            msg = (
                f"{self.n_items} answer items cannot be distinct with only "
                f"{len(self.candidates)} candidates; set unique=False."
            )
            raise ValueError(msg)


@runtime_checkable
class Backend(Protocol):
    """A chat model that generates completions for a batch of conversations.

    Every backend (:class:`~sc_cello1.inference.TransformersBackend`,
    :class:`~sc_cello1.inference.VLLMBackend`, :class:`~sc_cello1.inference.OpenAIBackend`)
    implements this; so can any user object with the same two methods.
    """

    def generate(
        self,
        messages: list[list[dict[str, str]]],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        seed: int | None = None,
        constraints: Sequence[AnswerConstraint | None] | None = None,
    ) -> list[list[Generation]]:
        """Generate ``n`` completions for each conversation.

        Parameters
        ----------
        messages
            One list of ``{"role", "content"}`` dicts per prompt.
        n
            Completions per prompt.
        temperature
            ``0``: greedy decoding; above ``0``: sampling at that temperature.
        max_new_tokens
            Cap on generated tokens per completion.
        seed
            Random seed for sampling (``None``: not seeded).
        constraints
            ``None``, or one :class:`AnswerConstraint` (or ``None``) per prompt: the
            answer part is then restricted to the candidates, where the backend can.

        Returns
        -------
        One list of ``n`` :class:`Generation` per prompt, in prompt order.
        """
        ...

    def provenance(self) -> dict[str, Any]:
        """Backend name (key ``backend``), model name (key ``model``), revision, path, dtype, ..."""
        ...


def check_generate_args(
    messages: Any,
    *,
    n: int,
    temperature: float,
    max_new_tokens: int,
    constraints: Sequence[AnswerConstraint | None] | None,
) -> None:
    """Validate the arguments of :meth:`Backend.generate` (raises ValueError/TypeError)."""
    if not isinstance(messages, list) or any(not isinstance(m, list) for m in messages):
        msg = "`messages` must be a list with one list of chat messages per prompt."
        raise TypeError(msg)
    for conv in messages:
        if not conv or any(
            not isinstance(m, dict) or "role" not in m or "content" not in m for m in conv
        ):
            msg = (
                "Each conversation must be a non-empty list of {'role': ..., 'content': ...} dicts."
            )
            raise ValueError(msg)
    check_sampling(n=n, temperature=temperature, max_new_tokens=max_new_tokens)
    if constraints is not None and len(constraints) != len(messages):
        msg = f"`constraints` has {len(constraints)} entries for {len(messages)} prompts; give one per prompt (or None)."
        raise ValueError(msg)


def check_sampling(*, n: int, temperature: float, max_new_tokens: int, seed: Any = None) -> None:
    """Validate sampling settings (shared by backends and :func:`~sc_cello1.tl.solve`)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        msg = f"The number of samples must be an integer >= 1, got {n!r}."
        raise ValueError(msg)
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not math.isfinite(temperature)
        or temperature < 0
    ):
        msg = f"temperature={temperature!r} must be a finite number >= 0 (0 means greedy decoding)."
        raise ValueError(msg)
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        msg = f"max_new_tokens={max_new_tokens!r} must be an integer >= 1."
        raise ValueError(msg)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        msg = f"seed={seed!r} must be an integer or None."
        raise TypeError(msg)

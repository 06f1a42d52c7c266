"""The settings of ``tl.solve``: :class:`SolveConfig`, one frozen dataclass.

``tl.solve`` keeps its keyword signature and builds this first (every setting checked
before a model loads); the run takes it, the provenance of the records comes from it,
and ``cello1 solve`` generates its options from the fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from sc_cello1._config import VerbConfig, option
from sc_cello1.data._prompts import PromptStyle
from sc_cello1.inference._base import BackendName

from ._verb_options import (
    answer_dir_option,
    backend_kwargs_option,
    backend_option,
    batch_size_option,
    check_seed,
    flag_check,
    max_new_tokens_option,
    model_option,
    temperature_option,
)

__all__ = ["SolveConfig"]


def _check_num_generations(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"num_generations={value!r} must be an integer >= 1 (completions per puzzle)."
        raise ValueError(msg)


def _check_style(value: Any) -> None:
    from sc_cello1.data import PROMPT_STYLES

    if value not in PROMPT_STYLES:
        msg = f"style={value!r} is not a prompt style; use one of {list(PROMPT_STYLES)}."
        raise ValueError(msg)


@dataclasses.dataclass(frozen=True)
class SolveConfig(VerbConfig):
    """Every setting of :func:`sc_cello1.tl.solve` but the puzzles, checked when built.

    The fields are the keywords of :func:`~sc_cello1.tl.solve` (documented there);
    ``n_samples=``, ``unique=`` and ``cache_dir=`` are the previous release's names of
    ``num_generations``, ``one_to_one`` and ``answer_dir`` (a FutureWarning).

    Examples
    --------
    >>> from sc_cello1.tl._solve_config import SolveConfig
    >>> SolveConfig(model="cell-o1", num_generations=4, temperature=0.7).style
    'eval'
    """

    _VERB: ClassVar[str] = "solve"
    _OLD_NAMES: ClassVar[Mapping[str, str]] = {
        "n_samples": "num_generations",
        "unique": "one_to_one",
        "cache_dir": "answer_dir",
    }

    model: Any = model_option()
    backend: BackendName = backend_option()
    num_generations: int = option(
        1,
        help="Completions per puzzle (use a temperature above 0 for different ones).",
        validate=_check_num_generations,
    )
    temperature: float = temperature_option()
    max_new_tokens: int = max_new_tokens_option()
    seed: int | None = option(0, help="Random seed of sampling.", validate=check_seed)
    style: PromptStyle = option(
        "eval",
        help="Prompt layout: eval (the paper's evaluation prompt), sft or rl.",
        validate=_check_style,
    )
    constrained: bool = option(
        False, help="Constrain the answers to the candidates.", validate=flag_check("constrained")
    )
    repair: bool = option(
        True,
        help="Add 'repaired': one candidate per cell, near misses mapped to candidates.",
        validate=flag_check("repair"),
    )
    one_to_one: bool = option(
        True,
        help="Each candidate at most once in 'repaired' and constrained answers, where there "
        "are no more cells than candidates.",
        validate=flag_check("one_to_one"),
    )
    answer_dir: Any = answer_dir_option(
        "Resumable cache folder of finished puzzles (the command line's default: "
        "OUTPUT + '.cache')."
    )
    batch_size: int | None = batch_size_option()
    backend_kwargs: Mapping[str, Any] | None = backend_kwargs_option()
    skip_failed: bool = option(
        False,
        help="Return the answered puzzles only (with a warning) when some fail.",
        validate=flag_check("skip_failed"),
    )

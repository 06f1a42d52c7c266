"""The settings of ``tl.benchmark``: :class:`BenchmarkConfig`, one frozen dataclass.

``tl.benchmark`` keeps its keyword signature and builds this first (every setting
checked before any download); ``cello1 benchmark`` generates its options from the
fields. ``cache_dir`` is the root of the downloaded weights and datasets (what
``settings.cache_dir`` is for the whole session; the answers of ``annotate`` and
``solve`` are kept in their ``answer_dir``, here in ``output_dir``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from sc_cello1._config import VerbConfig, option
from sc_cello1.data._cellpuzzles import Split
from sc_cello1.data._leakage import LeakageBy
from sc_cello1.inference._base import BackendName

from ._verb_options import (
    backend_kwargs_option,
    backend_option,
    batch_size_option,
    check_seed,
    flag_check,
    max_new_tokens_option,
    model_option,
)

__all__ = ["BenchmarkConfig"]


def _check_split(value: Any) -> None:
    from sc_cello1.data import SPLITS

    if value not in SPLITS:
        msg = f"split={value!r} is not a CellPuzzles split; use one of {list(SPLITS)}."
        raise ValueError(msg)


def _check_limit(value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        msg = f"limit={value!r} must be a whole number >= 1 (or None for the whole split)."
        raise ValueError(msg)


def _check_leakage_by(value: Any) -> None:
    if value not in ("ranked", "set"):
        msg = f"leakage_by={value!r} must be 'ranked' or 'set'."
        raise ValueError(msg)


def _check_output_dir(value: Any) -> None:
    if not isinstance(value, str | os.PathLike):
        msg = f"output_dir must be a folder path, got {type(value).__name__}."
        raise TypeError(msg)


def _check_data_revision(value: Any) -> None:
    if not isinstance(value, str) or not value:
        msg = (
            f"data_revision={value!r} must be a commit of ncbi/CellPuzzles or 'main' "
            "(the default: the hub's current commit, resolved once and recorded)."
        )
        raise ValueError(msg)


def _check_cache_dir(value: Any) -> None:
    if value is not None and not isinstance(value, str | os.PathLike):
        msg = f"cache_dir must be a folder path or None, got {type(value).__name__}."
        raise TypeError(msg)


def _check_mirror(value: Any) -> None:
    if value is not None and not isinstance(value, str):
        msg = f"mirror must be a base URL (a string) or None, got {type(value).__name__}."
        raise TypeError(msg)


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig(VerbConfig):
    """Every setting of :func:`sc_cello1.tl.benchmark`, checked when built.

    The fields are the keywords of :func:`~sc_cello1.tl.benchmark` (documented there).

    Examples
    --------
    >>> from sc_cello1.tl._benchmark_config import BenchmarkConfig
    >>> BenchmarkConfig(model="cell-o1", output_dir="bench").split
    'test'
    """

    _VERB: ClassVar[str] = "benchmark"

    model: Any = model_option(required=True)
    output_dir: Any = option(
        help="Folder for the results and the resumable cache.",
        validate=_check_output_dir,
        flag=("-o", "--output-dir"),
        cli_kwargs={"type": str, "required": True, "metavar": "OUTPUT_DIR"},
    )
    split: Split = option("test", help="Dataset split (test: the paper's).", validate=_check_split)
    data_revision: str = option(
        "main",
        help="Dataset revision: a commit, or 'main' (resolved once to the hub's current "
        "commit and recorded).",
        validate=_check_data_revision,
    )
    limit: int | None = option(
        None,
        help="Run K puzzles, stratified by N (a quick look; not comparable with the paper).",
        validate=_check_limit,
    )
    max_new_tokens: int = max_new_tokens_option()
    leakage_by: LeakageBy = option(
        "ranked",
        help="Clean subset: no identical ranked gene list (ranked) or gene set (set) in train.",
        validate=_check_leakage_by,
    )
    backend: BackendName = backend_option()
    batch_size: int | None = batch_size_option()
    seed: int | None = option(
        0, help="Seed of the --limit subset (and of the backend).", validate=check_seed
    )
    cache_dir: Any = option(
        None,
        help="Root of the downloaded weights and datasets (default: settings.cache_dir, "
        "$CELLO1_CACHE_DIR).",
        validate=_check_cache_dir,
        cli_kwargs={"type": str, "metavar": "DIR"},
    )
    mirror: str | None = option(
        None,
        help="Base URL of a hub mirror (default: $CELLO1_MIRROR or the hub).",
        validate=_check_mirror,
    )
    download: bool = option(
        True,
        help="Fetch what is missing; False: make no request (all must be cached).",
        validate=flag_check("download"),
        cli=False,  # the command line's --offline
    )
    backend_kwargs: Mapping[str, Any] | None = backend_kwargs_option()

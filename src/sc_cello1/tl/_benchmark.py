"""``cello1.tl.benchmark``: a model on the public CellPuzzles split, next to the paper."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sc_cello1._logging import logger

if TYPE_CHECKING:
    import pandas as pd

from sc_cello1._config import SHARED_DOCS, doc_params
from sc_cello1.data._cellpuzzles import Split
from sc_cello1.data._leakage import LeakageBy
from sc_cello1.inference._base import BackendName

from ._benchmark_config import BenchmarkConfig
from ._benchmark_report import OUTPUT_FILES, summary_text, write_files

__all__ = ["OUTPUT_FILES", "BenchmarkResult", "benchmark", "run_benchmark", "stratified_subset"]

_SOLVE_CACHE = "solve-cache"
_PAPER_MAX_NEW_TOKENS = 3500


def stratified_subset(sizes: Sequence[int], limit: int | None, *, seed: int = 0) -> list[int]:
    """Pick ``limit`` puzzle indices stratified by size N, deterministically.

    Each N gets a share of ``limit`` proportional to its count (rounded by largest
    remainders, sizes still without a puzzle first), at least one puzzle per N when
    ``limit`` allows it; the puzzles of each N are drawn with
    ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    sizes
        The size N of every puzzle.
    limit
        How many to keep; ``None`` or at least ``len(sizes)``: all of them.
    seed
        Seed of the draw.

    Returns
    -------
    The chosen indices, in increasing order.

    Examples
    --------
    >>> stratified_subset([8, 8, 8, 8, 9, 9, 10, 10], 3)
    [3, 5, 7]
    """
    import numpy as np

    total = len(sizes)
    if limit is None or limit >= total:
        return list(range(total))
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(sizes):
        groups.setdefault(int(n), []).append(i)
    raw = {n: limit * len(g) / total for n, g in groups.items()}
    quota = {n: math.floor(r) for n, r in raw.items()}
    # largest remainders first, sizes without a puzzle yet before the others
    order = sorted(groups, key=lambda n: (quota[n] > 0, quota[n] - raw[n], n))
    for n in order[: limit - sum(quota.values())]:
        quota[n] += 1
    if limit >= len(groups):
        for n in sorted(groups):
            if quota[n] == 0:
                donor = max(groups, key=lambda m: (quota[m], -m))
                quota[donor] -= 1
                quota[n] = 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for n in sorted(groups):
        k = min(quota[n], len(groups[n]))
        if k:
            chosen += [int(i) for i in rng.choice(groups[n], size=k, replace=False)]
    return sorted(chosen)


@dataclass
class BenchmarkResult:
    """What :func:`benchmark` measured, and where it wrote it.

    Attributes
    ----------
    table
        :func:`~sc_cello1.metrics.benchmark_table`: metrics per N and overall, for the
        ``"full"`` set of puzzles run and its ``"clean"`` subset.
    reported
        :func:`~sc_cello1.metrics.reported_figures`: the published figures (quoted).
    provenance
        Model (name, revision, file hashes), backend, dataset (revision, file hashes),
        prompt version, settings and package version.
    files
        ``{"csv", "json", "png", "predictions"}`` -> path (``png`` is missing without
        matplotlib).
    """

    table: pd.DataFrame
    reported: pd.DataFrame
    provenance: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        """Return the table as text, with the reported figures and the provenance, for printing."""
        return summary_text(self.table, self.reported, self.provenance)


@contextlib.contextmanager
def _model_cache(cache_dir: str | os.PathLike | None, mirror: str | None) -> Iterator[None]:
    """Let the backend resolve the model with ``cache_dir``/``mirror`` (restored after)."""
    from sc_cello1._settings import settings

    changes = {"cache_dir": cache_dir, "mirror": mirror}
    with settings.override(**{k: v for k, v in changes.items() if v is not None}):
        yield


def _pinned(model: Any, backend_name: str, cache_dir: Any, download: bool) -> Any:
    """Return a registered model as ``name@<commit>``, fetched (or found) here, once.

    The backend then finds it complete in the cache and makes no request, and a moving
    name such as ``main`` is resolved only once.
    """
    if backend_name == "openai" or not isinstance(model, str):
        return model
    from sc_cello1.models import check_model, resolve
    from sc_cello1.models._registry import split_revision

    if check_model(model) != "registry":
        return model
    resolved = resolve(model, download=download, cache_dir=cache_dir)  # settings.mirror
    if resolved.source != "registry":
        return model  # the GGUF fallback of smollm2-135m: the backend falls back again
    name = model if "@" not in model else split_revision(model)[0]
    return f"{name}@{resolved.revision}"


@doc_params(**SHARED_DOCS)
def benchmark(
    *,
    model: str | os.PathLike,
    output_dir: str | os.PathLike,
    split: Split = "test",
    data_revision: str = "main",
    limit: int | None = None,
    max_new_tokens: int = _PAPER_MAX_NEW_TOKENS,
    leakage_by: LeakageBy = "ranked",
    backend: BackendName = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    mirror: str | None = None,
    download: bool = True,
    backend_kwargs: Mapping[str, Any] | None = None,
) -> BenchmarkResult:
    """Evaluate a model on the public CellPuzzles split as the paper did, full and clean.

    Fetches the split (and the train split, for the leakage screen) with
    :func:`~sc_cello1.data.cellpuzzles`, runs :func:`~sc_cello1.tl.solve` with the
    paper's evaluation prompting (``style="eval"``, greedy, up to 3,500 new tokens),
    resumable through a cache in ``output_dir``, and scores the answers per puzzle size
    N and overall with :func:`~sc_cello1.metrics.benchmark_table`, for every puzzle run
    and for the clean subset (no cell with an identical ranked gene list in the train
    split, :func:`~sc_cello1.data.leakage`), next to the published figures.

    Parameters
    ----------
    model
        A registered name (``"cell-o1"``, ``"cell-o1@<revision>"``), a model folder, a
        ``.gguf`` file, or with ``backend="openai"`` the name the server knows.
    output_dir
        Folder for the results (``benchmark.csv``, ``benchmark.json``, ``benchmark.png``,
        ``predictions.jsonl``) and the resumable cache (``solve-cache/``). A rerun with
        the same settings reuses every finished puzzle.
    split
        ``"test"`` (the paper's), ``"train"`` or ``"reasoning"``.
    data_revision
        Revision of the dataset: a commit, or ``"main"`` (the default, the hub's
        convention: resolved once to the hub's current commit, which is recorded in
        ``benchmark.json``).
    limit
        Run a subset of this many puzzles, stratified by N (deterministic with
        ``seed``), for a quick look; ``None``: the whole split.
    {doc_max_new_tokens}
    leakage_by
        ``"ranked"`` (identical ranked gene list) or ``"set"`` (identical gene set).
    {doc_backend}
    {doc_batch_size}
    seed
        Seed of the ``limit`` subset (and of the backend; greedy decoding ignores it).
    cache_dir
        Root of the downloaded weights and datasets (as ``settings.cache_dir``, the same
        word everywhere); default ``settings.cache_dir`` (``$CELLO1_CACHE_DIR``). Not an
        answer cache: the answers are kept in ``output_dir``.
    mirror
        Base URL of a hub mirror for the dataset and for models from the hub (as
        ``settings.mirror``; a model registered with its own server keeps it); default
        ``settings.mirror`` (``$CELLO1_MIRROR``), else the hub.
    download
        If ``False``, make no request: the dataset and a registered model must be cached.
    {doc_backend_kwargs}

    Returns
    -------
    A :class:`BenchmarkResult`; its files are written to ``output_dir``.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> result = cello1.tl.benchmark(
    ...     model="cell-o1", data_revision="main", output_dir="bench/cell-o1"
    ... )  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    """
    return run_benchmark(BenchmarkConfig.from_locals(locals()))


def run_benchmark(config: BenchmarkConfig) -> BenchmarkResult:
    """Run :func:`benchmark` with its settings checked (see there)."""
    from sc_cello1.inference import get_backend
    from sc_cello1.metrics import benchmark_table, reported_figures

    from ._solve import solve

    out, backend_name, batch_size = _check(config)
    data = _fetch_data(config)
    subset = [data.puzzles[i] for i in data.chosen]

    # -- model and answers ---------------------------------------------------------------------
    kwargs = dict(config.backend_kwargs or {})
    if backend_name == "transformers":
        kwargs.setdefault("batch_size", batch_size)
    with _model_cache(config.cache_dir, config.mirror):
        model = _pinned(config.model, backend_name, config.cache_dir, config.download)
        runner = get_backend(model, backend_name, **kwargs)
    resolved = getattr(runner, "resolved", None)
    start = time.perf_counter()
    try:
        records = solve(
            subset,
            model=runner,
            num_generations=1,
            temperature=0.0,
            max_new_tokens=config.max_new_tokens,
            seed=config.seed,
            style="eval",
            constrained=False,
            answer_dir=out / _SOLVE_CACHE,
            batch_size=batch_size,
        )
    finally:
        close = getattr(runner, "close", None)
        if callable(close):
            close()  # the connection pool of an openai backend
    seconds = time.perf_counter() - start
    table = benchmark_table([r["text"] for r in records], subset, clean=data.clean)
    reported = reported_figures()
    provenance = _provenance(config, data, records.provenance, resolved, backend_name, seconds)
    files = write_files(
        out, table, reported, provenance, records, chosen=data.chosen, clean=data.clean
    )
    logger.info("benchmark of %s written to %s", provenance["model"]["name"], out)
    return BenchmarkResult(table=table, reported=reported, provenance=provenance, files=files)


def _check(config: BenchmarkConfig) -> tuple[Path, str, int]:
    """Check what the config cannot alone; return the output folder, backend and batch size."""
    from sc_cello1.inference._factory import check_backend_args

    from ._solve import _DEFAULT_BATCH

    out = Path(config.output_dir).expanduser()
    if out.is_file():
        msg = f"output_dir={str(out)!r} is a file; give a folder."
        raise ValueError(msg)
    kwargs = dict(config.backend_kwargs or {})
    backend_name = check_backend_args(config.model, config.backend, **kwargs)
    if not config.download and backend_name != "openai":
        from sc_cello1.models import check_model

        check_model(config.model, download=False, cache_dir=config.cache_dir)
    batch_size = config.batch_size or _DEFAULT_BATCH.get(backend_name, 8)
    return out, backend_name, batch_size


@dataclass
class _Data:
    """The split, the puzzles chosen from it, and which of them are clean."""

    puzzles: list
    chosen: list[int]
    clean: list[bool] | None
    leaked: list[bool] | None
    commit: str
    train_sha: str | None


def _fetch_data(config: BenchmarkConfig) -> _Data:
    from sc_cello1.data import cellpuzzles, leakage

    def fetch(which: str, revision: str) -> list:
        return cellpuzzles(
            which,
            revision=revision,
            cache_dir=config.cache_dir,
            mirror=config.mirror,
            download=config.download,
        )

    split = config.split
    puzzles = fetch(split, config.data_revision)
    if any(p.answer is None for p in puzzles):
        msg = f"Some puzzles of the {split!r} split have no answer to score against."
        raise ValueError(msg)
    commit = puzzles[0].meta["revision"]
    leaked = None
    train_sha = None
    if split != "train":
        train = fetch("train", commit)
        train_sha = train[0].meta["sha256"] if train else None
        leaked = leakage(train, puzzles, by=config.leakage_by)["leaked"].tolist()  # type: ignore[arg-type]
    chosen = stratified_subset([p.n_cells for p in puzzles], config.limit, seed=config.seed or 0)
    clean = None if leaked is None else [not leaked[i] for i in chosen]
    return _Data(puzzles, chosen, clean, leaked, commit, train_sha)


def _provenance(
    config: BenchmarkConfig,
    data: _Data,
    sp: Mapping[str, Any],
    resolved: Any,
    backend_name: str,
    seconds: float,
) -> dict[str, Any]:
    """Return what ``benchmark.json`` records: model, backend, dataset, settings, version."""
    from sc_cello1._version import __version__
    from sc_cello1.data._prompts import PROMPT_VERSION
    from sc_cello1.inference._resolve import model_name_of

    split, puzzles, leaked, clean = config.split, data.puzzles, data.leaked, data.clean
    return {
        "model": {
            "name": model_name_of(sp),
            "revision": sp.get("revision"),
            "repo": sp.get("repo"),
            "source": sp.get("source"),
            "path": sp.get("path"),
            "files": dict(sorted(resolved.files.items())) if resolved is not None else {},
        },
        "backend": sp.get("backend", backend_name),
        "dataset": {
            "repo": puzzles[0].meta["dataset"],
            "revision": data.commit,
            "split": split,
            "files": {
                f"data/{split}-00000-of-00001.parquet": puzzles[0].meta["sha256"],
                **({"data/train-00000-of-00001.parquet": data.train_sha} if data.train_sha else {}),
            },
        },
        "prompt_style": "eval",
        "prompt_version": PROMPT_VERSION,
        "greedy": True,
        "max_new_tokens": config.max_new_tokens,
        "limit": config.limit,
        "seed": config.seed,
        "leakage_by": config.leakage_by if leaked is not None else None,
        "n_puzzles_split": len(puzzles),
        "n_puzzles": len(data.chosen),
        "n_clean": None if clean is None else sum(clean),
        "n_clean_split": None if leaked is None else len(leaked) - sum(leaked),
        "puzzles": data.chosen,
        "n_from_cache": sp.get("n_from_cache"),
        "seconds": seconds,
        "comparable_to_reported": split == "test"
        and len(data.chosen) == len(puzzles)
        and config.max_new_tokens >= _PAPER_MAX_NEW_TOKENS,
        "sc_cello1": __version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

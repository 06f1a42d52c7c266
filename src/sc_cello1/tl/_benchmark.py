"""``cello1.tl.benchmark``: a model on the public CellPuzzles split, next to the paper."""

from __future__ import annotations

import contextlib
import json
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

#: Files written into ``output_dir``.
OUTPUT_FILES = {
    "csv": "benchmark.csv",
    "json": "benchmark.json",
    "png": "benchmark.png",
    "predictions": "predictions.jsonl",
}
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
        return _summary_text(self.table, self.reported, self.provenance)


def _pct(value: float) -> str:
    return "   -  " if value != value else f"{100 * value:5.1f}%"  # NaN -> "-"


def _summary_text(table: pd.DataFrame, reported: pd.DataFrame, prov: Mapping[str, Any]) -> str:
    model, data = prov["model"], prov["dataset"]
    lines = [
        f"model   {model['name']} @ {model['revision']} ({prov['backend']}, {model['source']})",
        f"data    {data['repo']} @ {data['revision']}, split {data['split']}: "
        f"{prov['n_puzzles']} of {prov['n_puzzles_split']} puzzles"
        + (f" (--limit {prov['limit']}, stratified by N)" if prov["limit"] else ""),
        f"clean   {prov['n_clean']} of {prov['n_puzzles']} puzzles share no cell with the train "
        f"split (by {prov['leakage_by']} gene list)"
        if prov["n_clean"] is not None
        else "clean   (not computed for the train split)",
        f"prompt  {prov['prompt_style']} (version {prov['prompt_version']}), greedy, "
        f"max_new_tokens {prov['max_new_tokens']}; sc-cello1 {prov['sc_cello1']}",
        "",
        f"{'N':>4}  {'full: batch':>11} {'cell':>7} {'format':>7} {'n':>5}   "
        f"{'clean: batch':>12} {'cell':>7} {'format':>7} {'n':>5}",
    ]
    full = table[table["subset"] == "full"].set_index("n")
    clean = table[table["subset"] == "clean"].set_index("n")
    for n in full.index:
        f = full.loc[n]
        row = (
            f"{n:>4}  {_pct(f['batch_accuracy']):>11} {_pct(f['cell_accuracy']):>7} "
            f"{_pct(f['format_rate']):>7} {int(f['n_puzzles']):>5}"
        )
        if n in clean.index:
            c = clean.loc[n]
            row += (
                f"   {_pct(c['batch_accuracy']):>12} {_pct(c['cell_accuracy']):>7} "
                f"{_pct(c['format_rate']):>7} {int(c['n_puzzles']):>5}"
            )
        lines.append(row)
    lines += ["", "reported (full test split of 1,095 puzzles, batch-level accuracy; quoted):"]
    lines += [f"  {r.model:<14} {100 * r.value:5.1f}%   {r.source}" for r in reported.itertuples()]
    if not prov["comparable_to_reported"]:
        lines.append(
            "note: not comparable with the reported figures as run (a subset, another split, "
            "or fewer new tokens than the paper's 3,500)."
        )
    return "\n".join(lines)


def _plot(table: pd.DataFrame, reported: pd.DataFrame, prov: Mapping[str, Any], path: Path) -> bool:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning(
            "matplotlib is not installed: no bar chart written (pip install 'sc-cello1[plot]')."
        )
        return False
    import numpy as np

    full = table[table["subset"] == "full"].set_index("n")
    clean = table[table["subset"] == "clean"].set_index("n")
    labels = list(full.index)
    x = np.arange(len(labels))
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric, title in zip(
        axes,
        ("batch_accuracy", "cell_accuracy"),
        ("batch-level accuracy", "cell-level accuracy"),
        strict=True,
    ):
        width = 0.4 if len(clean) else 0.8
        ax.bar(
            x - (width / 2 if len(clean) else 0), full[metric].to_numpy() * 100, width, label="full"
        )
        if len(clean):
            ax.bar(
                x + width / 2, clean.reindex(labels)[metric].to_numpy() * 100, width, label="clean"
            )
        if metric == "batch_accuracy":
            for r, style in zip(reported.itertuples(), ("--", ":"), strict=False):
                ax.axhline(100 * r.value, color="0.3", linestyle=style, linewidth=1)
                ax.text(
                    x[-1] + 0.45,
                    100 * r.value,
                    f"{r.model} (reported)",
                    fontsize=7,
                    va="bottom",
                    ha="right",
                )
        ax.set_xticks(x, labels)
        ax.set_xlabel("puzzle size N")
        ax.set_title(title)
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("%")
    axes[0].legend(loc="upper left", fontsize=8)
    model = prov["model"]
    revision = str(model["revision"] or "")[:12]
    fig.suptitle(
        f"{model['name']} @ {revision} on {prov['dataset']['repo']} {prov['dataset']['split']} "
        f"({prov['n_puzzles']} puzzles)",
        fontsize=10,
    )
    fig.savefig(path, dpi=120)
    return True


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


def _write_text(path: Path, text: str) -> None:
    from sc_cello1._io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as f:
        f.write(text)


def benchmark(
    *,
    model: str | os.PathLike,
    output_dir: str | os.PathLike,
    split: str = "test",
    data_revision: str = "main",
    limit: int | None = None,
    max_new_tokens: int = _PAPER_MAX_NEW_TOKENS,
    leakage_by: str = "ranked",
    backend: str = "auto",
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
    max_new_tokens
        Cap on new tokens per answer; the paper's 3,500 by default.
    leakage_by
        ``"ranked"`` (identical ranked gene list) or ``"set"`` (identical gene set).
    backend
        ``"auto"``, ``"transformers"``, ``"vllm"`` or ``"openai"``.
    batch_size
        Prompts per generate call (default: the backend's).
    seed
        Seed of the ``limit`` subset (and of the backend; greedy decoding ignores it).
    cache_dir
        Cache root for the model and the dataset; default ``settings.cache_dir``.
    mirror
        Base URL of a hub mirror for the dataset and for models from the hub (as
        ``settings.mirror``; a model registered with its own server keeps it); default
        ``settings.mirror`` (``$CELLO1_MIRROR``), else the hub.
    download
        If ``False``, make no request: the dataset and a registered model must be cached.
    backend_kwargs
        Passed to :func:`~sc_cello1.inference.get_backend` (``dtype``, ``base_url``...).

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
    from sc_cello1._version import __version__
    from sc_cello1.data import SPLITS, cellpuzzles, leakage
    from sc_cello1.data._prompts import PROMPT_VERSION
    from sc_cello1.inference import get_backend
    from sc_cello1.inference._base import check_sampling
    from sc_cello1.inference._factory import check_backend_args
    from sc_cello1.metrics import benchmark_table, reported_figures

    from ._solve import _DEFAULT_BATCH, solve

    # -- validate everything before any download or loading --------------------------------
    if split not in SPLITS:
        msg = f"split={split!r} is not a CellPuzzles split; use one of {list(SPLITS)}."
        raise ValueError(msg)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        msg = f"limit={limit!r} must be a whole number >= 1 (or None for the whole split)."
        raise ValueError(msg)
    if leakage_by not in ("ranked", "set"):
        msg = f"leakage_by={leakage_by!r} must be 'ranked' or 'set'."
        raise ValueError(msg)
    check_sampling(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed)
    if not isinstance(output_dir, str | os.PathLike):
        msg = f"output_dir must be a folder path, got {type(output_dir).__name__}."
        raise TypeError(msg)
    out = Path(output_dir).expanduser()
    if out.is_file():
        msg = f"output_dir={str(out)!r} is a file; give a folder."
        raise ValueError(msg)
    if backend_kwargs is not None and not isinstance(backend_kwargs, Mapping):
        msg = "backend_kwargs must be a dict of keyword arguments for the backend."
        raise TypeError(msg)
    if not isinstance(data_revision, str) or not data_revision:
        msg = (
            f"data_revision={data_revision!r} must be a commit of ncbi/CellPuzzles or 'main' "
            "(the default: the hub's current commit, resolved once and recorded)."
        )
        raise ValueError(msg)
    kwargs = dict(backend_kwargs or {})
    backend_name = check_backend_args(model, backend, **kwargs)
    if not download and backend_name != "openai":
        from sc_cello1.models import check_model

        check_model(model, download=False, cache_dir=cache_dir)
    if batch_size is None:
        batch_size = _DEFAULT_BATCH.get(backend_name, 8)

    # -- data --------------------------------------------------------------------------------
    def fetch(which: str, revision: str) -> list:
        return cellpuzzles(
            which, revision=revision, cache_dir=cache_dir, mirror=mirror, download=download
        )

    puzzles = fetch(split, data_revision)
    if any(p.answer is None for p in puzzles):
        msg = f"Some puzzles of the {split!r} split have no answer to score against."
        raise ValueError(msg)
    commit = puzzles[0].meta["revision"]
    leaked = None
    train_sha = None
    if split != "train":
        train = fetch("train", commit)
        train_sha = train[0].meta["sha256"] if train else None
        leaked = leakage(train, puzzles, by=leakage_by)["leaked"].tolist()  # type: ignore[arg-type]
    chosen = stratified_subset([p.n_cells for p in puzzles], limit, seed=seed)
    subset = [puzzles[i] for i in chosen]
    clean = None if leaked is None else [not leaked[i] for i in chosen]

    # -- model and answers ---------------------------------------------------------------------
    if backend_name == "transformers":
        kwargs.setdefault("batch_size", batch_size)
    with _model_cache(cache_dir, mirror):
        runner = get_backend(
            _pinned(model, backend_name, cache_dir, download), backend_name, **kwargs
        )
    resolved = getattr(runner, "resolved", None)
    start = time.perf_counter()
    try:
        records = solve(
            subset,
            model=runner,
            num_generations=1,
            temperature=0.0,
            max_new_tokens=max_new_tokens,
            seed=seed,
            style="eval",
            constrained=False,
            cache_dir=out / _SOLVE_CACHE,
            batch_size=batch_size,
        )
    finally:
        close = getattr(runner, "close", None)
        if callable(close):
            close()  # the connection pool of an openai backend
    seconds = time.perf_counter() - start
    texts = [r["text"] for r in records]
    table = benchmark_table(texts, subset, clean=clean)
    reported = reported_figures()

    sp = records.provenance
    provenance: dict[str, Any] = {
        "model": {
            "name": sp.get("model"),
            "revision": sp.get("revision"),
            "repo": sp.get("repo"),
            "source": sp.get("source"),
            "path": sp.get("path"),
            "files": dict(sorted(resolved.files.items())) if resolved is not None else {},
        },
        "backend": sp.get("backend", backend_name),
        "dataset": {
            "repo": puzzles[0].meta["dataset"],
            "revision": commit,
            "split": split,
            "files": {
                f"data/{split}-00000-of-00001.parquet": puzzles[0].meta["sha256"],
                **({"data/train-00000-of-00001.parquet": train_sha} if train_sha else {}),
            },
        },
        "prompt_style": "eval",
        "prompt_version": PROMPT_VERSION,
        "greedy": True,
        "max_new_tokens": max_new_tokens,
        "limit": limit,
        "seed": seed,
        "leakage_by": leakage_by if leaked is not None else None,
        "n_puzzles_split": len(puzzles),
        "n_puzzles": len(subset),
        "n_clean": None if clean is None else sum(clean),
        "n_clean_split": None if leaked is None else len(leaked) - sum(leaked),
        "puzzles": chosen,
        "n_from_cache": sp.get("n_from_cache"),
        "seconds": seconds,
        "comparable_to_reported": split == "test"
        and len(subset) == len(puzzles)
        and max_new_tokens >= _PAPER_MAX_NEW_TOKENS,
        "sc_cello1": __version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    # -- write ----------------------------------------------------------------------------------
    out.mkdir(parents=True, exist_ok=True)
    files = {k: out / v for k, v in OUTPUT_FILES.items()}
    csv = table.copy()
    csv.insert(0, "model", provenance["model"]["name"])
    csv.insert(1, "model_revision", provenance["model"]["revision"])
    csv.insert(2, "dataset_revision", commit)
    _write_text(files["csv"], csv.to_csv(index=False))
    document = {
        "provenance": provenance,
        "table": json.loads(table.to_json(orient="records")),
        "reported": json.loads(reported.to_json(orient="records")),
    }
    _write_text(files["json"], json.dumps(document, indent=1, default=str) + "\n")
    _write_text(
        files["predictions"],
        "".join(
            json.dumps(
                {
                    **r,
                    "split_row": chosen[r["puzzle"]],
                    "clean": None if clean is None else clean[r["puzzle"]],
                },
                ensure_ascii=False,
            )
            + "\n"
            for r in records
        ),
    )
    if not _plot(table, reported, provenance, files["png"]):
        files.pop("png")
    logger.info("benchmark of %s written to %s", provenance["model"]["name"], out)
    return BenchmarkResult(table=table, reported=reported, provenance=provenance, files=files)

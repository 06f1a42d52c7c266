"""Stage 2 of ``tl.annotate``: representative cells, their top genes, the puzzles.

Everything is computed from ``adata`` without changing it, before the model runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._logging import logger

from ._cluster_puzzles import (
    build_cluster_puzzles,
    context_for,
    puzzle_slots,
    representative_cells,
)

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

    from sc_cello1.data import Puzzle

    from ._annotate_checks import Checked


@dataclass
class Cells:
    """The representative cells of every (donor, cluster) and what the prompts show of them."""

    group_names: list[str]
    reps: dict[tuple[int, int], list[int]]
    top_genes: dict[int, list[str]]
    context_source: str
    has_cellxgene: bool


@dataclass
class Plan:
    """The puzzles of the puzzle stage and what is needed to read their answers."""

    clusters: list[str]
    cluster_codes: np.ndarray
    n_cells: np.ndarray
    candidates: list[str]
    puzzles: list[Puzzle]


def describe(obj: Any) -> str:
    """Describe a value recorded in ``uns`` in short, stable text (paths, callables, objects)."""
    if isinstance(obj, str | os.PathLike):
        return os.fspath(obj)
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{getattr(obj, '__module__', '')}.{name}".lstrip(".")


def _context_source(context: Any, context_fields: Any, has_cellxgene: bool) -> str:
    if isinstance(context, str):
        return "context="
    if context is not None:
        return f"context={describe(context)}"
    if has_cellxgene or context_fields:
        return "obs CELLxGENE columns"
    logger.info("annotate: no CELLxGENE columns in obs and no `context=`; using a generic sentence")
    return "fallback sentence"


def choose_cells(
    adata: AnnData,
    checked: Checked,
    *,
    context: Any,
    context_fields: Any,
    donor_key: str | None,
    n_genes: int,
    n_samples: int,
    tie_order: str,
    rng: np.random.Generator,
) -> Cells:
    """Draw ``n_samples`` representative cells per (donor, cluster) and rank their genes.

    Sample 0 is the cell nearest the centroid of the cluster's cells of that donor in
    ``checked.rep`` (``use_rep``); later samples are random cells of the cluster.
    """
    from sc_cello1.data import CONTEXT_FIELDS
    from sc_cello1.pp._top_genes import top_gene_indices

    if donor_key is not None:
        donors = adata.obs[donor_key].astype("category")
        group_names = [str(d) for d in donors.cat.categories]
        group_codes = donors.cat.codes.to_numpy().astype(np.int64)
    else:
        group_names = [""]
        group_codes = np.zeros(adata.n_obs, dtype=np.int64)
    reps = representative_cells(
        checked.rep, checked.codes, group_codes, n_samples=n_samples, rng=rng
    )
    rows = np.array(sorted({r for rows in reps.values() for r in rows}), dtype=np.int64)
    top = top_gene_indices(checked.X, n_genes, rows=rows, tie_order=tie_order)
    top_genes = {int(r): [checked.genes[j] for j in top[i]] for i, r in enumerate(rows)}
    has_cellxgene = any(f in adata.obs.columns for f in CONTEXT_FIELDS)
    return Cells(
        group_names=group_names,
        reps=reps,
        top_genes=top_genes,
        context_source=_context_source(context, context_fields, has_cellxgene),
        has_cellxgene=has_cellxgene,
    )


def build_plan(
    adata: AnnData,
    checked: Checked,
    cells: Cells,
    candidates: Sequence[str],
    *,
    context: str | Callable[[pd.DataFrame], str] | None,
    context_fields: Sequence[str] | Mapping[str, str],
    n_samples: int,
    max_cells_per_puzzle: int,
    one_to_one: bool,
    rng: np.random.Generator,
) -> Plan:
    """Lay out and build every puzzle of the puzzle stage (reads ``adata`` only).

    Per sample and donor, the clusters are split at random into puzzles of at most
    ``min(max_cells_per_puzzle, len(candidates))`` cells; unless ``one_to_one``, into at
    least two puzzles, so that clusters of one type are apart in most samples (see
    :func:`~sc_cello1.tl._cluster_puzzles.puzzle_slots`).
    """
    n_cells = np.bincount(checked.codes[checked.codes >= 0], minlength=len(checked.clusters))
    slots = puzzle_slots(
        cells.reps,
        n_groups=len(cells.group_names),
        n_samples=n_samples,
        max_cells=min(max_cells_per_puzzle, len(candidates)),
        rng=rng,
        min_parts=1 if one_to_one else 2,
    )
    puzzles = build_cluster_puzzles(
        slots,
        top_genes=cells.top_genes,
        candidates=candidates,
        obs=adata.obs,
        cluster_names=checked.clusters,
        group_names=cells.group_names,
        context=context,
        context_fields=context_fields,
        has_cellxgene=cells.has_cellxgene,
    )
    return Plan(
        clusters=checked.clusters,
        cluster_codes=checked.codes,
        n_cells=n_cells,
        candidates=list(candidates),
        puzzles=puzzles,
    )


def cell_context(
    adata: AnnData,
    row: int,
    *,
    context: Any,
    context_fields: Any,
    has_cellxgene: bool,
) -> str:
    """Return the context sentence of a one-cell question (the proposal stage)."""
    return context_for(
        adata.obs,
        [row],
        context=context,
        context_fields=context_fields,
        has_cellxgene=has_cellxgene,
    )

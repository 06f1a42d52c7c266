"""Stage 2 of ``tl.annotate``: the cells each cluster may show, their top genes, the layout.

Everything is computed from ``adata`` without changing it, before the model runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._logging import logger

from ._cluster_puzzles import cell_pools, context_for
from ._layout import BUDGET_FACTOR, Layout
from ._verb_options import describe

if TYPE_CHECKING:
    from anndata import AnnData

    from ._annotate_checks import Checked
    from ._annotate_config import AnnotateConfig


@dataclass
class Cells:
    """The cells every (donor, cluster) may show and what the prompts show of them.

    ``pools`` holds the distinct cells in the order they are shown (the cell nearest the
    centroid first); ``reps`` its first ``n_samples`` (the proposal stage's cells).
    """

    group_names: list[str]
    pools: dict[tuple[int, int], list[int]]
    centroids: dict[tuple[int, int], np.ndarray]
    reps: dict[tuple[int, int], list[int]]
    top_genes: dict[int, list[str]]
    context_source: str
    has_cellxgene: bool


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
    adata: AnnData, checked: Checked, config: AnnotateConfig, *, rng: np.random.Generator
) -> Cells:
    """Draw the distinct cells each (donor, cluster) may show and rank their genes.

    The first is the cell nearest the centroid of the cluster's cells of that donor in
    ``checked.rep`` (``use_rep``); the others are random cells of the cluster, each at
    most once, up to the budget of ``3 * n_samples`` cells.
    """
    from sc_cello1.data import CONTEXT_FIELDS
    from sc_cello1.pp._top_genes import top_gene_indices

    donor_key, n_samples, n_genes = config.donor_key, config.n_samples, config.n_genes
    if donor_key is not None:
        donors = adata.obs[donor_key].astype("category")
        group_names = [str(d) for d in donors.cat.categories]
        group_codes = donors.cat.codes.to_numpy().astype(np.int64)
    else:
        group_names = [""]
        group_codes = np.zeros(adata.n_obs, dtype=np.int64)
    pools, centroids = cell_pools(
        checked.rep, checked.codes, group_codes, budget=BUDGET_FACTOR * n_samples, rng=rng
    )
    reps = {k: v[:n_samples] for k, v in pools.items()}
    rows = np.array(sorted({r for rows in pools.values() for r in rows}), dtype=np.int64)
    top = top_gene_indices(checked.X, n_genes, rows=rows, tie_order=config.tie_order)
    top_genes = {int(r): [checked.genes[j] for j in top[i]] for i, r in enumerate(rows)}
    has_cellxgene = any(f in adata.obs.columns for f in CONTEXT_FIELDS)
    return Cells(
        group_names=group_names,
        pools=pools,
        centroids=centroids,
        reps=reps,
        top_genes=top_genes,
        context_source=_context_source(config.context, config.context_fields, has_cellxgene),
        has_cellxgene=has_cellxgene,
    )


def make_layout(
    cells: Cells,
    candidates: Sequence[str],
    *,
    n_samples: int,
    max_cells_per_puzzle: int,
    rng: np.random.Generator,
) -> Layout:
    """Make the round-by-round layout of the puzzle stage (see :mod:`~sc_cello1.tl._layout`)."""
    return Layout(
        cells.pools,
        cells.centroids,
        candidates,
        n_samples=n_samples,
        max_cells=max_cells_per_puzzle,
        rng=rng,
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

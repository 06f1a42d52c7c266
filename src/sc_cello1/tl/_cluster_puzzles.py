"""Cells shown for clusters: distinct cells per cluster, centroids, the context sentence."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    import pandas as pd


#: Largest puzzle size in CellPuzzles (N runs from 8 to 15).
MAX_TRAINED_CELLS = 15

#: Context used when ``obs`` has no CELLxGENE columns and no ``context=`` is given.
FALLBACK_CONTEXT = "The cell is from an unspecified donor."

_CHUNK = 4096


def _dense_rows(X: Any, rows: np.ndarray) -> Any:
    """Rows of ``X`` as float64 (CSR when sparse), for the centroid sums."""
    sub = X[rows]
    if sparse.issparse(sub):
        return sparse.csr_matrix(sub, dtype=np.float64)
    return np.asarray(sub, dtype=np.float64)


def centroid_and_nearest(
    X: Any, members: np.ndarray, *, chunk_size: int = _CHUNK
) -> tuple[np.ndarray, int]:
    """Return the members' mean and the row (of ``members``) closest to it, in Euclidean distance.

    The members are read ``chunk_size`` rows at a time (twice: for the mean, then for
    the distances), so a large cluster of a dense or backed matrix is never loaded whole.
    """
    chunks = [members[i : i + chunk_size] for i in range(0, members.size, chunk_size)]
    total = np.zeros(X.shape[1], dtype=np.float64)
    for rows in chunks:
        total += np.asarray(_dense_rows(X, rows).sum(axis=0)).ravel()
    centroid = total / members.size
    if members.size == 1:
        return centroid, int(members[0])
    scores = []
    for rows in chunks:
        sub = _dense_rows(X, rows)
        if sparse.issparse(sub):
            norms = np.asarray(sub.multiply(sub).sum(axis=1)).ravel()
        else:
            norms = np.einsum("ij,ij->i", sub, sub)
        scores.append(norms - 2.0 * np.asarray(sub @ centroid).ravel())
    return centroid, int(members[int(np.argmin(np.concatenate(scores)))])


def nearest_to_centroid(X: Any, members: np.ndarray, *, chunk_size: int = _CHUNK) -> int:
    """Row (of ``members``) closest to the members' mean (see :func:`centroid_and_nearest`)."""
    return centroid_and_nearest(X, members, chunk_size=chunk_size)[1]


def cell_pools(
    X: Any,
    cluster_codes: np.ndarray,
    group_codes: np.ndarray,
    *,
    budget: int,
    rng: np.random.Generator,
) -> tuple[dict[tuple[int, int], list[int]], dict[tuple[int, int], np.ndarray]]:
    """Return the distinct cells each (donor group, cluster) may show, and its centroid.

    The first cell is the one nearest the centroid of the group's cluster cells; the
    others are random cells of the cluster, each at most once, up to ``budget`` cells
    (a cluster with fewer cells has a shorter pool: it is asked fewer times).

    Returns
    -------
    ``({(group, cluster): [row, ...]}, {(group, cluster): centroid})``.
    """
    pools: dict[tuple[int, int], list[int]] = {}
    centroids: dict[tuple[int, int], np.ndarray] = {}
    valid = cluster_codes >= 0
    keys = np.unique(np.stack([group_codes[valid], cluster_codes[valid]], axis=1), axis=0)
    for group, cluster in keys:
        members = np.flatnonzero((cluster_codes == cluster) & (group_codes == group))
        centroid, first = centroid_and_nearest(X, members)
        rest = rng.permutation(members[members != first])[: max(budget - 1, 0)]
        pools[int(group), int(cluster)] = [first, *(int(r) for r in rest)]
        centroids[int(group), int(cluster)] = centroid
    return pools, centroids


def context_for(
    obs: pd.DataFrame,
    rows: Sequence[int],
    *,
    context: str | Callable[[pd.DataFrame], str] | None,
    context_fields: Sequence[str] | Mapping[str, str],
    has_cellxgene: bool,
) -> str:
    """Return the context sentence of one puzzle (``data._context.puzzle_context``).

    ``context`` as a string is used as is; as a callable it gets the puzzle's ``obs``
    rows in cell order. Otherwise the CELLxGENE columns of the first cell give the
    authors' sentence, or :data:`FALLBACK_CONTEXT` when there are none
    (``has_cellxgene=False``) and no ``context_fields``.
    """
    from sc_cello1.data._context import puzzle_context

    fallback = None if has_cellxgene else FALLBACK_CONTEXT
    return puzzle_context(
        obs, rows, context=context, context_fields=context_fields, fallback=fallback
    )

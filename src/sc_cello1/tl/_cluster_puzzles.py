"""CellPuzzles built from clusters: representative cells, splitting, context."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    import pandas as pd

    from sc_cello1.data import Puzzle

#: Largest puzzle size in CellPuzzles (N runs from 8 to 15).
MAX_TRAINED_CELLS = 15

#: Context used when ``obs`` has no CELLxGENE columns and no ``context=`` is given.
FALLBACK_CONTEXT = "The cell is from an unspecified donor."

_CHUNK = 4096


@dataclass
class PuzzleSlot:
    """Where a puzzle comes from: sample, donor group, part, and its clusters in cell order."""

    sample: int
    group: int
    part: int
    clusters: list[int]
    rows: list[int]


def _dense_rows(X: Any, rows: np.ndarray) -> Any:
    """Rows of ``X`` as float64 (CSR when sparse), for the centroid sums."""
    sub = X[rows]
    if sparse.issparse(sub):
        return sparse.csr_matrix(sub, dtype=np.float64)
    return np.asarray(sub, dtype=np.float64)


def nearest_to_centroid(X: Any, members: np.ndarray, *, chunk_size: int = _CHUNK) -> int:
    """Row (of ``members``) closest to the members' mean, in Euclidean distance.

    The members are read ``chunk_size`` rows at a time (twice: for the mean, then for
    the distances), so a large cluster of a dense or backed matrix is never loaded whole.
    """
    if members.size == 1:
        return int(members[0])
    chunks = [members[i : i + chunk_size] for i in range(0, members.size, chunk_size)]
    total = np.zeros(X.shape[1], dtype=np.float64)
    for rows in chunks:
        total += np.asarray(_dense_rows(X, rows).sum(axis=0)).ravel()
    centroid = total / members.size
    scores = []
    for rows in chunks:
        sub = _dense_rows(X, rows)
        if sparse.issparse(sub):
            norms = np.asarray(sub.multiply(sub).sum(axis=1)).ravel()
        else:
            norms = np.einsum("ij,ij->i", sub, sub)
        scores.append(norms - 2.0 * np.asarray(sub @ centroid).ravel())
    return int(members[int(np.argmin(np.concatenate(scores)))])


def representative_cells(
    X: Any,
    cluster_codes: np.ndarray,
    group_codes: np.ndarray,
    *,
    n_samples: int,
    rng: np.random.Generator,
) -> dict[tuple[int, int], list[int]]:
    """One representative row per sample for each (donor group, cluster) with cells.

    Sample 0 is the cell nearest the centroid of the group's cluster cells; later
    samples are random cells of the cluster, drawn without replacement until every cell
    has been used once.

    Returns
    -------
    ``{(group, cluster): [row of sample 0, row of sample 1, ...]}``.
    """
    out: dict[tuple[int, int], list[int]] = {}
    valid = cluster_codes >= 0
    keys = np.unique(np.stack([group_codes[valid], cluster_codes[valid]], axis=1), axis=0)
    for group, cluster in keys:
        members = np.flatnonzero((cluster_codes == cluster) & (group_codes == group))
        first = nearest_to_centroid(X, members)
        rows = [first]
        pool = rng.permutation(members[members != first]) if members.size > 1 else members
        while len(rows) < n_samples:
            take = pool[: n_samples - len(rows)]
            rows.extend(int(r) for r in take)
            if len(rows) < n_samples:
                pool = rng.permutation(members)
        out[int(group), int(cluster)] = rows[:n_samples]
    return out


def puzzle_slots(
    reps: Mapping[tuple[int, int], list[int]],
    *,
    n_groups: int,
    n_samples: int,
    max_cells: int,
    rng: np.random.Generator,
    min_parts: int = 1,
) -> list[PuzzleSlot]:
    """Lay out the puzzles: per sample and donor group, the clusters split into parts.

    A group's ``k`` clusters go to ``P = max(ceil(k / max_cells), min(min_parts, k))``
    puzzles of near-equal size, drawn at random anew for each sample, and each puzzle's
    cells are shuffled. Two given clusters then share a puzzle in a sample with
    probability about ``(k / P - 1) / (k - 1)``: with ``min_parts=2`` below one half, so
    that clusters of one type (over-clustering) are apart in most samples and can all
    collect votes for that type although each answer is a permutation.
    """
    slots: list[PuzzleSlot] = []
    by_group: dict[int, list[int]] = {}
    for group, cluster in sorted(reps):
        by_group.setdefault(group, []).append(cluster)
    for sample in range(n_samples):
        for group in range(n_groups):
            clusters = by_group.get(group, [])
            if not clusters:
                continue
            n_parts = max(math.ceil(len(clusters) / max_cells), min(min_parts, len(clusters)))
            order = rng.permutation(np.asarray(clusters))
            for part, chunk in enumerate(np.array_split(order, n_parts)):
                cells = [int(c) for c in rng.permutation(chunk)]
                rows = [reps[group, c][sample] for c in cells]
                slots.append(
                    PuzzleSlot(sample=sample, group=group, part=part, clusters=cells, rows=rows)
                )
    return slots


def context_for(
    obs: pd.DataFrame,
    rows: Sequence[int],
    *,
    context: str | Callable[[pd.DataFrame], str] | None,
    context_fields: Sequence[str] | Mapping[str, str],
    has_cellxgene: bool,
) -> str:
    """Return the context sentence of one puzzle.

    ``context`` as a string is used as is; as a callable it gets the puzzle's ``obs``
    rows in cell order. Otherwise the CELLxGENE columns of the first cell give the
    authors' sentence, or :data:`FALLBACK_CONTEXT` when there are none.
    """
    from sc_cello1.data import context_sentence

    if isinstance(context, str):
        return context
    if context is not None:
        text = context(obs.iloc[list(rows)])
        if not isinstance(text, str) or not text.strip() or "\n" in text:
            msg = (
                f"The `context` callable returned {text!r}; it must return one line of "
                "non-empty text (the donor sentence)."
            )
            raise ValueError(msg)
        return text
    if has_cellxgene or context_fields:
        return context_sentence(obs.iloc[rows[0]], context_fields=context_fields)
    return FALLBACK_CONTEXT


def build_cluster_puzzles(
    slots: Sequence[PuzzleSlot],
    *,
    top_genes: Mapping[int, list[str]],
    candidates: Sequence[str],
    obs: pd.DataFrame,
    cluster_names: Sequence[str],
    group_names: Sequence[str],
    context: str | Callable[[pd.DataFrame], str] | None,
    context_fields: Sequence[str] | Mapping[str, str],
    has_cellxgene: bool,
) -> list[Puzzle]:
    """Build the :class:`~sc_cello1.data.Puzzle` of each slot, candidates in ``sorted()`` order."""
    from sc_cello1.data import Puzzle

    sorted_candidates = sorted(candidates)
    obs_names = obs.index.astype(str)
    puzzles = []
    for i, slot in enumerate(slots):
        text = context_for(
            obs,
            slot.rows,
            context=context,
            context_fields=context_fields,
            has_cellxgene=has_cellxgene,
        )
        puzzles.append(
            Puzzle(
                context=text,
                genes=[top_genes[r] for r in slot.rows],
                candidates=list(sorted_candidates),
                cell_ids=[obs_names[r] for r in slot.rows],
                group=group_names[slot.group],
                meta={
                    "id": i,
                    "sample": slot.sample,
                    "part": slot.part,
                    "clusters": [cluster_names[c] for c in slot.clusters],
                    "source": "sc_cello1.tl.annotate",
                },
            )
        )
    return puzzles

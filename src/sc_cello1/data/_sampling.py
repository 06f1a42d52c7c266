"""The authors' grouping and sampling of CellPuzzles (``match_qa.py``), for :func:`build_puzzles`."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._logging import logger

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData


def _codes(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes in order of first appearance (-1: missing or empty) and the unique values."""
    import pandas as pd

    codes, uniques = pd.factorize(col.astype(object), sort=False)
    codes = codes.astype(np.int64)
    empty = [i for i, u in enumerate(uniques) if str(u).strip() == ""]
    if empty:
        codes[np.isin(codes, empty)] = -1
    return codes, np.asarray(uniques, dtype=object)


def _groups(
    adata: AnnData, donor_key: str | None, batch_key: str | None
) -> tuple[np.ndarray, list[str], list[tuple[Any, Any]]]:
    """Group code per cell (-1: no donor), group names and (donor, batch) per group.

    Groups are numbered in order of first appearance, as the authors' dict was filled;
    a cell without a batch is grouped by its donor alone, as theirs were.
    """
    import pandas as pd

    if donor_key is None:
        return np.zeros(adata.n_obs, dtype=np.int64), ["all"], [(None, None)]
    d_codes, d_values = _codes(adata.obs[donor_key])
    if batch_key is None:
        b_codes, b_values = np.full(adata.n_obs, -1, dtype=np.int64), np.empty(0, dtype=object)
    else:
        b_codes, b_values = _codes(adata.obs[batch_key])
    pair = (d_codes * (len(b_values) + 1) + b_codes + 1).astype(float)
    pair[d_codes < 0] = np.nan
    codes, _ = pd.factorize(pair, sort=False)
    codes = codes.astype(np.int64)
    valid = np.flatnonzero(codes >= 0)
    # the first cell of each group (codes are numbered in order of first appearance)
    _, at = np.unique(codes[valid], return_index=True)
    first = valid[at]
    names: list[str] = []
    keys: list[tuple[Any, Any]] = []
    for i in first:
        d = str(d_values[d_codes[i]])
        b = str(b_values[b_codes[i]]) if b_codes[i] >= 0 else None
        keys.append((d, b))
        names.append(str((d, b)) if b is not None else d)
    return codes, names, keys


def _types_by_group(
    labels: np.ndarray,
    codes: np.ndarray,
    group_names: list[str],
    lo: int,
    hi: int,
    donor_key: str | None,
) -> tuple[list[dict[str, np.ndarray]], list[list[str]], list[int]]:
    """Cells of each type in each group, the groups' sorted types, and the eligible groups."""
    import pandas as pd

    n_dropped = int((codes < 0).sum())
    if n_dropped:
        logger.warning("%d cells have no donor in obs[%r] and are left out", n_dropped, donor_key)
    if not group_names:
        msg = f"no cell has a donor in `obs[{donor_key!r}]`; fill it or pass donor_key=None."
        raise ValueError(msg)
    type_codes, type_names = pd.factorize(labels, sort=False)
    frame = pd.DataFrame({"g": codes, "t": type_codes})
    frame = frame[frame["g"] >= 0]
    cells_of: list[dict[str, np.ndarray]] = [{} for _ in group_names]
    for (g, t), idx in frame.groupby(["g", "t"], sort=False).indices.items():
        cells_of[g][str(type_names[t])] = frame.index.to_numpy()[idx]
    group_types = [sorted(c) for c in cells_of]
    n_types = [len(t) for t in group_types]
    eligible = [g for g in range(len(group_names)) if min(n_types[g], hi) >= lo]
    if not eligible:
        best = int(np.argmax(n_types))
        k = n_types[best]
        msg = (
            f"every group has fewer than {lo} distinct cell types (the minimum N of "
            f"n_cells={(lo, hi)}), so no puzzle can be made: the largest group, "
            f"{group_names[best]!r}, has {k}. Pass a smaller n_cells, e.g. "
            f"n_cells=({max(2, min(3, k))}, {max(2, k)})"
            + (", or group differently (donor_key=, batch_key=)." if donor_key else ".")
        )
        raise ValueError(msg)
    if len(eligible) < len(group_names):
        logger.info(
            "%d of %d groups have fewer than %d cell types and are skipped",
            len(group_names) - len(eligible),
            len(group_names),
            lo,
        )
    return cells_of, group_types, eligible


def _sample(
    group_types: list[list[str]],
    cells_of: list[dict[str, np.ndarray]],
    lo: int,
    hi: int,
    per_size: int,
    seed: int,
) -> list[tuple[int, list[str], list[int]]]:
    """Run the authors' sampling loop (``match_qa.py``), one RNG call sequence.

    Returns ``(group, types in cell order, rows)`` per puzzle, in the order made.
    """
    rng = random.Random(int(seed))
    remaining = {n: per_size for n in range(lo, hi + 1)}
    sampled: list[tuple[int, list[str], list[int]]] = []
    progress = True
    while progress and any(v > 0 for v in remaining.values()):
        progress = False
        for g, types in enumerate(group_types):
            max_n = min(len(types), hi)
            if max_n < lo:
                continue
            valid = [n for n in range(lo, max_n + 1) if remaining[n] > 0]
            if not valid:
                continue
            n = rng.choice(valid)
            chosen = rng.sample(types, n)
            rows = [int(rng.choice(cells_of[g][t])) for t in chosen]
            sampled.append((g, chosen, rows))
            remaining[n] -= 1
            progress = True
    return sampled

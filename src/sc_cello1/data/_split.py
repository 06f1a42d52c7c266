"""The authors' train/test split of CellPuzzles, stratified by puzzle size N."""

from __future__ import annotations

import random
from collections.abc import Sequence

from sc_cello1._logging import logger

from ._puzzle import Puzzle


def _test_quotas(counts: dict[int, int], max_test: int) -> dict[int, int]:
    """Count the test puzzles of each size N (the rule of the authors' split_train_test.py).

    ``counts`` maps N to its number of puzzles, in order of first appearance.
    """
    total = sum(counts.values())
    quotas: dict[int, int] = {}
    if total <= max_test:
        for n, c in counts.items():
            quotas[n] = max(1, int(c * 0.1))
    else:
        min_per_n = 5
        remaining = max_test - len(counts) * min_per_n
        for n, c in counts.items():
            quotas[n] = min(min_per_n, c)
        if remaining > 0:
            total_rest = total - sum(quotas.values())
            if total_rest > 0:
                for n, c in counts.items():
                    if c > quotas[n]:
                        quotas[n] += int((c - quotas[n]) / total_rest * remaining)
    total_quota = sum(quotas.values())
    if total_quota > max_test:
        scale = max_test / total_quota
        for n in quotas:
            quotas[n] = max(1, int(quotas[n] * scale))
    return quotas


def split_puzzles(
    puzzles: Sequence[Puzzle],
    *,
    max_test: int = 1100,
    seed: int = 42,
) -> tuple[list[Puzzle], list[Puzzle]]:
    """Split puzzles into train and test sets, stratified by puzzle size N.

    The rule of the Cell-o1 authors (``split_train_test.py``): with at most
    ``max_test`` puzzles in all, 10% of each size N go to the test set (at least 1);
    otherwise each N gets ``min(5, count)`` and the remaining ``max_test - 5 * #sizes``
    places are shared in proportion to each size's other puzzles; if the quotas add up
    to more than ``max_test`` they are scaled down. The test puzzles of each size are a
    seeded random sample (:func:`random.sample`, as the authors did), so with the same
    puzzles in the same order the split is the authors' one.

    Parameters
    ----------
    puzzles
        The puzzles, for example from :func:`~sc_cello1.data.build_puzzles` or
        :func:`~sc_cello1.data.read_puzzles`.
    max_test
        Upper bound on the size of the test set (the authors used 1,100).
    seed
        Seed of the random sample.

    Returns
    -------
    ``(train, test)``: two lists of puzzles, each in the input order.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> import scanpy as sc
    >>> adata = sc.datasets.pbmc68k_reduced()
    >>> adata.obs["donor_id"] = "d1"
    >>> puzzles = cello1.data.build_puzzles(
    ...     adata, cell_type_key="bulk_labels", use_raw=True, n_cells=(8, 10), per_size=20
    ... )
    >>> train, test = cello1.data.split_puzzles(puzzles)
    >>> len(train), len(test)
    (54, 6)
    """
    if isinstance(puzzles, Puzzle) or isinstance(puzzles, str | bytes):
        msg = "`puzzles` must be a list of Puzzle objects."
        raise TypeError(msg)
    puzzles = list(puzzles)
    for i, p in enumerate(puzzles):
        if not isinstance(p, Puzzle):
            msg = (
                f"puzzles[{i}] is a {type(p).__name__}, not a Puzzle; read records with "
                "`cello1.data.read_puzzles` or `Puzzle.from_record`."
            )
            raise TypeError(msg)
    if isinstance(max_test, bool) or not isinstance(max_test, int) or max_test < 1:
        msg = f"max_test={max_test!r} must be a positive integer (the authors used 1100)."
        raise ValueError(msg)
    if isinstance(seed, bool) or not isinstance(seed, int):
        msg = f"seed={seed!r} must be an integer."
        raise TypeError(msg)
    if not puzzles:
        return [], []

    by_size: dict[int, list[int]] = {}
    for i, p in enumerate(puzzles):
        by_size.setdefault(p.n_cells, []).append(i)
    quotas = _test_quotas({n: len(v) for n, v in by_size.items()}, max_test)
    rng = random.Random(seed)
    test_idx: set[int] = set()
    for n, idx in by_size.items():
        test_idx.update(rng.sample(idx, min(len(idx), quotas[n])))
    train = [p for i, p in enumerate(puzzles) if i not in test_idx]
    test = [p for i, p in enumerate(puzzles) if i in test_idx]
    logger.info(
        "split %d puzzles into %d train and %d test (per N: %s)",
        len(puzzles),
        len(train),
        len(test),
        {n: min(len(by_size[n]), quotas[n]) for n in sorted(by_size)},
    )
    return train, test

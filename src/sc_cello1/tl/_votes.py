"""Votes of many puzzle answers and the final cluster labels drawn from them.

A vote is an answer item that *named* a candidate (see :mod:`sc_cello1.tl._names`);
answers that named none count only in the denominator of the confidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


def vote_table(
    votes: Iterable[tuple[int, int | None]],
    *,
    n_clusters: int,
    n_candidates: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Count the answers given for each cluster.

    Parameters
    ----------
    votes
        One ``(cluster, candidate)`` pair per time a cluster was asked; ``candidate`` is
        ``None`` when that answer named no candidate.
    n_clusters
        Number of clusters (rows).
    n_candidates
        Number of candidates (columns).

    Returns
    -------
    The ``n_clusters x n_candidates`` table of vote counts, and the number of times
    each cluster was asked (whether or not the answer named a candidate).
    """
    table = np.zeros((n_clusters, n_candidates), dtype=np.int64)
    asked = np.zeros(n_clusters, dtype=np.int64)
    for cluster, candidate in votes:
        asked[cluster] += 1
        if candidate is not None:
            table[cluster, candidate] += 1
    return table, asked


@dataclass
class Assignment:
    """Final labels drawn from a vote table.

    Attributes
    ----------
    labels
        Index of the chosen candidate per cluster; ``-1`` where no answer named the
        candidate the cluster would get (no evidence for a label).
    confidence
        Votes of the chosen label over the times the cluster was asked (0 without a label).
    votes
        Votes of the chosen label per cluster.
    runner_up
        Index of the most voted other candidate (``-1`` when no other got a vote).
    runner_up_votes
        Its votes.
    margin
        ``(votes - runner_up_votes) / asked``: how far the label is ahead (0 on a tie).
    tied
        Whether another candidate has as many votes as the label (the tie was broken
        by the tie-break order).
    overridden
        Whether ``one_to_one`` gave the cluster a label with fewer votes than its most
        voted candidate (which went to another cluster).
    method
        ``"plurality"`` (each cluster its most voted candidate) or ``"one_to_one"``
        (distinct candidates, maximal total votes).
    """

    labels: np.ndarray
    confidence: np.ndarray
    votes: np.ndarray
    runner_up: np.ndarray
    runner_up_votes: np.ndarray
    margin: np.ndarray
    tied: np.ndarray
    overridden: np.ndarray
    method: str


def assign_labels(
    table: np.ndarray,
    asked: Sequence[int] | np.ndarray,
    *,
    one_to_one: bool = False,
    tie_order: Sequence[int] | np.ndarray | None = None,
) -> Assignment:
    """Choose one candidate per cluster from a vote table.

    By default each cluster gets its most voted candidate, so several clusters can get
    the same type (over-clustering). Ties are broken by ``tie_order`` (the rank of each
    candidate; default: its column), lowest rank first, and marked in ``tied``. With
    ``one_to_one=True`` and no more clusters than candidates, the labels are instead the
    assignment of *distinct* candidates to clusters with the most votes in total
    (:func:`scipy.optimize.linear_sum_assignment`); use it only when clusters and types
    match one to one. Either way, a cluster whose chosen candidate got no vote from it
    gets no label (``-1``).

    Parameters
    ----------
    table
        ``n_clusters x n_candidates`` vote counts (see :func:`vote_table`).
    asked
        How often each cluster was asked (the denominator of the confidence).
    one_to_one
        Give distinct candidates to the clusters (when there are enough candidates).
    tie_order
        Rank of each candidate for breaking ties (lower wins).

    Returns
    -------
    The :class:`Assignment`.

    Examples
    --------
    >>> import numpy as np
    >>> a = assign_labels(np.array([[3, 2], [3, 0]]), [5, 5])
    >>> a.labels.tolist(), a.confidence.tolist()
    ([0, 0], [0.6, 0.6])
    >>> assign_labels(np.array([[3, 2], [3, 0]]), [5, 5], one_to_one=True).labels.tolist()
    [1, 0]
    """
    table = np.asarray(table, dtype=np.int64)
    asked = np.asarray(asked, dtype=np.float64)
    if table.ndim != 2:
        msg = f"The vote table must be 2-dimensional (clusters x candidates), got shape {table.shape}."
        raise ValueError(msg)
    n_clusters, n_candidates = table.shape
    if asked.shape != (n_clusters,):
        msg = f"`asked` has shape {asked.shape}; give one count per cluster ({n_clusters})."
        raise ValueError(msg)
    rank = np.arange(n_candidates) if tie_order is None else np.asarray(tie_order)
    if rank.shape != (n_candidates,):
        msg = f"`tie_order` has shape {rank.shape}; give one rank per candidate ({n_candidates})."
        raise ValueError(msg)
    # order of preference per cluster: most votes first, then lowest rank
    pref = np.lexsort((np.broadcast_to(rank, table.shape), -table), axis=1)
    if one_to_one and n_clusters <= n_candidates and n_candidates:
        from scipy.optimize import linear_sum_assignment

        # tiny bonus on voted cells: among equal totals prefer lower-ranked candidates
        bonus = (n_candidates - rank.argsort().argsort()) / (n_candidates + 1) / (n_clusters + 1)
        rows, cols = linear_sum_assignment(table + bonus[None, :] * (table > 0), maximize=True)
        labels = np.full(n_clusters, -1, dtype=np.int64)
        labels[rows] = cols
        method = "one_to_one"
    else:
        labels = pref[:, 0].astype(np.int64) if n_candidates else np.full(n_clusters, -1)
        method = "plurality"
    idx = np.arange(n_clusters)
    chosen = np.where(labels >= 0, table[idx, np.maximum(labels, 0)], 0)
    labels = np.where(chosen > 0, labels, -1)
    # runner-up: the best candidate other than the label
    runner = np.full(n_clusters, -1, dtype=np.int64)
    runner_votes = np.zeros(n_clusters, dtype=np.int64)
    for i in range(n_clusters):
        for j in pref[i]:
            if j != labels[i]:
                if table[i, j] > 0:
                    runner[i], runner_votes[i] = j, table[i, j]
                break
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.maximum(asked, 1)
        confidence = np.where(asked > 0, chosen / denom, 0.0)
        margin = np.where(labels >= 0, (chosen - runner_votes) / denom, 0.0)
    best = table.max(axis=1) if n_candidates else np.zeros(n_clusters, dtype=np.int64)
    overridden = (labels >= 0) & (chosen < best) if method == "one_to_one" else labels < -1
    tied = (labels >= 0) & (runner_votes == chosen)
    return Assignment(
        labels=labels,
        confidence=confidence.astype(np.float64),
        votes=chosen.astype(np.int64),
        runner_up=runner,
        runner_up_votes=runner_votes,
        margin=margin.astype(np.float64),
        tied=tied,
        overridden=overridden,
        method=method,
    )

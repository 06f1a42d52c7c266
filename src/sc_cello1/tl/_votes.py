"""Votes of many puzzle answers and the final cluster labels drawn from them."""

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
        ``None`` when that answer named no candidate (an unusable answer).
    n_clusters
        Number of clusters (rows).
    n_candidates
        Number of candidates (columns).

    Returns
    -------
    The ``n_clusters x n_candidates`` table of vote counts, and the number of times
    each cluster was asked (usable or not).
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
        Index of the chosen candidate per cluster, ``-1`` where no answer named the
        candidate the cluster would get (no evidence for any label).
    confidence
        Vote share of the chosen label: its votes over the times the cluster was asked
        (0 where no label was chosen or the chosen label had no vote).
    votes
        Votes of the chosen label per cluster.
    method
        ``"assignment"`` (one candidate per cluster, maximal total votes) or
        ``"argmax"`` (each cluster its most voted candidate).
    """

    labels: np.ndarray
    confidence: np.ndarray
    votes: np.ndarray
    method: str


def assign_labels(
    table: np.ndarray, asked: Sequence[int] | np.ndarray, *, unique: bool = True
) -> Assignment:
    """Choose one candidate per cluster from a vote table.

    With ``unique=True`` and no more clusters than candidates, the labels are the
    assignment of distinct candidates to clusters with the most votes in total
    (:func:`scipy.optimize.linear_sum_assignment`). Otherwise each cluster gets its
    most voted candidate (the first candidate on ties). A cluster whose chosen
    candidate got no vote for it gets no label (``-1``): with ``unique=True`` that is a
    cluster left with a type no answer gave it; the table still shows the leftover.

    Parameters
    ----------
    table
        ``n_clusters x n_candidates`` vote counts (see :func:`vote_table`).
    asked
        How often each cluster was asked (the denominator of the confidence).
    unique
        Give distinct candidates to the clusters when there are enough candidates.

    Returns
    -------
    The :class:`Assignment`.

    Examples
    --------
    >>> import numpy as np
    >>> a = assign_labels(np.array([[3, 2], [3, 0]]), [5, 5])
    >>> a.labels.tolist(), a.confidence.tolist()
    ([1, 0], [0.4, 0.6])
    """
    table = np.asarray(table)
    asked = np.asarray(asked, dtype=np.float64)
    if table.ndim != 2:
        msg = f"The vote table must be 2-dimensional (clusters x candidates), got shape {table.shape}."
        raise ValueError(msg)
    n_clusters, n_candidates = table.shape
    if asked.shape != (n_clusters,):
        msg = f"`asked` has shape {asked.shape}; give one count per cluster ({n_clusters})."
        raise ValueError(msg)
    if unique and n_clusters <= n_candidates:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(table, maximize=True)
        labels = np.full(n_clusters, -1, dtype=np.int64)
        labels[rows] = cols
        method = "assignment"
    else:
        labels = (
            np.argmax(table, axis=1).astype(np.int64) if n_candidates else np.full(n_clusters, -1)
        )
        method = "argmax"
    chosen = np.where(labels >= 0, table[np.arange(n_clusters), np.maximum(labels, 0)], 0)
    labels[chosen == 0] = -1
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(asked > 0, chosen / np.maximum(asked, 1), 0.0)
    return Assignment(
        labels=labels, confidence=confidence.astype(np.float64), votes=chosen, method=method
    )

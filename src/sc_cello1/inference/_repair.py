"""Repair a raw answer: map near-miss labels to candidates, resolve duplicates."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from functools import lru_cache

from sc_cello1._answer import fold_label, one_each

_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=4096)
def _singular(label: str) -> str:
    """:func:`fold_label` with every word's plural cut (``-ies`` -> ``-y``, ``-s``)."""
    words = []
    for w in fold_label(label).split(" "):
        if len(w) > 3 and w.endswith("ies"):
            w = w[:-3] + "y"
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        words.append(w)
    return " ".join(words)


def label_similarity(item: str, candidate: str) -> float:
    """Score how well a predicted label matches a candidate, in ``[0, 1]``.

    1 for an exact match; just below for a match up to case and whitespace, then up to
    punctuation, then up to plurals; else a :class:`difflib.SequenceMatcher` ratio of
    the normalised labels scaled below those.
    """
    if item == candidate:
        return 1.0
    if _SPACE.sub(" ", item.casefold()).strip() == _SPACE.sub(" ", candidate.casefold()).strip():
        return 0.99
    a, b = fold_label(item), fold_label(candidate)
    if a == b:
        return 0.98
    if _singular(item) == _singular(candidate):
        return 0.97
    return 0.9 * difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def repair_items(
    items: Sequence[str],
    candidates: Sequence[str],
    *,
    n_items: int | None = None,
    unique: bool = True,
) -> list[str]:
    """Turn raw answer items into exactly one candidate per cell.

    Each item is scored against each candidate (``label_similarity`` of this module:
    case, whitespace, punctuation and plural variants count as matches; other labels by
    string similarity). With ``unique=True`` and no more cells than candidates, the
    labels are chosen by a maximum-similarity assignment (``scipy``'s
    ``linear_sum_assignment``), so duplicates are resolved and each candidate is used at
    most once; otherwise each item takes its most similar candidate (repeats allowed).
    Missing items (a short answer) get the candidates left over; extra items are dropped.

    Parameters
    ----------
    items
        The raw answer items, in cell order (see :func:`~sc_cello1.metrics.split_items`).
    candidates
        The candidate labels.
    n_items
        Number of cells; default ``len(candidates)``.
    unique
        Use each candidate at most once when possible.

    Returns
    -------
    A list of ``n_items`` candidate labels, in cell order.

    Examples
    --------
    >>> repair_items(["t cells", "T cell", "b-cell"], ["B cell", "NK cell", "T cell"])
    ['T cell', 'NK cell', 'B cell']
    """
    if isinstance(items, str) or isinstance(candidates, str):
        msg = "`items` and `candidates` must be lists of labels, not strings."
        raise TypeError(msg)
    candidates = list(candidates)
    if not candidates:
        msg = "`candidates` is empty; give at least one candidate label."
        raise ValueError(msg)
    n = len(candidates) if n_items is None else n_items
    if n < 1:
        msg = f"n_items={n_items!r} must be at least 1."
        raise ValueError(msg)
    import numpy as np

    rows = list(items)[:n]
    sim = np.zeros((n, len(candidates)))
    for i, item in enumerate(rows):
        for j, cand in enumerate(candidates):
            sim[i, j] = label_similarity(str(item), cand)
    if one_each(unique, n, len(candidates)):
        from scipy.optimize import linear_sum_assignment

        r, c = linear_sum_assignment(-sim)
        chosen = dict(zip(r.tolist(), c.tolist(), strict=True))
        return [candidates[chosen[i]] for i in range(n)]
    return [candidates[int(np.argmax(sim[i]))] for i in range(n)]

"""The parts of a puzzle layout: slots, laid-out puzzles and the tally of answers so far.

See :mod:`sc_cello1.tl._layout` for how the rounds use them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

#: Agreement below which a cluster is re-asked (scOPD re-asks cells below 0.75).
AGREEMENT = 0.75


@dataclass(frozen=True)
class Slot:
    """One cell of a puzzle: a query cluster's cell, or a known cell (label ``known``)."""

    row: int
    cluster: int
    known: str | None = None

    @property
    def is_known(self) -> bool:
        """Whether the cell's label is known (an anchor or reference cell)."""
        return self.known is not None


@dataclass
class LaidPuzzle:
    """A puzzle as laid out: its donor group, round, purpose, slots and candidates."""

    group: int
    round: int
    purpose: str
    slots: list[Slot]
    candidates: list[str]

    @property
    def n_cells(self) -> int:
        """Cells (slots) in the puzzle."""
        return len(self.slots)


@dataclass
class Tally:
    """What the answers said so far, per cluster, updated after each round.

    ``votes``: counted votes by candidate name; ``asked``: times shown as a query cell;
    ``counted``: those whose answer could vote (read strictly, no conflict); both leave
    out items displaced by the one-to-one rule (set after each round from
    :func:`._displaced.explain`); ``shown``:
    cells shown, query and known; ``hinted``: labels a cluster was given in a conflicted
    puzzle while the known cell of that label was answered otherwise (the model put the
    label on this cluster rather than on the known cell: a hypothesis, not a vote).
    """

    n_clusters: int
    votes: list[Counter] = field(default_factory=list)
    asked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    counted: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    shown: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    hinted: list[Counter] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hinted = [Counter() for _ in range(self.n_clusters)]
        self.votes = [Counter() for _ in range(self.n_clusters)]
        self.asked = np.zeros(self.n_clusters, dtype=np.int64)
        self.counted = np.zeros(self.n_clusters, dtype=np.int64)
        self.shown = np.zeros(self.n_clusters, dtype=np.int64)

    def label(self, cluster: int) -> str | None:
        """Return the current label: most counted votes (ties: first sorted), or ``None``."""
        counts = self.votes[cluster]
        if not counts:
            return None
        return min(counts, key=lambda c: (-counts[c], c))

    def agreement(self, cluster: int) -> float:
        """Return the votes for the current label over the answers that could vote."""
        label = self.label(cluster)
        if label is None or self.counted[cluster] == 0:
            return 0.0
        return self.votes[cluster][label] / self.counted[cluster]

    def in_doubt(self, cluster: int) -> bool:
        """Return whether answers voted for it and agree on its label below 0.75."""
        return bool(self.counted[cluster] > 0 and self.agreement(cluster) < AGREEMENT)

    def decided(self, cluster: int, n_samples: int) -> bool:
        """Return whether it has ``min(n_samples, 2)`` counted asks and agreement >= 0.75."""
        return bool(
            self.counted[cluster] >= min(n_samples, 2) and self.agreement(cluster) >= AGREEMENT
        )

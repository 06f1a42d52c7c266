"""Answer items displaced by the one-to-one rule: no votes about their cluster's type.

A model trained on CellPuzzles gives each candidate to one cell at most. When two cells
of one type share a puzzle, only one of them can get the type; the other gets a
candidate that was left over, and that item says nothing about its cluster: it is
**displaced**. An item is displaced when the answer used each candidate at most once,
the item is not its cluster's label, and the label went to another cell of the puzzle
that carries the same label (a cluster now labelled so, a further cell of the same
cluster, or a reference cell of that type). Displaced items are no votes and are left
out of the agreement the layout uses to decide whom to ask again; the final confidence
still counts them as asks that did not name the label (``n_displaced`` counts them).

Which label a cluster has decides which of its items are displaced, so the label is
chosen among the *self-consistent* ones (a candidate that is still the most voted once
the items it displaces are taken out) by the likelihood of the answers under the
trained rule, with the other clusters' labels held fixed (a few sweeps, until no label
changes). Per asked cell, with ``k`` other cells of the puzzle carrying the label ``T``
and ``F`` candidates left once the other cells that got their own label are set aside,
a cell of type ``T`` is answered

- ``T``, with probability ``p / (k + 1)`` (it knew its type and came first of the ``k + 1``);
- another candidate while ``T`` went to one of the ``k``: ``k / (k + 1) / F``;
- another candidate while ``T`` was free or went to a cell of another label:
  ``(1 - p) / F`` (the model did not know, or preferred another cell for ``T``).

``p`` is estimated from the items of cells that had no competitor for their label (the
share answered with it, between 0.5 and 0.99). When no answer uses a candidate twice
and no two cells of one label share a puzzle, nothing is displaced and every label is
the plurality of its votes, as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import log

__all__ = ["AnsweredCell", "Explained", "explain"]


@dataclass(frozen=True)
class AnsweredCell:
    """One cell of an answered puzzle.

    ``cluster`` is the query cluster (``-1`` for a reference cell), ``known`` a reference
    cell's label, ``hit`` the candidate its item named (``None``: no candidate), and
    ``counts`` whether the item is a vote for its cluster (see ``score_answer``).
    """

    cluster: int
    known: str | None
    hit: str | None
    counts: bool


@dataclass
class Explained:
    """Labels, votes and agreement counts once displaced items are taken out."""

    labels: list[str | None]
    votes: list[Counter]
    counted: list[int]
    n_displaced: list[int]
    #: ``(puzzle, position)`` of every displaced item
    displaced: set[tuple[int, int]] = field(default_factory=set)


def _one_to_one(puzzle: Sequence[AnsweredCell]) -> bool:
    hits = [c.hit for c in puzzle if c.hit is not None]
    return len(hits) == len(set(hits))


class _Answers:
    """The answered puzzles, each cluster's asks, and the likelihood of a label."""

    def __init__(
        self, puzzles: Sequence[Sequence[AnsweredCell]], n_clusters: int, n_candidates: int
    ) -> None:
        self.puzzles = puzzles
        self.n_candidates = n_candidates
        self.asks: list[list[tuple[int, int]]] = [[] for _ in range(n_clusters)]
        self.raw: list[Counter[str]] = [Counter() for _ in range(n_clusters)]
        for i, puzzle in enumerate(puzzles):
            for pos, cell in enumerate(puzzle):
                if cell.cluster >= 0 and cell.counts:
                    self.asks[cell.cluster].append((i, pos))
                    if cell.hit is not None:
                        self.raw[cell.cluster][cell.hit] += 1
        self.one = [_one_to_one(p) for p in puzzles]
        self.labels: list[str | None] = [_plurality(v) for v in self.raw]

    def label_of(self, cell: AnsweredCell, c: int, t: str) -> str | None:
        """Return the label a cell carries when cluster ``c`` is taken to be ``t``."""
        if cell.cluster < 0:
            return cell.known
        return t if cell.cluster == c else self.labels[cell.cluster]

    def contest(self, c: int, t: str, i: int, pos: int) -> tuple[int, bool]:
        """Other cells of label ``t`` in the puzzle, and whether ``t`` went to one of them."""
        if not self.one[i]:
            return 0, False
        k, taken = 0, False
        for q, cell in enumerate(self.puzzles[i]):
            if q != pos and self.label_of(cell, c, t) == t:
                k += 1
                taken |= cell.hit == t
        return k, taken

    def estimate_p(self) -> float:
        """Share of items equal to their cluster's label where no other cell carried it."""
        right = n = 0
        for c, t in enumerate(self.labels):
            if t is None:
                continue
            for i, pos in self.asks[c]:
                hit = self.puzzles[i][pos].hit
                if hit is not None and self.contest(c, t, i, pos)[0] == 0:
                    n += 1
                    right += hit == t
        return min(max(right / n if n else 0.75, 0.5), 0.99)

    def log_free(self, i: int, pos: int) -> float:
        """Log of the candidates left for a cell that did not get its type."""
        if not self.one[i]:
            return log(max(self.n_candidates - 1, 1))
        own = sum(
            1
            for q, cell in enumerate(self.puzzles[i])
            if q != pos and cell.hit is not None and cell.hit == self.label_of(cell, -1, "")
        )
        return log(max(self.n_candidates - own, 1))

    def weigh(self, c: int, t: str, p: float) -> tuple[float, Counter[str]]:
        """Log-likelihood of cluster ``c``'s items if it is ``t``, and the items kept as votes."""
        score, kept = 0.0, Counter[str]()
        for i, pos in self.asks[c]:
            hit = self.puzzles[i][pos].hit
            if hit is None:
                continue
            k, taken = self.contest(c, t, i, pos)
            if hit == t:
                score += log(p / (k + 1))
            elif taken:
                score += log(k / (k + 1)) - self.log_free(i, pos)
                continue  # displaced
            else:
                score += log(1 - p) - self.log_free(i, pos)
            kept[hit] += 1
        return score, kept

    def relabel(self, p: float) -> list[str | None]:
        """Each cluster's most likely self-consistent label, the others' held fixed."""
        new = list(self.labels)
        for c, raw in enumerate(self.raw):
            options = []
            for t in raw:
                score, kept = self.weigh(c, t, p)
                # self-consistent: still the most voted once its displaced items are out
                if _plurality(kept) == t:
                    options.append((-score, -raw[t], t))
            if options:
                new[c] = min(options)[2]
        return new


def explain(
    puzzles: Sequence[Sequence[AnsweredCell]],
    n_clusters: int,
    *,
    candidates: Sequence[str],
    max_sweeps: int = 10,
) -> Explained:
    """Find the displaced items of the answered puzzles and the labels they leave.

    Parameters
    ----------
    puzzles
        Every answered puzzle, its cells in slot order (a puzzle that gave no votes has
        no cell with ``counts``).
    n_clusters
        Number of clusters.
    candidates
        The candidates of the puzzles.
    max_sweeps
        Sweeps of relabelling at most (it stops once no label changes).

    Returns
    -------
    The :class:`Explained` labels, votes and counts.
    """
    answers = _Answers(puzzles, n_clusters, len(candidates))
    for _ in range(max_sweeps):
        p = answers.estimate_p()
        new = answers.relabel(p)
        if new == answers.labels:
            break
        answers.labels = new
    labels = answers.labels
    out = Explained(
        labels, [Counter() for _ in range(n_clusters)], [0] * n_clusters, [0] * n_clusters
    )
    for c, final in enumerate(labels):
        for i, pos in answers.asks[c]:
            hit = puzzles[i][pos].hit
            if (
                final is not None
                and hit not in (None, final)
                and answers.contest(c, final, i, pos)[1]
            ):
                out.displaced.add((i, pos))
                out.n_displaced[c] += 1
                continue
            out.counted[c] += 1
            if hit is not None:
                out.votes[c][hit] += 1
    return out


def _plurality(votes: Counter) -> str | None:
    if not votes:
        return None
    return min(votes, key=lambda t: (-votes[t], t))

"""The puzzle layout of ``tl.annotate``: which cells share a puzzle, round by round.

A puzzle is a list of **slots** and its own candidate list. A slot shows one cell and is
either a *query* cell (a cluster whose label is being asked: its answer item is a vote)
or a *known* cell (a cell whose label is known: a decided cluster acting as an anchor
now, a labelled reference cell later). The collector scores known cells separately from
votes: a known cell answered against its label marks the puzzle as *conflicted*, and the
votes of that puzzle do not count as agreement.

The small API (used by :mod:`._annotate_rounds` and meant for reference cells):

- :class:`Slot` ``(row, cluster, known)``: ``row`` is the ``obs`` row shown; ``cluster``
  the query cluster's index (``-1`` for a known cell that belongs to no cluster);
  ``known`` the known label (``None`` for a query cell).
- :class:`LaidPuzzle` ``(group, round, purpose, slots, candidates)``.
- :class:`Tally`: what the answers said so far (counted votes, asks, conflicts) per
  cluster; :meth:`Tally.label` is a cluster's current label.
- :class:`Layout` lays out one round at a time from the tally: :meth:`Layout.next_round`;
  :attr:`Layout.lists_all` is set by the caller once the model is seen listing every
  candidate for fewer cells (later puzzles then all have N cells).

How the rounds go, per donor group of ``k`` clusters, with ``C`` candidates and puzzles
of ``N = min(C, 15, max_cells_per_puzzle, k)`` cells (a trained puzzle has N cells and
N candidates, each once):

1. **Round 1, anti-clustered.** The clusters are split into ``ceil(k / N)`` puzzles so
   that clusters in one puzzle are far apart in ``use_rep`` (centroid distances):
   over-clustered subclusters of one type are neighbours, and two cells of one type in
   one puzzle cannot both get it from a model that uses each candidate once. Puzzles
   are padded to N cells with further clusters (their next distinct cell).
2. **Later rounds, distinct labels.** A cluster is asked again while it has fewer than
   ``n_samples`` asks or is *undecided* (agreement below 0.75, the threshold at which
   scOPD re-asks cells; mLLMCelltype flags clusters below 0.7). Clusters share a puzzle
   only when their current labels differ, and an undecided cluster shares none with a
   cluster labelled as one of its *hypotheses* (its runner-up, a label it was given
   over a known cell of that label, and its two nearest clusters' labels): a puzzle whose other cells carry the undecided cluster's
   true type would force it onto another label. Puzzles are padded to N cells with
   decided clusters as known cells (anchors) whose labels are not yet in the puzzle.
3. **Stop** when no cluster needs an ask, or its budget is spent: at most
   ``3 * n_samples`` cells per cluster (query and known appearances together), and
   never more than its number of cells: every cell is shown once at most, so repeats
   never count as agreement and a small cluster is asked fewer times.

Where the data do not allow N cells (fewer clusters than candidates, or too few
distinct labels among the clusters that may share a puzzle), a puzzle has fewer cells
than candidates; a model that lists every candidate cannot answer those, and its
answers then give no votes (the reason is recorded per puzzle). A donor group with a
single cluster gets one-cell puzzles: the vote is the model's choice for that cell
among all candidates, with no other cell to compare it to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ._layout_packed import PackedRounds
from ._layout_tally import AGREEMENT, LaidPuzzle, Slot, Tally

__all__ = ["AGREEMENT", "BUDGET_FACTOR", "LaidPuzzle", "Layout", "Slot", "Tally"]

#: Budget of cells per cluster, as a multiple of ``n_samples``.
BUDGET_FACTOR = 3
#: Nearest clusters whose labels are an undecided cluster's hypotheses.
N_NEIGHBOURS = 2


class Layout(PackedRounds):
    """Lays out the puzzles of ``tl.annotate`` one round at a time (see the module docstring).

    Parameters
    ----------
    pools
        ``{(group, cluster): [row, row, ...]}``: the distinct cells each cluster may show,
        in the order they are shown (the cell nearest the centroid first).
    centroids
        ``{(group, cluster): centroid}`` in ``use_rep`` (for the distances).
    candidates
        The candidate names (each puzzle lists them in ``sorted()`` order).
    n_samples
        Asks per cluster before it can be decided; the budget is ``3 * n_samples`` cells.
    max_cells
        Largest puzzle (``max_cells_per_puzzle``).
    rng
        Random generator of the layout.
    """

    def __init__(
        self,
        pools: Mapping[tuple[int, int], Sequence[int]],
        centroids: Mapping[tuple[int, int], np.ndarray],
        candidates: Sequence[str],
        *,
        n_samples: int,
        max_cells: int,
        rng: np.random.Generator,
    ) -> None:
        self.pools = {k: list(v) for k, v in pools.items()}
        self.used = dict.fromkeys(self.pools, 0)
        self.candidates = sorted(candidates)
        self.n_samples = n_samples
        self.budget = BUDGET_FACTOR * n_samples
        self.rng = rng
        self.round = 0
        #: Set once an answer listed every candidate for fewer cells: later puzzles then
        #: have N cells (or are not asked), with no hypothesis left out.
        self.lists_all = False
        self.groups: dict[int, list[int]] = {}
        for group, cluster in sorted(self.pools):
            self.groups.setdefault(group, []).append(cluster)
        self.size = {
            g: max(1, min(len(self.candidates), max_cells, len(cs)))
            for g, cs in self.groups.items()
        }
        self.dist: dict[int, np.ndarray] = {}
        #: per group: how often two clusters shared a puzzle; whether j is among i's nearest
        self.met: dict[int, np.ndarray] = {}
        self.near: dict[int, np.ndarray] = {}
        for g, cs in self.groups.items():
            cen = np.stack([np.asarray(centroids[g, c], dtype=np.float64) for c in cs])
            sq = (cen**2).sum(1)
            self.dist[g] = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * cen @ cen.T, 0))
            self.met[g] = np.zeros((len(cs), len(cs)))
            near = np.zeros((len(cs), len(cs)), dtype=bool)
            # nearest clusters never share a puzzle after round 1 where the data allow
            # (over-clustered subclusters of one type are neighbours); not with few clusters
            if len(cs) > 2 * max(self.size[g], 1):
                for i in range(len(cs)):
                    order = [j for j in np.argsort(self.dist[g][i], kind="stable") if j != i]
                    near[i, order[:N_NEIGHBOURS]] = True
            self.near[g] = near

    # ------------------------------------------------------------------ helpers

    def _left(self, group: int, cluster: int) -> int:
        """Cells the cluster may still show in this group (distinct cells, within budget)."""
        return len(self.pools[group, cluster]) - self.used[group, cluster]

    def _take(self, group: int, cluster: int, tally: Tally, known: str | None = None) -> Slot:
        row = self.pools[group, cluster][self.used[group, cluster]]
        self.used[group, cluster] += 1
        tally.shown[cluster] += 1
        return Slot(row=int(row), cluster=cluster, known=known)

    def _can_show(self, group: int, cluster: int, tally: Tally) -> bool:
        return self._left(group, cluster) > 0 and tally.shown[cluster] < self.budget

    def _hypotheses(self, group: int, cluster: int, tally: Tally) -> set[str]:
        """Return the labels a cluster in doubt might be: runner-up, hints, neighbours' labels.

        Its own current label is left out (it is in the puzzle already).
        """
        own = tally.label(cluster)
        counts = tally.votes[cluster]
        others = sorted((c for c in counts if c != own), key=lambda c: (-counts[c], c))
        out = set(others[:1]) | (set(tally.hinted[cluster]) - {own})
        cs = self.groups[group]
        i = cs.index(cluster)
        order = [j for j in np.argsort(self.dist[group][i], kind="stable") if j != i]
        for j in order[:N_NEIGHBOURS]:
            label = tally.label(cs[j])
            if label is not None and label != own:
                out.add(label)
        return out

    def _farthest(
        self, group: int, cluster: int, tally: Tally, free: Callable[[int], bool]
    ) -> tuple[int, str | None] | None:
        """Return the cluster farthest from ``cluster`` that can show a cell (no 1-cell puzzle).

        A decided one comes as a known cell; its label may be one of the hypotheses, but
        the farthest cluster is the least likely to share the type.
        """
        cs = self.groups[group]
        i = cs.index(cluster)
        for j in np.argsort(-self.dist[group][i], kind="stable"):
            other = cs[int(j)]
            if other != cluster and free(other):
                decided = tally.decided(other, self.n_samples)
                return other, (tally.label(other) if decided else None)
        return None

    def _puzzle(self, group: int, purpose: str, slots: list[Slot]) -> LaidPuzzle:
        cs = self.groups[group]
        members = [cs.index(s.cluster) for s in slots if s.cluster >= 0]
        for i in members:
            for j in members:
                if i != j:
                    self.met[group][i, j] += 1
        order = self.rng.permutation(len(slots))
        return LaidPuzzle(
            group=group,
            round=self.round,
            purpose=purpose,
            slots=[slots[i] for i in order],
            candidates=list(self.candidates),
        )

    # ------------------------------------------------------------------ rounds

    def next_round(self, tally: Tally) -> list[LaidPuzzle]:
        """Lay out the next round from what the answers said so far (empty: stop)."""
        self.round += 1
        out: list[LaidPuzzle] = []
        for group in sorted(self.groups):
            if self.round == 1:
                out += self._anti_clustered(group, tally)
            elif self.lists_all:
                out += self._packed(group, tally)
            else:
                out += self._distinct_labels(group, tally)
        return out

    def _needs_ask(self, group: int, cluster: int, tally: Tally) -> bool:
        if not self._can_show(group, cluster, tally):
            return False
        return tally.counted[cluster] < self.n_samples or not tally.decided(cluster, self.n_samples)

    def _anti_clustered(self, group: int, tally: Tally) -> list[LaidPuzzle]:
        """Round 1: clusters far apart in ``use_rep`` share a puzzle; padded to N cells."""
        cs = self.groups[group]
        size = self.size[group]
        dist = self.dist[group]
        k = len(cs)
        n_parts = -(-k // size)
        order = [int(i) for i in self.rng.permutation(k)]
        members: list[list[int]] = [[] for _ in range(n_parts)]
        # seeds: farthest-point sampling from a random start
        members[0].append(order[0])
        chosen = {order[0]}
        for p in range(1, n_parts):
            rest = [i for i in order if i not in chosen]
            best = max(rest, key=lambda i: min(dist[i, j] for j in chosen))
            members[p].append(best)
            chosen.add(best)
        caps = [len(a) for a in np.array_split(np.arange(k), n_parts)]
        for i in order:
            if i in chosen:
                continue
            open_parts = [p for p in range(n_parts) if len(members[p]) < caps[p]]
            p = max(open_parts, key=lambda p: min(dist[i, j] for j in members[p]))
            members[p].append(i)
            chosen.add(i)
        out = []
        later = {i for part in members for i in part}  # clusters whose own puzzle is to come
        for part in members:
            later -= set(part)
            slots = [self._take(group, cs[i], tally) for i in part]
            # pad to N cells with further clusters, farthest from the members first; never
            # with the last cell of a cluster whose own puzzle comes later
            pads = sorted(
                (i for i in range(k) if i not in part),
                key=lambda i: -min(dist[i, j] for j in part),
            )
            for i in pads:
                if len(slots) >= size:
                    break
                if self._can_show(group, cs[i], tally) and (
                    i not in later or self._left(group, cs[i]) > 1
                ):
                    slots.append(self._take(group, cs[i], tally))
            out.append(self._puzzle(group, "anti-clustered", slots))
        return out

    def _distinct_labels(self, group: int, tally: Tally) -> list[LaidPuzzle]:
        """Later rounds: queries with distinct labels, no hypothesis clash, anchors as padding."""
        cs = self.groups[group]
        size = self.size[group]
        queries = [c for c in cs if self._needs_ask(group, c, tally)]
        if not queries:
            return []
        queries = [queries[i] for i in self.rng.permutation(len(queries))]
        # the most doubtful first: they have the most constraints
        queries.sort(key=lambda c: tally.agreement(c))
        barred = {
            c: (self._hypotheses(group, c, tally) if tally.in_doubt(c) else set()) for c in queries
        }
        idx = {c: i for i, c in enumerate(cs)}
        met = self.met[group]
        near = self.near[group]

        def fits(p: dict, c: int, label: str | None, bars: set[str]) -> bool:
            if len(p["clusters"]) >= size:
                return False
            if label is not None and (label in p["labels"] or label in p["barred"]):
                return False
            if bars & p["labels"]:
                return False
            return not any(near[idx[c], idx[m]] or near[idx[m], idx[c]] for m in p["clusters"])

        def met_with(p: dict, c: int) -> float:
            return float(sum(met[idx[c], idx[m]] for m in p["clusters"]))

        labels = Counter(tally.label(c) for c in queries)
        limit = max(-(-len(queries) // size), max(labels.values()))
        open_puzzles: list[dict] = []
        for c in queries:
            label = tally.label(c)
            options = [p for p in open_puzzles if fits(p, c, label, barred[c])]
            best = min(options, key=lambda p: met_with(p, c)) if options else None
            if best is None or (met_with(best, c) > 0 and len(open_puzzles) < limit):
                best = {"clusters": [], "labels": set(), "barred": set()}
                open_puzzles.append(best)
            best["clusters"].append(c)
            if label is not None:
                best["labels"].add(label)
            best["barred"] |= barred[c]
        decided = [c for c in cs if c not in queries and tally.label(c) is not None]
        reserved: Counter = Counter(queries)

        def free(a: int) -> bool:
            left = self._left(group, a) - reserved[a]
            return left > 0 and tally.shown[a] + reserved[a] < self.budget

        out = []
        for p in open_puzzles:
            members: list[tuple[int, str | None]] = [(c, None) for c in p["clusters"]]
            order = self.rng.permutation(len(decided))
            for i in sorted(order, key=lambda i: met_with(p, decided[i])):
                a = decided[i]
                if len(members) >= size:
                    break
                label = tally.label(a)
                if not fits(p, a, label, set()) or not free(a):
                    continue
                reserved[a] += 1
                members.append((a, label))
                p["clusters"].append(a)
                p["labels"].add(label)
            if len(members) == 1 < len(cs):
                extra = self._farthest(group, members[0][0], tally, free)
                if extra is not None:
                    reserved[extra[0]] += 1
                    members.append(extra)
            if len(members) == 1 < len(cs):
                continue  # no 1-cell puzzle where the group has other clusters
            slots = [self._take(group, c, tally, known=known) for c, known in members]
            out.append(self._puzzle(group, "distinct labels", slots))
        return out

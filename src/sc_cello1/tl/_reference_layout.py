"""The puzzle layout of ``tl.annotate`` with a labelled reference.

It follows :class:`~sc_cello1.tl._layout.Layout` (rounds, budget, distinct cells,
stopping rule) with two changes:

- **Every round, round 1 included, puts together clusters whose labels differ**: a
  cluster's label is its current one from the answers, or, before it has counted votes,
  the reference prior (the most frequent label transferred onto its cells). A cluster
  also shares no puzzle with a cluster labelled as one of its *plausible* types: the
  transferred labels that hold at least :data:`PLAUSIBLE_SHARE` of its cells, its
  runner-up votes and, in doubt, its hypotheses.
- **Reference cells fill each puzzle to N cells and N candidates** (``N = min(C, 15,
  max_cells_per_puzzle)`` for ``C`` candidates), one per candidate type that no
  member's label or plausible type is, each a different reference cell of that type
  (known cells): a permutation model then has one right answer for every cell. Where
  those types are too few the puzzle keeps fewer cells than candidates; only once the
  model is seen listing every candidate for fewer cells (it answers only puzzles of N
  cells) is it filled to N cells with *spares*: further reference cells of the types
  already filled (a model that uses each candidate once gives the type to one of them
  and a spare candidate to the others; a type counts as answered right when one of its
  cells got it). Types a member may be (but is not labelled) are used only when no
  other type is left, least transferred first, at the risk that such a known cell
  takes the member's true type. Reference cells do not count against a cluster's
  budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._layout import LaidPuzzle, Layout, Slot, Tally

#: A transferred label held by at least this share of a cluster's cells is a type the
#: cluster may be: no cell of it is put beside the cluster (as a query or known cell).
PLAUSIBLE_SHARE = 0.1


class ReferenceLayout(Layout):
    """:class:`Layout` whose puzzles are laid out from the prior and filled with reference cells.

    Parameters
    ----------
    pools, centroids, candidates, n_samples, max_cells, rng
        As :class:`Layout`.
    prior_labels
        Per cluster: the prior label as a candidate name (``None``: the prior names no
        candidate).
    plausible
        Per cluster: the candidate names the prior says it may be (its label included).
    known_pool
        Per candidate: the reference cells that may be shown, as negative rows
        (``-1 - reference row``).
    shares
        Per cluster: the share of its cells transferred to each candidate.
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
        prior_labels: Sequence[str | None],
        plausible: Sequence[set[str]],
        known_pool: Mapping[str, Sequence[int]],
        shares: Sequence[Mapping[str, float]] | None = None,
    ) -> None:
        super().__init__(
            pools, centroids, candidates, n_samples=n_samples, max_cells=max_cells, rng=rng
        )
        self.prior_labels = list(prior_labels)
        self.plausible = [set(s) for s in plausible]
        self.shares = [dict(d) for d in shares] if shares is not None else [{} for _ in plausible]
        self.known_pool = {k: list(v) for k, v in known_pool.items() if v}
        self.known_used = dict.fromkeys(self.known_pool, 0)
        # N counts known cells too: a puzzle is filled to N = min(C, 15, max_cells)
        n = max(1, min(len(self.candidates), max_cells))
        self.size = dict.fromkeys(self.groups, n)

    def _label_of(self, cluster: int, tally: Tally) -> str | None:
        label = tally.label(cluster)
        return label if label is not None else self.prior_labels[cluster]

    def _maybe(self, group: int, cluster: int, tally: Tally) -> set[str]:
        """Types the cluster may be besides its label (never put beside it)."""
        out = set(self.plausible[cluster]) | set(tally.votes[cluster])
        if tally.in_doubt(cluster):
            out |= self._hypotheses(group, cluster, tally)
        out.discard(self._label_of(cluster, tally))  # type: ignore[arg-type]
        return out

    def _known(self, label: str) -> Slot:
        pool = self.known_pool[label]
        row = pool[self.known_used[label] % len(pool)]
        self.known_used[label] += 1
        return Slot(row=int(row), cluster=-1, known=label)

    def next_round(self, tally: Tally) -> list[LaidPuzzle]:
        """Lay out the next round (empty: stop)."""
        self.round += 1
        out: list[LaidPuzzle] = []
        for group in sorted(self.groups):
            out += self._round(group, tally)
        return out

    def _round(self, group: int, tally: Tally) -> list[LaidPuzzle]:
        cs = self.groups[group]
        size = self.size[group]
        queries = [c for c in cs if self._needs_ask(group, c, tally)]
        if not queries:
            return []
        queries = [queries[i] for i in self.rng.permutation(len(queries))]
        queries.sort(key=lambda c: tally.agreement(c) if tally.counted[c] else 0.0)
        label = {c: self._label_of(c, tally) for c in queries}
        maybe = {c: self._maybe(group, c, tally) for c in queries}
        idx = {c: i for i, c in enumerate(cs)}
        met = self.met[group]

        def fits(p: dict, c: int) -> bool:
            if len(p["clusters"]) >= size:
                return False
            own = label[c]
            if own is not None and (own in p["labels"] or own in p["maybe"]):
                return False
            return not (maybe[c] & p["labels"])

        open_puzzles: list[dict] = []
        for c in queries:
            options = [p for p in open_puzzles if fits(p, c)]
            if options:
                best = min(options, key=lambda p: sum(met[idx[c], idx[m]] for m in p["clusters"]))
            else:
                best = {"clusters": [], "labels": set(), "maybe": set(), "share": {}}
                open_puzzles.append(best)
            best["clusters"].append(c)
            if label[c] is not None:
                best["labels"].add(label[c])
            best["maybe"] |= maybe[c]
            for t, v in self.shares[c].items():
                best["share"][t] = max(best["share"].get(t, 0.0), v)
        out = []
        for p in open_puzzles:
            slots = [self._take(group, c, tally) for c in p["clusters"]]
            free = [t for t in self.candidates if t in self.known_pool and t not in p["labels"]]
            safe = [t for t in free if t not in p["maybe"]]
            risky = [t for t in free if t in p["maybe"]]
            # types no member may be first; then, only for a model seen listing every
            # candidate (it answers only puzzles of N cells), types a member may be, least
            # transferred first: such a known cell can take the member's true type
            risky.sort(key=lambda t: p["share"].get(t, 0.0))
            fill = [safe[int(i)] for i in self.rng.permutation(len(safe))]
            if self.lists_all:
                # spares: further reference cells of the types already filled (one gets
                # the label, the rest spare candidates); risky types only without any
                fill = fill + fill * size if fill else risky
            for t in fill:
                if len(slots) >= size:
                    break
                slots.append(self._known(t))
            out.append(self._puzzle(group, "reference", slots))
        return out

"""Later rounds of :class:`~sc_cello1.tl._layout.Layout` for a model that lists every candidate.

Such a model answers with N items whatever the number of cells, so only puzzles of
exactly N cells can vote; :class:`PackedRounds` lays them out (see its docstring and
``docs/annotation.md``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._layout_tally import LaidPuzzle, Slot, Tally


def _packed_round(layout: Any, group: int, tally: Tally) -> list[LaidPuzzle]:
    """Later rounds for a model that lists every candidate: puzzles of exactly N cells.

    Such a model can vote only in a puzzle of N cells. Queries share a puzzle only
    when they *clash* with none of its cells: two cells of one current label, a cell
    labelled as another's hypothesis (its runner-up, hints, its neighbours' labels) or
    neighbours in ``use_rep`` (pairs that met before are avoided next). Each puzzle is
    then filled to N cells with decided clusters as known cells: first labels not yet
    in the puzzle, then, where the data have too few such labels, further cells of an
    anchor already in the puzzle (*spares*: a model that uses each candidate once
    gives the label to one of them and a spare candidate to the rest, so no query cell
    has to lose its type; the spares' other items are displaced, see :mod:`._displaced`). The queries of puzzles that known cells cannot fill
    (before any cluster is decided, or once the anchors' budget is spent) are put
    together again, each once, in as few puzzles as they need, labels kept apart where
    possible; only their remaining cells are a clash, least costly first
    (:func:`clash_cost`), clusters not asked in the round first.
    """
    cs = layout.groups[group]
    size = layout.size[group]
    queries = [c for c in cs if layout._needs_ask(group, c, tally)]
    if not queries:
        return []
    idx = {c: i for i, c in enumerate(cs)}
    labels = {c: tally.label(c) for c in cs}
    hyp = {c: layout._hypotheses(group, c, tally) for c in cs}
    met, near = layout.met[group], layout.near[group]

    # labels the votes (not the neighbours) say a query may be: two queries that may
    # both be one type compete for it
    voted = {c: set(tally.votes[c]) | set(tally.hinted[c]) for c in queries}

    def clashes(c: int, m: int) -> bool:
        lc, lm = labels[c], labels[m]
        if lc is not None and (lc == lm or lc in hyp[m]):
            return True
        if lm is not None and lm in hyp[c]:
            return True
        if c in voted and m in voted and voted[c] & voted[m]:
            return True
        return bool(near[idx[c], idx[m]] or near[idx[m], idx[c]])

    def met_with(part: list[int], c: int) -> float:
        return float(sum(met[idx[c], idx[m]] for m in part))

    queries = [queries[i] for i in layout.rng.permutation(len(queries))]
    queries.sort(key=lambda c: tally.agreement(c))
    parts: list[list[int]] = []
    for c in queries:
        options = [p for p in parts if len(p) < size and not any(clashes(c, m) for m in p)]
        if options:
            min(options, key=lambda p: met_with(p, c)).append(c)
        else:
            parts.append([c])
    in_query = set(queries)
    reserved: Counter = Counter(queries)

    def free(c: int) -> bool:
        left = layout._left(group, c) - reserved[c]
        return left > 0 and tally.shown[c] + reserved[c] < layout.budget

    anchors = [c for c in cs if c not in in_query and tally.decided(c, layout.n_samples)]

    def fill_clean(part: list[int]) -> tuple[list[int], list[int]]:
        """Known cells beside ``part``: new labels first, then spares of its anchors."""
        members, known = list(part), []
        order = [anchors[i] for i in layout.rng.permutation(len(anchors))]
        for spare in (False, True):
            for a in sorted(order, key=lambda a: met_with(members, a)):
                if len(members) >= size:
                    break
                if not free(a) or any(clashes(a, q) for q in part):
                    continue  # (a query's label is never a known cell's label)
                if not spare and labels[a] in {labels[m] for m in members}:
                    continue
                if spare and a not in known:
                    continue  # a spare is a further cell of an anchor in the puzzle
                reserved[a] += 1
                members.append(a)
                known.append(a)
        return members, known

    def release(members: list[int], part: list[int]) -> None:
        for m in members[len(part) :]:
            reserved[m] -= 1

    filled: list[tuple[list[int], list[int], list[int]]] = []
    short: list[int] = []
    for part in parts:
        members, known = fill_clean(part)
        if len(members) >= size:
            filled.append((part, members, known))
        else:
            release(members, part)
            short += part
    # the queries of parts that known cells cannot fill are put together again, each
    # once, in as few puzzles as they need (labels kept apart where possible)
    groups: list[list[int]] = [[] for _ in range(-(-len(short) // size))]
    for c in short:
        open_groups = [g for g in groups if len(g) < size]
        min(open_groups, key=lambda g: clash_cost(layout, g, c, labels, hyp, idx, group)).append(c)
    for part in groups:
        members, known = fill_clean(part)
        # last resort: the least costly clash (a smaller puzzle cannot vote at all),
        # clusters not asked in this round first
        while len(members) < size:
            ok = [a for a in cs if a not in members and free(a)]
            if not ok:
                break

            def cost(a: int, members: list[int] = members) -> float:
                again = 1000.0 if a in in_query else 0.0
                return again + clash_cost(layout, members, a, labels, hyp, idx, group)

            pick = min(ok, key=cost)
            reserved[pick] += 1
            members.append(pick)
            if pick not in in_query and tally.decided(pick, layout.n_samples):
                known.append(pick)
        if len(members) < size:
            for m in members:
                reserved[m] -= 1
            continue  # a smaller puzzle cannot vote with this model
        filled.append((part, members, known))
    out = []
    for part, members, known in filled:
        slots = [
            layout._take(
                group, m, tally, known=labels[m] if i >= len(part) and m in known else None
            )
            for i, m in enumerate(members)
        ]
        out.append(layout._puzzle(group, "N cells", slots))
    return out


def clash_cost(
    layout: Any,
    members: list[int],
    c: int,
    labels: Mapping[int, str | None],
    hyp: Mapping[int, set[str]],
    idx: Mapping[int, int],
    group: int,
) -> float:
    """Cost of putting ``c`` beside ``members``: same label, hypothesis, neighbours, met."""
    met, near = layout.met[group], layout.near[group]
    out = 0.0
    for m in members:
        if labels[c] is not None and labels[c] == labels[m]:
            out += 100.0
        if labels[m] in hyp[c] or labels[c] in hyp[m]:
            out += 30.0
        if near[idx[c], idx[m]] or near[idx[m], idx[c]]:
            out += 10.0
        out += met[idx[c], idx[m]]
    return out


class PackedRounds:
    """The rounds of :class:`~sc_cello1.tl._layout.Layout` for a model that lists every candidate."""

    groups: dict[int, list[int]]
    size: dict[int, int]
    candidates: list[str]
    dist: dict[int, np.ndarray]
    met: dict[int, np.ndarray]
    near: dict[int, np.ndarray]
    n_samples: int
    budget: int
    round: int
    rng: np.random.Generator
    _needs_ask: Callable[[int, int, Tally], bool]
    _hypotheses: Callable[[int, int, Tally], set[str]]
    _left: Callable[[int, int], int]
    _take: Callable[..., Slot]
    _puzzle: Callable[[int, str, list[Slot]], LaidPuzzle]

    def _packed(self, group: int, tally: Tally) -> list[LaidPuzzle]:
        """Lay out one round of puzzles of exactly N cells (see :func:`_packed_round`)."""
        return _packed_round(self, group, tally)

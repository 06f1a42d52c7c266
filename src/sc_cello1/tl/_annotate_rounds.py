"""Stage 4 of ``tl.annotate``: the puzzles asked round by round, and each answer scored.

Each round is laid out by :class:`~sc_cello1.tl._layout.Layout` from what the answers of
the earlier rounds said, built into :class:`~sc_cello1.data.Puzzle` objects, answered by
:func:`~sc_cello1.tl.solve` and scored by :func:`score_answer`: an answer votes only when
it is read strictly (:func:`sc_cello1._answer.read_items`: one item per cell inside
``<answer>...</answer>``), its query cells' and anchors' items are votes, and its
reference cells are scored against their labels (too few answered with them mark a
conflict, and the puzzle's votes do not count). After each round the items displaced by
the one-to-one rule are taken out of the tally (:func:`._displaced.explain`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._answer import read_items, split_slots, strict_answer
from sc_cello1._logging import logger

from ._cluster_puzzles import context_for
from ._displaced import AnsweredCell, Explained, explain
from ._layout import LaidPuzzle, Layout, Tally

if TYPE_CHECKING:
    import pandas as pd

    from sc_cello1.data import Puzzle

    from ._names import NameMatcher


@dataclass
class Scored:
    """What one answer said: why it did (not) vote, the matched item per slot, known cells."""

    reason: str
    n_items: int
    items: list[str] | None
    hits: list[int | None]
    n_known: int
    known_right: int
    conflict: str
    n_spare: int = 0
    #: per slot: whether its item is a vote for its cluster
    counts: list[bool] = field(default_factory=list)

    @property
    def n_scored(self) -> int:
        """Known labels scored: known cells less spares (repeats of a known label)."""
        return self.n_known - self.n_spare

    @property
    def voted(self) -> bool:
        """Whether the answer's items counted as votes (read strictly, no conflict)."""
        return self.items is not None and not self.conflict


def score_answer(
    laid: LaidPuzzle,
    text: str,
    matcher: NameMatcher,
    candidates: Sequence[str],
    *,
    min_known_score: float = 1.0,
) -> Scored:
    """Read one answer strictly and score its query and known cells.

    Known cells are scored per label: a label shown on several known cells (*spares*,
    where the data have too few labels to fill a puzzle to N cells) can be answered on
    one of them only by a model that uses each candidate once, so the label is right
    when one of its known cells was answered with it. The puzzle is *conflicted* (its
    votes do not count) when fewer than ``min_known_score`` of its known labels were
    right (default: any known label answered on none of its cells).
    """
    items, reason = read_items(text, laid.n_cells)
    n_items = len(items) if items is not None else _n_items(text)
    known_cells = [s.known for s in laid.slots if s.known is not None]
    n_known = len(known_cells)
    n_spare = n_known - len(set(known_cells))
    if items is None:
        no = [False] * laid.n_cells
        return Scored(reason, n_items, None, [None] * laid.n_cells, n_known, 0, "", n_spare, no)
    hits = [matcher.match(item) if item else None for item in items]
    answered: dict[str, list[str]] = {}
    right: set[str] = set()
    for slot, item, hit in zip(laid.slots, items, hits, strict=True):
        if slot.known is None or slot.cluster >= 0:
            continue  # anchors (clusters of the query) vote; reference cells are scored
        answered.setdefault(slot.known, []).append(item)
        if hit is not None and candidates[hit] == slot.known:
            right.add(slot.known)
    conflicts = [
        f"known {label!r} answered {' / '.join(repr(i) for i in got)}"
        for label, got in answered.items()
        if label not in right
    ]
    if conflicts and len(right) >= min_known_score * len(answered):
        conflicts = []
    conflict = "; ".join(conflicts)
    # query cells and anchors vote (a spare answered otherwise is displaced); no cell of
    # a conflicted puzzle, and no reference cell
    counts = [not conflict and slot.cluster >= 0 for slot in laid.slots]
    # the table scores anchors as well as reference cells
    n_right = len(
        {
            s.known
            for s, h in zip(laid.slots, hits, strict=True)
            if s.known is not None and h is not None and candidates[h] == s.known
        }
    )
    return Scored(reason, n_items, items, hits, n_known, n_right, conflict, n_spare, counts)


def _n_items(text: str) -> int:
    answer = strict_answer(text)
    return 0 if answer is None else len(split_slots(answer))


def to_puzzle(
    laid: LaidPuzzle,
    index: int,
    *,
    top_genes: Mapping[int, list[str]],
    obs: pd.DataFrame,
    cluster_names: Sequence[str],
    group_names: Sequence[str],
    context: str | Callable[[pd.DataFrame], str] | None,
    context_fields: Sequence[str] | Mapping[str, str],
    has_cellxgene: bool,
    known_ids: Mapping[int, str] | None = None,
) -> Puzzle:
    """Build the :class:`~sc_cello1.data.Puzzle` of a laid-out puzzle.

    Negative rows are reference cells (``known_ids`` names them); the context sentence
    is the query donor's (from the puzzle's query cells).
    """
    from sc_cello1.data import Puzzle

    rows = [s.row for s in laid.slots]
    obs_names = obs.index.astype(str)
    query_rows = [r for r in rows if r >= 0]
    text = context_for(
        obs,
        query_rows,
        context=context,
        context_fields=context_fields,
        has_cellxgene=has_cellxgene,
    )
    ids = known_ids or {}
    return Puzzle(
        context=text,
        genes=[top_genes[r] for r in rows],
        candidates=list(laid.candidates),
        cell_ids=[obs_names[r] if r >= 0 else ids[r] for r in rows],
        group=group_names[laid.group],
        meta={
            "id": index,
            "round": laid.round,
            "purpose": laid.purpose,
            "clusters": [cluster_names[s.cluster] if s.cluster >= 0 else "" for s in laid.slots],
            "known": [s.known for s in laid.slots],
            "source": "sc_cello1.tl.annotate",
        },
    )


@dataclass
class Asked:
    """Every puzzle asked, its answer record and score, and the final tally."""

    laid: list[LaidPuzzle]
    puzzles: list[Puzzle]
    records: list[Mapping[str, Any]]
    scored: list[Scored]
    tally: Tally
    n_rounds: int
    lists_all: bool = False
    #: displaced items and the labels they leave (see :mod:`._displaced`)
    explained: Explained | None = None


def ask_in_rounds(
    layout: Layout,
    *,
    n_clusters: int,
    build: Callable[[LaidPuzzle, int], Puzzle],
    solve: Callable[[list[Puzzle]], Sequence[Mapping[str, Any]]],
    matcher: NameMatcher,
    min_known_score: float = 1.0,
) -> Asked:
    """Lay out, ask and score rounds until no cluster needs an ask or the budget is spent."""
    tally = Tally(n_clusters)
    asked = Asked([], [], [], [], tally, 0)
    candidates = matcher.candidates
    answered: list[list[AnsweredCell]] = []
    while True:
        laid = layout.next_round(tally)
        if not laid:
            break
        asked.n_rounds += 1
        puzzles = [build(lp, len(asked.puzzles) + i) for i, lp in enumerate(laid)]
        by_puzzle: dict[int, Mapping[str, Any]] = {}
        for rec in solve(puzzles):
            by_puzzle.setdefault(int(rec["puzzle"]), rec)
        n_voted = 0
        for i, lp in enumerate(laid):
            rec = by_puzzle.get(i, {})
            sc = score_answer(
                lp, str(rec.get("text") or ""), matcher, candidates, min_known_score=min_known_score
            )
            n_voted += sc.voted
            if sc.n_items == len(lp.candidates) > lp.n_cells:
                layout.lists_all = True
            # known labels answered on none of their cells: a query given one of them
            # may be of that type (a hypothesis, not a vote)
            displaced = set()
            if sc.items is not None:
                displaced = {s.known for s in lp.slots if s.known is not None} - {
                    candidates[h] for h in sc.hits if h is not None
                }
            for slot, hit, counts in zip(
                lp.slots, sc.hits, sc.counts or [False] * lp.n_cells, strict=True
            ):
                if slot.cluster < 0 or (slot.is_known and not counts):
                    continue
                if hit is not None and candidates[hit] in displaced:
                    tally.hinted[slot.cluster][candidates[hit]] += 1
                tally.asked[slot.cluster] += 1
            answered.append(
                [
                    AnsweredCell(
                        slot.cluster,
                        slot.known,
                        None if hit is None else candidates[hit],
                        bool(counts),
                    )
                    for slot, hit, counts in zip(
                        lp.slots, sc.hits, sc.counts or [False] * lp.n_cells, strict=True
                    )
                ]
            )
            asked.laid.append(lp)
            asked.puzzles.append(puzzles[i])
            asked.records.append(rec)
            asked.scored.append(sc)
        asked.explained = explain(answered, n_clusters, candidates=candidates)
        tally.votes = asked.explained.votes
        tally.counted = np.asarray(asked.explained.counted, dtype=np.int64)
        logger.info(
            "annotate: round %d: %d puzzles, %d cells, %d answers voted",
            layout.round,
            len(laid),
            sum(lp.n_cells for lp in laid),
            n_voted,
        )
    asked.lists_all = layout.lists_all
    return asked

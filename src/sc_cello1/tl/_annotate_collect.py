"""Stage 5 of ``tl.annotate``: labels from the counted votes, the tables for ``uns``.

An answer item is a vote for a candidate only when the answer was read strictly (one
item per cell, see :func:`sc_cello1._answer.read_items`), its puzzle is not
*conflicted* (with a reference: too few reference cells answered with their label), and
the item names the candidate (:class:`NameMatcher`). A query cell's item is a vote for
its cluster, and so is an anchor's (a decided cluster shown as a known cell), except a
*displaced* item (:mod:`._displaced`: in a one-to-one answer, its cluster's label went to
another cell of that label, a spare of the same anchor included). Repaired answers are
kept for display and create no vote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._logging import logger

from ._annotate_rounds import Asked, Scored
from ._layout import LaidPuzzle
from ._names import NameMatcher
from ._votes import assign_labels, vote_table

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Collected:
    """What ``annotate`` writes: per-cell values and the tables of ``uns``."""

    obs_labels: Any
    obs_confidence: np.ndarray
    obs_term_ids: Any
    clusters: pd.DataFrame
    votes: pd.DataFrame
    unmatched: pd.DataFrame
    reasoning: pd.DataFrame
    puzzles: pd.DataFrame
    method: str


def _puzzle_row(
    puzzle: Any, laid: LaidPuzzle, rec: Mapping[str, Any], sc: Scored
) -> dict[str, Any]:
    repaired = rec.get("repaired") or []
    items = sc.items or []
    cands = laid.candidates
    return {
        "round": laid.round,
        "purpose": laid.purpose,
        "donor": puzzle.group,
        "n_cells": puzzle.n_cells,
        "n_candidates": len(cands),
        "clusters": json.dumps(puzzle.meta["clusters"]),
        "known": json.dumps(puzzle.meta["known"]),
        "cell_ids": json.dumps(puzzle.cell_ids),
        "user_msg": puzzle.user_msg,
        "text": str(rec.get("text") or ""),
        "reasoning": str(rec.get("reasoning") or ""),
        "answer": str(rec.get("answer") or ""),
        "repaired": " | ".join("" if r is None else str(r) for r in repaired),
        "reason": sc.reason,
        "voted": sc.voted,
        "conflict": sc.conflict,
        "n_known": sc.n_known,
        "n_spare": sc.n_spare,
        "known_right": sc.known_right,
        "valid_format": sc.items is not None,
        "is_permutation": sc.items is not None
        and len({i.casefold() for i in items}) == len(items)
        and all(h is not None for h in sc.hits),
        "finish_reason": str(rec.get("finish_reason") or ""),
        "n_tokens": int(rec.get("n_tokens") or 0),
    }


@dataclass
class _Walked:
    """The per-cell and per-puzzle rows and counts of every answer."""

    votes: list[tuple[int, int | None]]
    unmatched: dict[tuple[int, str], int]
    n_valid: np.ndarray
    n_unmatched: np.ndarray
    n_conflict: np.ndarray
    n_displaced: np.ndarray
    answer_rows: list[dict[str, Any]]
    puzzle_rows: list[dict[str, Any]]
    reasons: dict[str, int]


def _walk(asked: Asked, clusters: Sequence[str], candidates: Sequence[str]) -> _Walked:
    """Go through every puzzle's scored answer: votes, unmatched items, rows for ``uns``."""
    n = len(clusters)
    zeros = [np.zeros(n, dtype=np.int64) for _ in range(4)]
    out = _Walked([], {}, zeros[0], zeros[1], zeros[2], zeros[3], [], [], {})
    displaced = asked.explained.displaced if asked.explained is not None else set()
    sample_of: dict[tuple[int, str], int] = {}
    for i, (laid, puzzle, rec, sc) in enumerate(
        zip(asked.laid, asked.puzzles, asked.records, asked.scored, strict=True)
    ):
        why = sc.reason if sc.items is None else "a known cell answered against its label"
        if sc.items is None or sc.conflict:
            out.reasons[why] = out.reasons.get(why, 0) + 1
        for pos, slot in enumerate(laid.slots):
            item = None if sc.items is None else sc.items[pos]
            hit = sc.hits[pos]
            sample = -1
            counts = bool(sc.counts and sc.counts[pos])
            moved = (i, pos) in displaced
            if slot.cluster >= 0 and (not slot.is_known or counts):
                cluster = slot.cluster
                if moved:
                    out.n_displaced[cluster] += 1
                else:
                    out.votes.append((cluster, hit if counts else None))
                out.n_valid[cluster] += sc.items is not None
                out.n_conflict[cluster] += bool(sc.conflict)
                if hit is None:
                    out.n_unmatched[cluster] += 1
                    key = (cluster, item or "")
                    out.unmatched[key] = out.unmatched.get(key, 0) + 1
                sample = sample_of.get((cluster, puzzle.group), 0)
                sample_of[cluster, puzzle.group] = sample + 1
            out.answer_rows.append(
                {
                    "cluster": clusters[slot.cluster] if slot.cluster >= 0 else "",
                    "sample": sample,
                    "round": laid.round,
                    "donor": puzzle.group,
                    "puzzle": i,
                    "cell": pos + 1,
                    "cell_id": puzzle.cell_ids[pos],
                    "known": slot.known or "",
                    "answer": item or "",
                    "matched": "" if hit is None else candidates[hit],
                    "counted": bool(counts and hit is not None and not moved),
                    "displaced": moved,
                }
            )
        out.puzzle_rows.append(_puzzle_row(puzzle, laid, rec, sc))
    return out


def collect(
    asked: Asked,
    *,
    clusters: Sequence[str],
    cluster_codes: np.ndarray,
    matcher: NameMatcher,
    one_to_one: bool,
) -> Collected:
    """Votes, labels and the tables for ``uns`` from the puzzles asked in rounds.

    The confidence is the label's votes over all of the cluster's asks: a displaced item
    is no vote for any candidate, and it still counts as an answer that did not name the
    label (a model that piles one label on many clusters is not made surer by it).
    """
    import pandas as pd

    candidates = list(matcher.candidates)
    n_cells = np.bincount(cluster_codes[cluster_codes >= 0], minlength=len(clusters))
    walked = _walk(asked, clusters, candidates)
    _warn_about_answers(walked.reasons, len(asked.laid))

    table, n_asked = vote_table(
        walked.votes, n_clusters=len(clusters), n_candidates=len(candidates)
    )
    # ties go to the candidate listed first in the prompt (sorted() order of the names)
    rank = np.argsort(np.argsort(np.array(candidates, dtype=object), kind="stable"))
    result = assign_labels(
        table, n_asked + walked.n_displaced, one_to_one=one_to_one, tie_order=rank
    )
    if one_to_one and result.method != "one_to_one":
        logger.warning(
            "annotate: one_to_one=True but %d clusters and only %d candidates; each cluster "
            "gets its most voted candidate instead",
            len(clusters),
            len(candidates),
        )
    _warn_about_labels(
        clusters, result, n_asked, walked.unmatched, walked.n_valid, walked.n_conflict
    )
    used = [c for i, c in enumerate(candidates) if i in set(result.labels.tolist())]
    if asked.lists_all and len(used) < len(candidates):
        _warn_about_unused(candidates, used)
    cluster_labels = pd.Categorical(
        [candidates[j] if j >= 0 else None for j in result.labels], categories=used
    )
    term_of = None
    if matcher.ontology:
        term_of = {c: t for c, t in zip(candidates, matcher.terms, strict=True) if t}
    obs_labels, obs_conf, obs_terms = _per_cell(
        cluster_codes, cluster_labels, result.confidence, used, term_of
    )
    return Collected(
        obs_labels=obs_labels,
        obs_confidence=obs_conf,
        obs_term_ids=obs_terms,
        clusters=_cluster_table(
            clusters, candidates, result, n_asked, walked, n_cells, cluster_labels, term_of
        ),
        votes=_vote_frame(clusters, candidates, table),
        unmatched=_unmatched_frame(clusters, walked.unmatched),
        reasoning=pd.DataFrame(walked.answer_rows, columns=_ANSWER_COLUMNS),
        puzzles=_puzzle_frame(walked.puzzle_rows),
        method=result.method,
    )


#: The columns of ``uns[key]['reasoning']``, one row per cell shown.
_ANSWER_COLUMNS = [
    "cluster",
    "sample",
    "round",
    "donor",
    "puzzle",
    "cell",
    "cell_id",
    "known",
    "answer",
    "matched",
    "counted",
    "displaced",
]


def _cluster_table(
    clusters: Sequence[str],
    candidates: list[str],
    result: Any,
    n_asked: np.ndarray,
    walked: _Walked,
    n_cells: np.ndarray,
    cluster_labels: Any,
    term_of: Mapping[str, str] | None,
) -> pd.DataFrame:
    """Return ``uns[key]['clusters']``: label, confidence and counts per cluster."""
    import pandas as pd

    columns: dict[str, Any] = {
        "label": cluster_labels,
        "confidence": result.confidence,
        "votes": result.votes.astype(np.int64),
        "n_asked": n_asked + walked.n_displaced,
        "n_displaced": walked.n_displaced,
        "n_valid": walked.n_valid,
        "n_conflict": walked.n_conflict,
        "n_unmatched": walked.n_unmatched,
        "runner_up": pd.Categorical(
            [candidates[j] if j >= 0 else None for j in result.runner_up], categories=candidates
        ),
        "runner_up_votes": result.runner_up_votes.astype(np.int64),
        "margin": result.margin,
        "tied": result.tied.astype(bool),
        "overridden": result.overridden.astype(bool),
        "n_cells": n_cells.astype(np.int64),
    }
    if term_of is not None:
        columns["ontology_term_id"] = [
            term_of.get(candidates[j], "") if j >= 0 else "" for j in result.labels
        ]
    return pd.DataFrame(columns, index=pd.Index(clusters, name="cluster"))


def _vote_frame(clusters: Sequence[str], candidates: list[str], table: np.ndarray) -> pd.DataFrame:
    """Return ``uns[key]['votes']`` in long form.

    Candidate names (e.g. ``"CD4+/CD25 T Reg"``) must not become h5 keys.
    """
    import pandas as pd

    return pd.DataFrame(
        {
            "cluster": np.repeat(clusters, len(candidates)),
            "candidate": np.tile(candidates, len(clusters)),
            "votes": table.ravel().astype(np.int64),
        }
    )


def _unmatched_frame(
    clusters: Sequence[str], unmatched: Mapping[tuple[int, str], int]
) -> pd.DataFrame:
    """Return ``uns[key]['unmatched']``: per cluster, the most frequent first."""
    import pandas as pd

    return pd.DataFrame(
        [
            {"cluster": clusters[c], "text": text, "count": n}
            for (c, text), n in sorted(unmatched.items(), key=lambda kv: (kv[0][0], -kv[1]))
        ],
        columns=["cluster", "text", "count"],
    )


def _puzzle_frame(puzzle_rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Return ``uns[key]['puzzles']``, indexed by the puzzle's number as a string."""
    import pandas as pd

    puzzles = pd.DataFrame(puzzle_rows)
    puzzles.index = pd.Index([str(i) for i in range(len(puzzle_rows))], name="puzzle")
    return puzzles


def _per_cell(
    codes: np.ndarray,
    cluster_labels: Any,
    confidence: np.ndarray,
    used: list[str],
    term_of: Mapping[str, str] | None,
) -> tuple[Any, np.ndarray, Any]:
    """Return each cell's label, confidence and (with the ontology) CL term, from its cluster."""
    import pandas as pd

    cell_label_codes = np.where(
        codes >= 0, np.asarray(cluster_labels.codes)[np.maximum(codes, 0)], -1
    )
    obs_labels = pd.Categorical.from_codes(cell_label_codes, categories=used)
    obs_conf = np.where(codes >= 0, confidence[np.maximum(codes, 0)], np.nan)
    obs_terms = None
    if term_of is not None:
        terms = [term_of.get(c) for c in used]
        term_cats = sorted({t for t in terms if t})
        lookup = np.array([term_cats.index(t) if t else -1 for t in terms] + [-1], dtype=np.int64)
        obs_terms = pd.Categorical.from_codes(lookup[cell_label_codes], categories=term_cats)
    return obs_labels, obs_conf.astype(np.float64), obs_terms


def _warn_about_unused(candidates: list[str], used: list[str]) -> None:
    logger.warning(
        "annotate: the model lists every candidate (N items) also for puzzles with fewer "
        "cells, so only puzzles of N cells voted; %d candidates got no cluster (%s). If "
        "those types are absent from the data, such a model must still give them to "
        "some cells of every puzzle: those votes are forced and wrong, and the "
        "confidence of every label is lower. Drop the absent candidates if you can.",
        len(candidates) - len(used),
        ", ".join(repr(c) for c in candidates if c not in used)[:300],
    )


def _warn_about_answers(reasons: Mapping[str, int], n_puzzles: int) -> None:
    """Say why answers gave no votes, the main reasons with their counts."""
    if not reasons:
        return
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    logger.warning(
        "annotate: %d of %d puzzle answers gave no votes: %s. See uns[key]['puzzles']['reason'].",
        sum(reasons.values()),
        n_puzzles,
        ", ".join(f"{why} x{n}" for why, n in top[:5]) + (", ..." if len(top) > 5 else ""),
    )


def _warn_about_labels(
    clusters: Sequence[str],
    result: Any,
    asked: np.ndarray,
    unmatched: Mapping[tuple[int, str], int],
    n_valid: np.ndarray,
    n_conflict: np.ndarray | None = None,
) -> None:
    """Say which clusters got no label and why, and which labels were ties."""
    reasons = []
    for c in np.flatnonzero(result.labels < 0):
        said = sorted(
            ((n, t) for (cc, t), n in unmatched.items() if cc == c), key=lambda x: (-x[0], x[1])
        )
        if asked[c] == 0:
            why = "never asked"
        elif n_conflict is not None and n_conflict[c] == asked[c]:
            why = "every answer was voided by a known cell answered against its label"
        elif said and sum(n for n, _ in said) == asked[c]:
            shown = ", ".join(f"{t!r} x{n}" if t else f"no item x{n}" for n, t in said[:3])
            why = f"no answer named a candidate ({shown})"
        else:
            why = "the candidate it would get went to another cluster (one_to_one)"
        if n_valid[c] == 0 and asked[c] > 0:
            why += "; no answer had the valid format"
        reasons.append(f"{clusters[int(c)]!r}: {why}")
    if reasons:
        logger.warning(
            "annotate: %d of %d clusters got no label: %s",
            len(reasons),
            len(clusters),
            "; ".join(reasons[:10]) + ("; ..." if len(reasons) > 10 else ""),
        )
    over = [clusters[int(c)] for c in np.flatnonzero(result.overridden)]
    if over:
        logger.warning(
            "annotate: one_to_one gave clusters %s a label that is not their most voted "
            "candidate (that one went to another cluster); `overridden` marks them in "
            "uns[key]['clusters'] and their `margin` is negative. If two clusters can "
            "share a type, use one_to_one=False.",
            over[:10],
        )
    tied = [clusters[int(c)] for c in np.flatnonzero(result.tied & ~result.overridden)]
    if tied:
        logger.warning(
            "annotate: clusters %s have a tie between their label and the runner-up; the "
            "label is the candidate listed first (sorted names). Check `margin` in "
            "uns[key]['clusters'] or raise n_samples.",
            tied[:10],
        )

"""Stage 4 of ``tl.annotate``: votes from what the model said, labels, the tables for ``uns``.

An answer item is a vote for a candidate only when it names it (:class:`NameMatcher`);
repaired answers are kept for display and metrics and create no vote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._logging import logger

from ._names import NameMatcher
from ._votes import assign_labels, vote_table

if TYPE_CHECKING:
    import pandas as pd

    from ._annotate_plan import Plan


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


def _items_for_cells(record: Mapping[str, Any], n_cells: int) -> list[str | None]:
    """Return the raw answer item given to each cell by position (``None``: a short answer)."""
    raw = [str(x) for x in (record.get("items") or [])]
    return [raw[i] if i < len(raw) else None for i in range(n_cells)]


def _puzzle_row(puzzle: Any, rec: Mapping[str, Any]) -> dict[str, Any]:
    repaired = rec.get("repaired") or []
    return {
        "sample": puzzle.meta["sample"],
        "donor": puzzle.group,
        "part": puzzle.meta["part"],
        "n_cells": puzzle.n_cells,
        "clusters": json.dumps(puzzle.meta["clusters"]),
        "cell_ids": json.dumps(puzzle.cell_ids),
        "user_msg": puzzle.user_msg,
        "text": str(rec.get("text") or ""),
        "reasoning": str(rec.get("reasoning") or ""),
        "answer": str(rec.get("answer") or ""),
        "repaired": " | ".join("" if r is None else str(r) for r in repaired),
        "valid_format": bool(rec.get("valid_format", False)),
        "is_permutation": bool(rec.get("is_permutation", False)),
        "finish_reason": str(rec.get("finish_reason") or ""),
    }


def collect(
    plan: Plan,
    records: Sequence[Mapping[str, Any]],
    *,
    matcher: NameMatcher,
    one_to_one: bool,
) -> Collected:
    """Votes, labels and the tables for ``uns`` from the solved puzzles."""
    import pandas as pd

    candidates = plan.candidates
    cluster_index = {c: i for i, c in enumerate(plan.clusters)}
    by_puzzle: dict[int, Mapping[str, Any]] = {}
    for rec in records:
        by_puzzle.setdefault(int(rec["puzzle"]), rec)
    votes: list[tuple[int, int | None]] = []
    unmatched: dict[tuple[int, str], int] = {}
    n_valid = np.zeros(len(plan.clusters), dtype=np.int64)
    n_unmatched = np.zeros(len(plan.clusters), dtype=np.int64)
    answer_rows = []
    puzzle_rows = []
    for i, puzzle in enumerate(plan.puzzles):
        rec = by_puzzle.get(i, {})
        valid = bool(rec.get("valid_format", False))
        items = _items_for_cells(rec, puzzle.n_cells)
        for pos, (name, item) in enumerate(zip(puzzle.meta["clusters"], items, strict=True)):
            cluster = cluster_index[name]
            hit = None if item is None else matcher.match(item)
            votes.append((cluster, hit))
            n_valid[cluster] += valid
            if hit is None:
                n_unmatched[cluster] += 1
                key = (cluster, "" if item is None else item)
                unmatched[key] = unmatched.get(key, 0) + 1
            answer_rows.append(
                {
                    "cluster": name,
                    "sample": puzzle.meta["sample"],
                    "donor": puzzle.group,
                    "puzzle": i,
                    "cell": pos + 1,
                    "cell_id": puzzle.cell_ids[pos],
                    "answer": "" if item is None else item,
                    "matched": "" if hit is None else candidates[hit],
                }
            )
        puzzle_rows.append(_puzzle_row(puzzle, rec))

    table, asked = vote_table(votes, n_clusters=len(plan.clusters), n_candidates=len(candidates))
    # ties go to the candidate listed first in the prompt (sorted() order of the names)
    rank = np.argsort(np.argsort(np.array(candidates, dtype=object), kind="stable"))
    result = assign_labels(table, asked, one_to_one=one_to_one, tie_order=rank)
    if one_to_one and result.method != "one_to_one":
        logger.warning(
            "annotate: one_to_one=True but %d clusters and only %d candidates; each cluster "
            "gets its most voted candidate instead",
            len(plan.clusters),
            len(candidates),
        )
    _warn_about_labels(plan, result, asked, unmatched, n_valid)

    used = [c for i, c in enumerate(candidates) if i in set(result.labels.tolist())]
    cluster_labels = pd.Categorical(
        [candidates[j] if j >= 0 else None for j in result.labels], categories=used
    )
    columns: dict[str, Any] = {
        "label": cluster_labels,
        "confidence": result.confidence,
        "votes": result.votes.astype(np.int64),
        "n_asked": asked,
        "n_valid": n_valid,
        "n_unmatched": n_unmatched,
        "runner_up": pd.Categorical(
            [candidates[j] if j >= 0 else None for j in result.runner_up], categories=candidates
        ),
        "runner_up_votes": result.runner_up_votes.astype(np.int64),
        "margin": result.margin,
        "tied": result.tied.astype(bool),
        "n_cells": plan.n_cells.astype(np.int64),
    }
    term_of = {c: t for c, t in zip(candidates, matcher.terms, strict=True) if t}
    if matcher.ontology:
        columns["ontology_term_id"] = [
            term_of.get(candidates[j], "") if j >= 0 else "" for j in result.labels
        ]
    cluster_table = pd.DataFrame(columns, index=pd.Index(plan.clusters, name="cluster"))
    # long form: candidate names (e.g. "CD4+/CD25 T Reg") must not become h5 keys
    vote_df = pd.DataFrame(
        {
            "cluster": np.repeat(plan.clusters, len(candidates)),
            "candidate": np.tile(candidates, len(plan.clusters)),
            "votes": table.ravel().astype(np.int64),
        }
    )
    unmatched_df = pd.DataFrame(
        [
            {"cluster": plan.clusters[c], "text": text, "count": n}
            for (c, text), n in sorted(unmatched.items(), key=lambda kv: (kv[0][0], -kv[1]))
        ],
        columns=["cluster", "text", "count"],
    )
    codes = plan.cluster_codes
    cell_label_codes = np.where(
        codes >= 0, np.asarray(cluster_labels.codes)[np.maximum(codes, 0)], -1
    )
    obs_labels = pd.Categorical.from_codes(cell_label_codes, categories=used)
    obs_conf = np.where(codes >= 0, result.confidence[np.maximum(codes, 0)], np.nan)
    obs_terms = None
    if matcher.ontology:
        terms = [term_of.get(c) for c in used]
        term_cats = sorted({t for t in terms if t})
        lookup = np.array([term_cats.index(t) if t else -1 for t in terms] + [-1], dtype=np.int64)
        obs_terms = pd.Categorical.from_codes(lookup[cell_label_codes], categories=term_cats)
    answers_df = pd.DataFrame(
        answer_rows,
        columns=["cluster", "sample", "donor", "puzzle", "cell", "cell_id", "answer", "matched"],
    )
    puzzles_df = pd.DataFrame(puzzle_rows)
    puzzles_df.index = pd.Index([str(i) for i in range(len(puzzle_rows))], name="puzzle")
    return Collected(
        obs_labels=obs_labels,
        obs_confidence=obs_conf.astype(np.float64),
        obs_term_ids=obs_terms,
        clusters=cluster_table,
        votes=vote_df,
        unmatched=unmatched_df,
        reasoning=answers_df,
        puzzles=puzzles_df,
        method=result.method,
    )


def _warn_about_labels(
    plan: Plan,
    result: Any,
    asked: np.ndarray,
    unmatched: Mapping[tuple[int, str], int],
    n_valid: np.ndarray,
) -> None:
    """Say which clusters got no label and why, and which labels were ties."""
    reasons = []
    for c in np.flatnonzero(result.labels < 0):
        said = sorted(
            ((n, t) for (cc, t), n in unmatched.items() if cc == c), key=lambda x: (-x[0], x[1])
        )
        if asked[c] == 0:
            why = "never asked"
        elif said and sum(n for n, _ in said) == asked[c]:
            shown = ", ".join(f"{t!r} x{n}" if t else f"no item x{n}" for n, t in said[:3])
            why = f"no answer named a candidate ({shown})"
        else:
            why = "the candidate it would get went to another cluster (one_to_one)"
        if n_valid[c] == 0 and asked[c] > 0:
            why += "; no answer had the valid format"
        reasons.append(f"{plan.clusters[c]!r}: {why}")
    if reasons:
        logger.warning(
            "annotate: %d of %d clusters got no label: %s",
            len(reasons),
            len(plan.clusters),
            "; ".join(reasons[:10]) + ("; ..." if len(reasons) > 10 else ""),
        )
    tied = [plan.clusters[c] for c in np.flatnonzero(result.tied)]
    if tied:
        logger.warning(
            "annotate: clusters %s have a tie between their label and the runner-up; the "
            "label is the candidate listed first (sorted names). Check `margin` in "
            "uns[key]['clusters'] or raise n_samples.",
            tied[:10],
        )

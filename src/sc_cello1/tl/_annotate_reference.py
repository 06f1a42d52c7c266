"""``tl.annotate`` with a labelled reference: the steps before the model, and what is written.

Before any model loads: the reference is checked (:func:`check_reference_args`), the
prior is transferred and the known-answer cells are chosen (:func:`prepare_reference`).
After the puzzles: the second opinion per cluster, the known-cell scores and their
warnings (:func:`reference_results`).

**Votes and the known cells** (documented in ``docs/reference.md``): a puzzle's votes
count only when at least :data:`MIN_KNOWN_SCORE` (a third) of its known (reference) cells were
answered with their label; otherwise the whole puzzle gives no votes (its query cells
still count as asked, so their confidence drops), and a label the model put on a query
cell while the known cell of that label was answered otherwise becomes a hypothesis of
that cluster (it is not put beside it again). A model that gets the known cells wrong
therefore ends with few counted votes and low confidence, and a warning names its
known-cell score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._logging import logger

from ._reference import CandidateMap, Reference, check_reference, known_cells, known_top_genes
from ._reference_layout import PLAUSIBLE_SHARE, ReferenceLayout
from ._reference_prior import Prior, check_prior_args, transfer_labels

if TYPE_CHECKING:
    from ._annotate_checks import Checked
    from ._annotate_collect import Collected
    from ._annotate_plan import Cells
    from ._annotate_rounds import Asked

#: Share of a puzzle's known cells that must be answered with their label for its
#: votes to count.
MIN_KNOWN_SCORE = 1 / 3
#: Below this overall known-cell score a warning says the labels are doubtful.
WARN_KNOWN_SCORE = 0.8


@dataclass
class ReferencePlan:
    """The reference, its candidates, the prior and the known cells of one annotate run."""

    ref: Reference
    cmap: CandidateMap
    prior: Prior
    prior_labels: list[str | None]
    plausible: list[set[str]]
    known_pool: dict[str, list[int]]
    top_genes: dict[int, list[str]]
    known_ids: dict[int, str]
    n_known_per_type: int
    shares: list[dict[str, float]]

    def layout(
        self,
        cells: Cells,
        candidates: list[str],
        *,
        n_samples: int,
        max_cells_per_puzzle: int,
        rng: np.random.Generator,
    ) -> ReferenceLayout:
        """Make the round-by-round layout with reference cells (:mod:`._reference_layout`)."""
        return ReferenceLayout(
            cells.pools,
            cells.centroids,
            candidates,
            n_samples=n_samples,
            max_cells=max_cells_per_puzzle,
            rng=rng,
            prior_labels=self.prior_labels,
            plausible=self.plausible,
            known_pool=self.known_pool,
            shares=self.shares,
        )


def check_reference_args(
    checked: Checked,
    *,
    reference: Any,
    reference_key: Any,
    reference_layer: Any,
    reference_use_raw: Any,
    reference_gene_symbols: Any,
    reference_prior: Any,
    reference_model: Any,
    reference_max_epochs: Any,
    n_genes: int,
) -> Reference | None:
    """Check the reference arguments (reads the reference and the query, writes neither)."""
    if reference is None:
        given = {
            "reference_key": reference_key,
            "reference_layer": reference_layer,
            "reference_gene_symbols": reference_gene_symbols,
            "reference_model": reference_model,
        }
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            msg = f"{extra} given without `reference`; pass reference=<labelled AnnData>."
            raise ValueError(msg)
        return None
    check_prior_args(reference_prior, reference_model, reference_max_epochs)
    return check_reference(
        reference,
        reference_key=reference_key,
        query_genes=checked.genes,
        n_genes=n_genes,
        reference_layer=reference_layer,
        reference_use_raw=reference_use_raw,
        reference_gene_symbols=reference_gene_symbols,
    )


def prepare_reference(
    ref: Reference,
    checked: Checked,
    *,
    candidates: list[str] | None,
    ontology: bool,
    method: str,
    reference_model: Any,
    max_epochs: int | None,
    n_samples: int,
    n_genes: int,
    tie_order: str,
    seed: int,
) -> ReferencePlan:
    """Candidates, prior and known cells: everything the layout needs from the reference."""
    from ._layout import BUDGET_FACTOR

    cmap = map_or_raise(ref, candidates, ontology=ontology)
    prior = transfer_labels(
        checked.X,
        ref,
        codes=checked.codes,
        n_clusters=len(checked.clusters),
        method=method,
        reference_model=reference_model,
        max_epochs=max_epochs,
        seed=seed,
    )
    cand_of = cmap.candidate_of
    prior_labels = [cand_of.get(t) for t in prior.label]
    plausible = [
        {cand_of[t] for t, s in d.items() if s >= PLAUSIBLE_SHARE and t in cand_of}
        for d in prior.distribution
    ]
    per_type = BUDGET_FACTOR * n_samples
    chosen = known_cells(
        ref, prior.ref_rep, n_samples=per_type, seed=seed, types=list(cmap.type_of.values())
    )
    rows = sorted({r for rs in chosen.values() for r in rs})
    genes = known_top_genes(ref, rows, n_genes=n_genes, tie_order=tie_order)
    names = ref.adata.obs_names.astype(str)
    return ReferencePlan(
        ref=ref,
        cmap=cmap,
        prior=prior,
        prior_labels=prior_labels,
        plausible=plausible,
        known_pool={cand_of[t]: [-1 - r for r in rs] for t, rs in chosen.items()},
        top_genes={-1 - r: g for r, g in genes.items()},
        known_ids={-1 - r: f"reference:{names[r]}" for r in rows},
        n_known_per_type=per_type,
        shares=[{cand_of[t]: s for t, s in d.items() if t in cand_of} for d in prior.distribution],
    )


def map_or_raise(ref: Reference, candidates: list[str] | None, *, ontology: bool) -> CandidateMap:
    """Map the candidates onto the reference labels; at least two must be covered."""
    from ._reference import map_candidates

    cmap = map_candidates(ref.types, candidates, ontology=ontology)
    if len(cmap.type_of) < 2:
        msg = (
            f"Only {len(cmap.type_of)} of the candidates {candidates} name a reference label "
            f"(labels of `reference.obs[{ref.label_key!r}]`: {ref.types[:20]}); rename the "
            "candidates (or the reference labels in a copy), or pass candidates=None to use "
            "the reference labels."
        )
        raise ValueError(msg)
    return cmap


def _known_by_cluster(asked: Asked, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Known cells shown beside each cluster in read answers, and those answered right."""
    shown = np.zeros(n_clusters, dtype=np.int64)
    right = np.zeros(n_clusters, dtype=np.int64)
    for laid, sc in zip(asked.laid, asked.scored, strict=True):
        if sc.items is None:
            continue
        for c in {s.cluster for s in laid.slots if not s.is_known}:
            shown[c] += sc.n_scored
            right[c] += sc.known_right
    return shown, right


def reference_results(
    plan: ReferencePlan,
    result: Collected,
    asked: Asked,
    *,
    clusters: list[str],
    codes: np.ndarray,
    key_added: str,
) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Second opinion per cell, the per-cluster reference table, and summary figures.

    Returns ``(obs columns, uns table, figures for params)``; warns where the known
    cells were answered wrong and where the labels disagree with the prior.
    """
    import pandas as pd

    prior = plan.prior
    shown = [plan.prior_labels[k] or prior.label[k] for k in range(len(clusters))]
    labels = result.clusters["label"].astype(object).to_numpy()
    agrees = np.array(
        [lab is not None and lab == s for lab, s in zip(labels, shown, strict=True)], dtype=bool
    )
    n_known, n_right = _known_by_cluster(asked, len(clusters))
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(n_known > 0, n_right / np.maximum(n_known, 1), np.nan)
    table = pd.DataFrame(
        {
            "reference_label": shown,
            "reference_share": np.asarray(prior.share, dtype=np.float64),
            "reference_distribution": [json.dumps(d) for d in prior.distribution],
            "agrees": agrees,
            "n_known": n_known,
            "known_right": n_right,
            "known_score": score,
        },
        index=pd.Index(clusters, name="cluster"),
    )
    valid = codes >= 0
    at = np.maximum(codes, 0)
    cats = sorted(set(shown))
    cell_codes = np.where(valid, np.array([cats.index(s) for s in shown])[at], -1)
    obs = {
        f"{key_added}_reference": pd.Categorical.from_codes(cell_codes, categories=cats),
        f"{key_added}_reference_share": np.where(
            valid, table["reference_share"].to_numpy()[at], np.nan
        ),
        f"{key_added}_reference_agrees": np.where(valid, agrees[at], False),
    }
    total = sum(int(s.n_scored) for s in asked.scored if s.items is not None)
    right = sum(int(s.known_right) for s in asked.scored if s.items is not None)
    overall = right / total if total else float("nan")
    figures = {
        "n_known_asked": total,
        "n_known_right": right,
        "known_score": overall,
        "min_known_score": MIN_KNOWN_SCORE,
        "n_agree": int(agrees.sum()),
    }
    _warn(overall, right, total, clusters, labels, shown, agrees)
    return obs, table, figures


def _warn(overall, right, total, clusters, labels, shown, agrees) -> None:
    if total == 0:
        logger.warning(
            "annotate: no answer could be read for a puzzle with known reference cells: the "
            "known-cell score is undefined and no label is checked by the reference."
        )
    elif overall < WARN_KNOWN_SCORE:
        logger.warning(
            "annotate: the model answered %d of %d known reference cells with their label "
            "(known-cell score %.2f, below %.2f): its answers are unreliable for these data, "
            "and puzzles scoring below %.2f gave no votes. Check the "
            "model, its quantisation, prompt and server; see uns[key]['reference'] and "
            "uns[key]['puzzles'][['n_known', 'known_right']].",
            right,
            total,
            overall,
            WARN_KNOWN_SCORE,
            MIN_KNOWN_SCORE,
        )
    disagree = [
        f"{clusters[k]!r}: {labels[k]!r} vs reference {shown[k]!r}"
        for k in np.flatnonzero(~agrees)
        if labels[k] is not None
    ]
    if disagree:
        logger.warning(
            "annotate: %d cluster label(s) differ from the reference's label transfer: %s "
            "(obs[key + '_reference'] holds the reference's label)",
            len(disagree),
            "; ".join(disagree[:8]) + ("; ..." if len(disagree) > 8 else ""),
        )

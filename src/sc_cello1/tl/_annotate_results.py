"""Stage 6 of ``tl.annotate``: ``uns[key_added]`` built, then written in one step.

``params`` is :meth:`AnnotateConfig.params <sc_cello1._config.VerbConfig.params>` (every
setting) plus the facts of the run (the model and backend used, the versions, what was
asked); :func:`write` is the only function of ``annotate`` that changes ``adata``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._logging import logger

if TYPE_CHECKING:
    from anndata import AnnData

    from ._annotate_checks import Checked
    from ._annotate_collect import Collected
    from ._annotate_config import AnnotateConfig
    from ._annotate_plan import Cells
    from ._annotate_rounds import Asked
    from ._names import NameMatcher
    from ._propose import Proposals


def cost(asked: Asked, n_clusters: int) -> dict[str, Any]:
    """Count what was asked (puzzles, rounds, cells, query and known, and tokens); log it."""
    n_cells = sum(p.n_cells for p in asked.puzzles)
    counts = {
        "n_puzzles": len(asked.puzzles),
        "n_rounds": asked.n_rounds,
        "n_cells_asked": n_cells,
        "n_known_cells_asked": sum(s.n_known for s in asked.scored),
        "cells_per_cluster": round(n_cells / max(n_clusters, 1), 2),
        "n_tokens_generated": int(sum(int(r.get("n_tokens") or 0) for r in asked.records)),
        "n_prompt_chars": int(sum(len(p.user_msg) for p in asked.puzzles)),
    }
    logger.info(
        "annotate: asked %d puzzles in %d rounds: %d cells (%.1f per cluster), %d tokens "
        "generated, %d prompt characters",
        counts["n_puzzles"],
        counts["n_rounds"],
        counts["n_cells_asked"],
        counts["cells_per_cluster"],
        counts["n_tokens_generated"],
        counts["n_prompt_chars"],
    )
    return counts


def redact(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``kwargs`` with secrets (keys, tokens, credentials in URLs) removed."""
    from sc_cello1._secrets import redact as _redact

    return _redact(dict(kwargs))


def sanitize(value: Any) -> Any:
    """Make a value writable to h5ad: dicts of str keys, lists, scalars, strings."""
    if isinstance(value, Mapping):
        return {str(k).replace("/", "_"): sanitize(v) for k, v in value.items()}
    if (
        isinstance(value, str | bool | int | float | np.integer | np.floating | np.bool_)
        or value is None
    ):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple):
        items = [sanitize(v) for v in value]
        if all(isinstance(v, str) for v in items) or all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in items
        ):
            return items
        return json.dumps(items, default=str)
    return str(value)


def build_params(
    config: AnnotateConfig,
    *,
    model: Any,
    provenance: Mapping[str, Any],
    checked: Checked,
    cells: Cells,
    result: Collected,
    proposals: Proposals | None,
    use_ontology: bool,
    counts: Mapping[str, Any],
    start: float,
) -> dict[str, Any]:
    """Return ``uns[key_added]['params']``: every setting, then what the run used and did.

    ``model`` is the model checked (``None`` resolved to ``settings.default_model``);
    ``counts`` the cost of the run and the completions cut.
    """
    from sc_cello1._version import __version__
    from sc_cello1.data import PROMPT_VERSION
    from sc_cello1.inference._resolve import model_name_of

    from ._verb_options import describe

    params = config.params()
    params["model"] = describe(model)
    params.update(
        {
            "model_name": str(model_name_of(provenance) or describe(model)),
            "model_revision": str(provenance.get("revision", "")),
            "backend_used": str(provenance.get("backend", config.backend)),
            "provenance": dict(provenance),
            "version": __version__,
            "prompt_version": PROMPT_VERSION,
            "expression": checked.where,
            "representation": checked.rep_name,
            "context_source": cells.context_source,
            "assignment": result.method,
            "ontology_used": use_ontology,
            **counts,
            "seconds": round(time.perf_counter() - start, 3),
        }
    )
    if proposals is not None:
        from ._propose import PROPOSAL_PROMPT_VERSION

        params["proposal_prompt_version"] = PROPOSAL_PROMPT_VERSION
        params["n_proposals"] = len(proposals.table)
    if use_ontology:
        from ._names import ontology_index

        params["ontology_version"] = ontology_index()[2]
    return params


def build_uns(
    params: dict[str, Any],
    result: Collected,
    matcher: NameMatcher,
    *,
    proposals: Proposals | None,
    reference: tuple[Any, Any] | None,
    user_candidates: bool,
) -> dict[str, Any]:
    """Return ``uns[key_added]``: the params, the candidates and the tables of the run.

    ``reference``: ``(plan, table)`` of a run against a labelled reference, else ``None``.
    """
    uns: dict[str, Any] = {
        "params": sanitize(params),
        "candidates": {
            "names": list(matcher.candidates),
            "candidate_source": "user" if proposals is None else "proposed",
            "unmapped": matcher.unmapped,
        },
        "clusters": result.clusters,
        "votes": result.votes,
        "unmatched": result.unmatched,
        "reasoning": result.reasoning,
        "puzzles": result.puzzles,
    }
    if proposals is not None:
        uns["proposals"] = proposals.table
    if reference is not None:
        plan, table = reference
        uns["candidates"]["candidate_source"] = "user" if user_candidates else "reference"
        uns["candidates"]["reference"] = plan.cmap.as_uns()
        uns["reference"] = table
    return uns


def build_results(
    config: AnnotateConfig,
    *,
    model: Any,
    provenance: Mapping[str, Any],
    checked: Checked,
    cells: Cells,
    asked: Asked,
    result: Collected,
    matcher: NameMatcher,
    proposals: Proposals | None,
    plan: Any,
    use_ontology: bool,
    counts: Mapping[str, Any],
    start: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``uns[key_added]`` and the further ``obs`` columns of a reference run."""
    params = build_params(
        config,
        model=model,
        provenance=provenance,
        checked=checked,
        cells=cells,
        result=result,
        proposals=proposals,
        use_ontology=use_ontology,
        counts=counts,
        start=start,
    )
    extra_obs: dict[str, Any] = {}
    reference = None
    if plan is not None:
        extra_obs, reference = with_reference(plan, result, asked, checked, config, params)
    uns = build_uns(
        params,
        result,
        matcher,
        proposals=proposals,
        reference=reference,
        user_candidates=config.candidates is not None,
    )
    return uns, extra_obs


def with_reference(
    plan: Any,
    result: Collected,
    asked: Asked,
    checked: Checked,
    config: AnnotateConfig,
    params: dict[str, Any],
) -> tuple[dict[str, Any], tuple[Any, Any]]:
    """Add a reference run's results: its ``params['reference']``, ``known_score``.

    Returns the ``obs`` columns to write and ``(plan, table)`` for :func:`build_uns`.
    """
    from ._annotate_reference import reference_results
    from ._reference import reference_params

    extra_obs, ref_table, figures = reference_results(
        plan,
        result,
        asked,
        clusters=checked.clusters,
        codes=checked.codes,
        key_added=config.key_added,
    )
    params["reference"] = {
        **reference_params(
            plan.ref,
            plan.cmap,
            plan.prior.params,
            n_known_per_type=plan.n_known_per_type,
            seed=config.seed,
        ),
        **figures,
    }
    pz = result.puzzles  # NaN where no known cell or the answer could not be read
    read = (pz["n_known"] > 0) & pz["valid_format"].astype(bool)
    pz["known_score"] = pz["known_right"] / (pz["n_known"] - pz["n_spare"]).where(read)
    return extra_obs, (plan, ref_table)


def write(
    adata: AnnData,
    key_added: str,
    result: Collected,
    uns: dict[str, Any],
    extra_obs: Mapping[str, Any] | None = None,
) -> None:
    """Write the results into ``adata`` (the only step that changes it)."""
    obs = adata.obs.copy()
    stale = [f"{key_added}{s}" for s in ("_reference", "_reference_share", "_reference_agrees")]
    obs = obs.drop(columns=[c for c in stale if c in obs.columns])  # an earlier reference run
    for name, values in (extra_obs or {}).items():
        obs[name] = values
    obs[key_added] = result.obs_labels
    obs[f"{key_added}_confidence"] = result.obs_confidence
    if result.obs_term_ids is not None:
        obs[f"{key_added}_ontology_term_id"] = result.obs_term_ids
    elif f"{key_added}_ontology_term_id" in obs.columns:
        del obs[f"{key_added}_ontology_term_id"]
    if adata.is_view:
        adata._init_as_actual(adata.copy())
    adata.obs = obs
    adata.uns[key_added] = uns

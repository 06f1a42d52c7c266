"""Stage 1 of ``tl.annotate``: the settings against the data, the model and the reference.

The settings alone were checked when the :class:`~sc_cello1.tl._annotate_config.AnnotateConfig`
was built; :func:`check_all` checks what needs ``adata`` (:mod:`._annotate_checks`), the
model (without loading it) and the reference. Nothing is loaded or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._annotate_checks import Checked, check_data, check_target

if TYPE_CHECKING:
    from anndata import AnnData

    from ._annotate_config import AnnotateConfig


@dataclass
class Ready:
    """What the checks of :func:`check_all` found: the data, the model, the reference."""

    checked: Checked
    ontology: bool
    model: Any
    reference: Any


def check_all(adata: AnnData, config: AnnotateConfig) -> Ready:
    """Check the settings against the data, the model and the reference; load nothing.

    Stage 1 of ``tl.annotate`` (the settings alone were checked when ``config`` was built).
    """
    from ._annotate_reference import check_reference_args
    from ._names import check_distinct_terms, check_ontology
    from ._verb_options import check_model_and_backend

    checked = check_data(adata, config)
    check_target(
        adata, config.groupby, config.key_added, copy=config.copy, overwrite=config.overwrite
    )
    use_ontology = check_ontology(config.ontology)
    check_distinct_terms(checked.candidates, use_ontology)
    model, _ = check_model_and_backend(config.model, config.backend, config.backend_kwargs)
    ref = check_reference_args(
        checked,
        reference=config.reference,
        reference_key=config.reference_key,
        reference_layer=config.reference_layer,
        reference_use_raw=config.reference_use_raw,
        reference_gene_symbols=config.reference_gene_symbols,
        reference_prior=config.reference_prior,
        reference_model=config.reference_model,
        reference_max_epochs=config.reference_max_epochs,
        n_genes=config.n_genes,
    )
    if config.constrained and checked.candidates is not None and config.backend != "openai":
        # the longest constrained answer must fit in max_new_tokens: checked with the
        # tokenizer alone (or the backend object's), before any model loads
        from sc_cello1.inference import AnswerConstraint, check_answer_budget

        largest = min(config.max_cells_per_puzzle, len(checked.candidates), len(checked.clusters))
        check_answer_budget(
            model,
            [AnswerConstraint(tuple(sorted(checked.candidates)), largest, unique=True)],
            max_new_tokens=config.max_new_tokens,
        )
    return Ready(checked=checked, ontology=use_ontology, model=model, reference=ref)

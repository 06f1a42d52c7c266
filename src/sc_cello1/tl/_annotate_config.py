"""The settings of ``tl.annotate``: :class:`AnnotateConfig`, one frozen dataclass.

``tl.annotate`` keeps its scanpy-style keyword signature and builds this first, so every
setting is checked before ``adata`` is read or a model loads; the stages take it,
``uns[key_added]['params']`` records :meth:`~sc_cello1._config.VerbConfig.params`, and
the options of ``cello1 annotate`` are generated from its fields
(:func:`~sc_cello1._config.add_config_options`). What needs the data (an ``obs`` column
exists, ``n_genes`` fits the genes) is checked by
:func:`~sc_cello1.tl._annotate_checks.check_data`; the reference's settings by
``check_reference_args``, with the reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

from sc_cello1._answer import normalize_label
from sc_cello1._config import VerbConfig, option
from sc_cello1._logging import logger
from sc_cello1._validate import check_int, is_sequence
from sc_cello1.inference._base import BackendName

from ._cluster_puzzles import MAX_TRAINED_CELLS
from ._verb_options import (
    answer_dir_option,
    backend_kwargs_option,
    backend_option,
    batch_size_option,
    describe,
    flag_check,
    max_new_tokens_option,
    model_option,
    temperature_option,
)

__all__ = ["AnnotateConfig", "PriorMethod", "TieOrder"]

#: Order of genes with equal values (:func:`sc_cello1.pp.top_genes`).
TieOrder = Literal["position", "authors"]
#: How a labelled reference's prior is made: scanpy's ingest or scANVI.
PriorMethod = Literal["ingest", "scanvi"]


#: More candidates than this are refused, more than :data:`MANY_CANDIDATES` warned about:
#: every puzzle lists all candidates, and Cell-o1 was trained on puzzles with as many
#: candidates as cells.
MAX_CANDIDATES = 100
MANY_CANDIDATES = 30

# Tags of the answer format that a candidate name must not contain.
_TAGS = ("<answer>", "</answer>", "<think>", "</think>")


# ----------------------------------------------------------------------------- checks


def check_candidates(candidates: Any, *, warn: bool = True) -> list[str] | None:
    """Validate the candidate list (``None``: propose candidates first).

    ``warn``: log the warning about a long list (once per run: the config checks quietly).
    """
    if candidates is None:
        return None
    if isinstance(candidates, str | bytes):
        msg = (
            f"`candidates` must be a list of cell type names, not one string ({candidates!r}); "
            "write candidates=[...]."
        )
        raise TypeError(msg)
    if not is_sequence(candidates):
        msg = f"`candidates` must be a list of cell type names or None, got {type(candidates).__name__}."
        raise TypeError(msg)
    out = list(candidates)
    if not out:
        msg = "`candidates` is empty; give the cell types to choose from, or candidates=None to have the model propose them."
        raise ValueError(msg)
    bad = [c for c in out if not isinstance(c, str)]
    if bad:
        msg = f"`candidates` must be strings; got {bad[:5]!r}."
        raise TypeError(msg)
    seen: dict[str, str] = {}
    for c in out:
        if not c.strip() or c != c.strip():
            msg = f"Candidate {c!r} is empty or has leading/trailing spaces; strip the names."
            raise ValueError(msg)
        if "|" in c or "\n" in c or "\r" in c:
            msg = (
                f"Candidate {c!r} contains '|' or a line break, which the answer format uses "
                "as separators; rename it."
            )
            raise ValueError(msg)
        tag = next((t for t in _TAGS if t in c.lower()), None)
        if tag is not None:
            msg = (
                f"Candidate {c!r} contains {tag!r}, a tag of the answer format, so answers "
                "naming it could not be read; rename it."
            )
            raise ValueError(msg)
        key = normalize_label(c)
        if key in seen:
            msg = (
                f"Candidates {seen[key]!r} and {c!r} are the same name once case, punctuation "
                "and plurals are ignored (answers are matched that way); give each cell type once."
            )
            raise ValueError(msg)
        seen[key] = c
    if len(out) < 2:
        msg = (
            f"`candidates` has one cell type ({out[0]!r}); a puzzle needs at least two "
            "distinct candidates to choose from (one candidate would label every cluster "
            "with it at confidence 1). Add the other types you expect, or pass "
            "candidates=None to have the model propose them."
        )
        raise ValueError(msg)
    if len(out) > MAX_CANDIDATES:
        msg = (
            f"{len(out)} candidates is more than {MAX_CANDIDATES}: every puzzle lists them all, "
            "far beyond the puzzles Cell-o1 was trained on (as many candidates as cells, up "
            "to about 15). Give the cell types expected in this tissue (a curated list), or "
            "candidates=None to have the model propose them."
        )
        raise ValueError(msg)
    if warn and len(out) > MANY_CANDIDATES:
        logger.warning(
            "annotate: %d candidates; Cell-o1 was trained on puzzles with as many candidates as "
            "cells (up to about 15), so a long list makes each answer harder. A curated list of "
            "the types expected in this tissue is better.",
            len(out),
        )
    return out


def _integer(name: str, minimum: int) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        check_int(name, value, minimum)

    return check


def _name(name: str, what: str, *, optional: bool = True) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if optional and value is None:
            return
        if not isinstance(value, str):
            msg = f"`{name}` must be {what} (a string){' or None' if optional else ''}, got {type(value).__name__}."
            raise TypeError(msg)

    return check


def _checked_later(value: Any) -> None:
    """Leave the check to ``check_reference_args``, which has the reference."""


def _check_candidates(value: Any) -> None:
    check_candidates(value, warn=False)


def _check_context(value: Any) -> None:
    if value is not None and not isinstance(value, str) and not callable(value):
        msg = f"`context` must be a string, a callable or None, got {type(value).__name__}."
        raise TypeError(msg)
    if isinstance(value, str) and (not value.strip() or "\n" in value):
        msg = "`context` must be one line of non-empty text (the donor sentence)."
        raise ValueError(msg)


def _check_context_fields(value: Any) -> None:
    if isinstance(value, str) or not (is_sequence(value) or isinstance(value, Mapping)):
        msg = "`context_fields` must be a list (or dict) of obs column names."
        raise TypeError(msg)


def _check_key_added(value: Any) -> None:
    if not isinstance(value, str) or not value or "/" in value:
        msg = f"`key_added` must be a non-empty string without '/', got {value!r}."
        raise ValueError(msg)


def _record_context(value: Any) -> Any:
    return value if isinstance(value, str) else describe(value)


def _record_context_fields(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else [str(f) for f in value]


# ----------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class AnnotateConfig(VerbConfig):
    """Every setting of :func:`sc_cello1.tl.annotate` but ``adata``, checked when built.

    The fields are the keywords of :func:`~sc_cello1.tl.annotate` (documented there);
    ``unique=`` and ``cache_dir=`` are the previous release's names of ``one_to_one`` and
    ``answer_dir`` (a FutureWarning).

    Examples
    --------
    >>> from sc_cello1.tl._annotate_config import AnnotateConfig
    >>> AnnotateConfig(groupby="louvain", n_samples=3).max_new_tokens
    3500
    >>> AnnotateConfig(tie_order="alphabetical")
    Traceback (most recent call last):
    ...
    ValueError: annotate: `tie_order='alphabetical'` is not valid; use one of 'position', 'authors'.
    """

    _VERB: ClassVar[str] = "annotate"
    _OLD_NAMES: ClassVar[Mapping[str, str]] = {"unique": "one_to_one", "cache_dir": "answer_dir"}

    groupby: str = option(
        "leiden",
        help="obs column with the clusters.",
        validate=_name("groupby", "the name of an obs column", optional=False),
    )
    candidates: Sequence[str] | None = option(
        None,
        help="Candidate cell types (none given: the model proposes them first; a curated "
        "list is better).",
        validate=_check_candidates,
        record=lambda v: [str(c) for c in v],
        cli_kwargs={"nargs": "+", "type": str, "metavar": "TYPE"},
    )
    model: Any = model_option()
    backend: BackendName = backend_option()
    context: str | Callable[..., str] | None = option(
        None,
        help="Donor context sentence (default: from the CELLxGENE columns of obs).",
        validate=_check_context,
        record=_record_context,
        cli_kwargs={"type": str},
    )
    context_fields: Sequence[str] | Mapping[str, str] = option(
        (),
        help="Further obs columns appended to the CELLxGENE context sentence.",
        validate=_check_context_fields,
        record=_record_context_fields,
        cli_kwargs={"nargs": "+", "type": str, "metavar": "COLUMN"},
    )
    donor_key: str | None = option(
        None,
        help="obs column with donors: puzzles per donor, votes pooled.",
        validate=_name("donor_key", "the name of an obs column"),
    )
    layer: str | None = option(
        None,
        help="Layer with the expression values to rank genes by.",
        validate=_name("layer", "the name of a layer"),
    )
    use_raw: bool | None = option(
        None, help="Rank genes in adata.raw.X.", validate=flag_check("use_raw", optional=True)
    )
    gene_symbols: str | None = option(
        None,
        help="var column with the gene symbols shown to the model (default: var_names).",
        validate=_name("gene_symbols", "the name of a var column"),
    )
    use_rep: str | None = option(
        None,
        help="obsm key where representative cells are chosen, or X (default: X_pca when present).",
        validate=_name("use_rep", "the name of an obsm entry (e.g. 'X_pca')"),
    )
    n_genes: int = option(
        50, help="Top genes listed per cell (CellPuzzles: 50).", validate=_integer("n_genes", 1)
    )
    tie_order: TieOrder = option("position", help="Order of genes with equal values.")
    n_samples: int = option(
        5,
        help="Minimum of cells asked per cluster, one per puzzle; a cluster in doubt is asked "
        "again up to 3x.",
        validate=_integer("n_samples", 1),
    )
    temperature: float = temperature_option()
    max_new_tokens: int = max_new_tokens_option()
    max_cells_per_puzzle: int = option(
        MAX_TRAINED_CELLS,
        help="Cells in one puzzle at most (CellPuzzles: 8 to 15).",
        validate=_integer("max_cells_per_puzzle", 1),
    )
    one_to_one: bool = option(
        False,
        help="Clusters and types match one to one: distinct labels (default: each cluster "
        "its most voted type).",
        validate=flag_check("one_to_one"),
    )
    ontology: bool | None = option(
        None,
        help="Match names through the Cell Ontology and write CL IDs (default: when installed).",
        validate=flag_check("ontology", optional=True),
    )
    constrained: bool = option(
        False,
        help="Constrained decoding of the answer, where the backend supports it.",
        validate=flag_check("constrained"),
    )
    batch_size: int | None = batch_size_option()
    key_added: str = option("cello1", help="obs/uns key of the results.", validate=_check_key_added)
    answer_dir: Any = answer_dir_option(
        "Folder where each finished question and puzzle is stored (resume after an interrupt)."
    )
    seed: int = option(
        0,
        help="Seed of the representative cells, the layout, the shuffling and sampling.",
        validate=_integer("seed", 0),
    )
    copy: bool = option(
        False, help="Return an annotated copy.", validate=flag_check("copy"), cli=False
    )
    backend_kwargs: Mapping[str, Any] | None = backend_kwargs_option()
    overwrite: bool = option(
        False,
        help="Replace obs/uns entries under key_added that a previous annotation did not write.",
        validate=flag_check("overwrite"),
    )
    reference: Any = option(
        None,
        help="A labelled AnnData (its labels are the candidates, its cells known cells).",
        cli=False,
        record=lambda _: None,  # its provenance is recorded after the run
    )
    reference_key: str | None = option(
        None, help="Reference obs column with the labels.", validate=_checked_later
    )
    reference_layer: str | None = option(
        None, help="Reference layer to read.", validate=_checked_later
    )
    reference_use_raw: bool | None = option(
        None, help="Read reference.raw.X.", validate=_checked_later
    )
    reference_gene_symbols: str | None = option(
        None, help="Reference var column with the gene symbols.", validate=_checked_later
    )
    reference_prior: PriorMethod = option(
        "ingest",
        help="Label transfer: scanpy's ingest, or scANVI (the scvi extra; raw counts).",
    )
    reference_model: Any = option(
        None,
        help="A trained scvi.model.SCANVI of the reference (None: one is trained).",
        cli=False,
        record=describe,
    )
    reference_max_epochs: int | None = option(
        None, help="scANVI epochs of each training (default: scvi-tools').", validate=_checked_later
    )

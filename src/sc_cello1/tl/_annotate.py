"""``cello1.tl.annotate``: label clusters with Cell-o1 by voting over CellPuzzles.

The keyword signature builds an :class:`~sc_cello1.tl._annotate_config.AnnotateConfig`
first (every setting checked); :func:`run_annotate` then reads top-down, one module per
stage:

1. :mod:`._annotate_checks` — the settings against the data, the model and the
   reference; nothing loaded;
2. :mod:`._annotate_plan` — the distinct cells each cluster may show, their top genes;
3. :mod:`._propose` — with ``candidates=None``, the model's free-text cell types per
   cluster, merged into the candidate list;
4. :mod:`._annotate_rounds` — puzzles laid out round by round (:mod:`._layout`),
   answered by :func:`~sc_cello1.tl.solve` (cached, resumable) and read strictly;
5. :mod:`._annotate_collect` — labels from the counted votes, ``uns`` tables;
6. :mod:`._annotate_results` — ``params`` and ``uns`` built, then written: the only
   step that changes ``adata``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._config import SHARED_DOCS, doc_params
from sc_cello1._logging import logger
from sc_cello1.inference._base import BackendName

from ._annotate_ask import load_backend, solve_puzzles
from ._annotate_collect import collect
from ._annotate_config import AnnotateConfig, PriorMethod, TieOrder
from ._annotate_plan import choose_cells, make_layout
from ._annotate_ready import check_all
from ._annotate_reference import MIN_KNOWN_SCORE, prepare_reference
from ._annotate_results import build_results, cost, redact, sanitize, write
from ._annotate_rounds import ask_in_rounds, to_puzzle
from ._cluster_puzzles import MAX_TRAINED_CELLS
from ._names import NameMatcher, check_distinct_terms

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

    from sc_cello1.inference import Backend

__all__ = ["annotate", "run_annotate"]


@doc_params(**SHARED_DOCS)
def annotate(
    adata: AnnData,
    groupby: str = "leiden",
    *,
    candidates: Sequence[str] | None = None,
    model: str | os.PathLike | Backend | None = None,
    backend: BackendName = "auto",
    context: str | Callable[[pd.DataFrame], str] | None = None,
    context_fields: Sequence[str] | Mapping[str, str] = (),
    donor_key: str | None = None,
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    use_rep: str | None = None,
    n_genes: int = 50,
    tie_order: TieOrder = "position",
    n_samples: int = 5,
    temperature: float = 0.0,
    max_new_tokens: int = 3500,
    max_cells_per_puzzle: int = MAX_TRAINED_CELLS,
    one_to_one: bool = False,
    ontology: bool | None = None,
    constrained: bool = False,
    batch_size: int | None = None,
    key_added: str = "cello1",
    answer_dir: str | os.PathLike | None = None,
    seed: int = 0,
    copy: bool = False,
    backend_kwargs: Mapping[str, Any] | None = None,
    unique: bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    reference: AnnData | None = None,
    reference_key: str | None = None,
    reference_layer: str | None = None,
    reference_use_raw: bool | None = None,
    reference_gene_symbols: str | None = None,
    reference_prior: PriorMethod = "ingest",
    reference_model: Any = None,
    reference_max_epochs: int | None = None,
) -> AnnData | None:
    """Annotate clusters with Cell-o1 by solving CellPuzzles built from them.

    Each cluster is shown to the model as cells (the first: the cell nearest the
    cluster's centroid in ``use_rep``; then random cells of the cluster, each at most
    once), each cell as its ``n_genes`` top expressed genes, in CellPuzzles with the
    candidates in ``sorted()`` order (as in training). The puzzles are asked in rounds
    (see Notes): first clusters far apart in ``use_rep`` share a puzzle, then only
    clusters whose current labels differ, and clusters in doubt are asked again. An
    answer votes only when it is read strictly: the text between ``<answer>`` and
    ``</answer>``, one item per cell. Every item that *names* a candidate (equal up to
    case, whitespace, punctuation and a plural ``s``, or, with the Cell Ontology, the
    same CL term) is a vote; anything else is an unmatched answer, recorded and counted
    against the cluster, except items *displaced* by the one-to-one rule (see Notes).
    Each cluster's label is its most voted candidate and its confidence the share of
    its asks whose answer named that label (see ``obs`` below).

    Without ``candidates``, a first stage asks the model for each cluster's cell type
    in free text (``n_samples`` questions per cluster, one representative cell each),
    and the merged names form the candidate list. A curated list is better where you
    have one: the model then chooses among the types you know are there.

    Everything is validated before any model is loaded, and the results are written
    into ``adata`` in one step at the end: on any error, including an interrupt or an
    out-of-memory error while the model runs, ``adata`` is left unchanged. With
    ``answer_dir``, every finished question and puzzle is stored and a rerun with the
    same arguments resumes where it stopped.

    Parameters
    ----------
    adata
        Annotated data matrix; cells in rows.
    groupby
        Categorical ``obs`` column with the clusters (string or integer columns with at
        most 100 distinct values are taken as categories; the caller's column is not
        converted). Cells whose cluster is missing get no label.
    candidates
        The cell types to choose from (distinct names). ``None``: the model proposes
        them first (see above).
    {doc_model}
    {doc_backend}
    context
        The donor context sentence: a string, or a callable that gets the puzzle's
        ``obs`` rows (in cell order) and returns the sentence. ``None``: the authors'
        sentence from the CELLxGENE columns (``sex``, ``development_stage``,
        ``self_reported_ethnicity``, ``tissue``, ``disease``) of the puzzle's first
        cell when ``obs`` has any of them, else ``"The cell is from an unspecified
        donor."``.
    context_fields
        Further ``obs`` columns appended to the CELLxGENE sentence (see
        :func:`sc_cello1.data.context_sentence`).
    donor_key
        ``obs`` column of donors (or samples). Puzzles are then built per donor from
        that donor's cells, as in CellPuzzles, and the votes of all donors are pooled.
    layer
        Layer with the expression values to rank genes by (counts or normalised).
    use_raw
        Rank genes in ``adata.raw.X``. ``None`` (default) and ``False`` read ``adata.X``
        or ``layer``: unlike scanpy, ``.raw`` is used only when asked for. Scaled data
        (negative values) is rejected with a hint to pass ``layer=`` or ``use_raw=True``.
    gene_symbols
        ``var`` column with the gene symbols shown to the model (default: ``var_names``);
        any ``_ENSG...`` suffix is cut.
    use_rep
        ``obsm`` key of the space in which the cell nearest each cluster's centroid is
        chosen (e.g. ``"X_pca"``, ``"X_scVI"``), or ``"X"`` for the expression matrix.
        ``None``: ``"X_pca"`` when present, else the expression matrix (where library
        size can dominate the distances). Used only to choose cells; genes are always
        ranked in ``layer``/``use_raw``/``X``.
    n_genes
        Top genes listed per cell (CellPuzzles: 50).
    tie_order
        Order of genes with equal values: ``"position"`` (lower gene position first) or
        ``"authors"`` (the order of the authors' published code; see
        :func:`sc_cello1.pp.top_genes`).
    n_samples
        The *minimum* of cells asked per cluster (pooled over donors): each cluster is
        shown in at least ``n_samples`` puzzles, one distinct cell each, where it has
        that many cells. A cluster still in doubt is asked again, up to its *budget* of
        ``3 * n_samples`` cells (query and known cells together). Below 3 the
        confidence can take only a few values (a warning says so).
    {doc_temperature}
        The samples still differ by their cells and cell order.
    {doc_max_new_tokens}
    max_cells_per_puzzle
        Largest number of cells in one puzzle (CellPuzzles has 8 to 15).
    one_to_one
        Clusters and candidate types match one to one: distinct final labels (the
        assignment with the most votes in total; a label that is not the cluster's most
        voted candidate is flagged ``overridden`` and warned about). Default ``False``:
        each cluster gets its most voted candidate, so several clusters can share a type.
    ontology
        Match names through the Cell Ontology (labels and exact synonyms) and write CL
        term IDs. ``None``: when the ``ontology`` extra is installed.
    constrained
        Restrict the ``<answer>`` part of the puzzle answers to the candidates while
        decoding, where the backend supports it (see :func:`sc_cello1.tl.solve`).
    {doc_batch_size}
    key_added
        Key under which the results are written to ``obs`` and ``uns`` (existing entries
        are overwritten, with a warning).
    {doc_answer_dir}
        Every question of the proposal stage and every puzzle is stored.
    seed
        Seed of the representative cells, the puzzle layout, the shuffling and sampling.
    copy
        Return an annotated copy instead of writing into ``adata``.
    {doc_backend_kwargs}
    unique
        Deprecated alias of ``one_to_one`` (warns; removed in the next release).
    cache_dir
        Deprecated name of ``answer_dir`` (warns; removed in the next release).
    overwrite
        Replace existing ``obs``/``uns`` entries under ``key_added`` that a previous
        annotation did not write (a previous annotation is replaced with a warning). A
        ``key_added`` that would write the ``groupby`` column is always refused.
    reference
        A labelled AnnData (an atlas, an earlier study; in memory, not a view). Its
        labels become the candidates (or the user's ``candidates`` are matched onto
        them), label transfer gives each cluster a prior that lays out the first round
        and is recorded as a second opinion (never a vote), and its cells fill the
        puzzles to N cells and N candidates as known-answer cells whose answers score
        each puzzle. See ``docs/reference.md``.
    reference_key
        ``reference.obs`` column with the cell type labels (scanpy ingest's ``obs``).
    reference_layer
        Layer of the reference to read (as ``layer``, for the reference).
    reference_use_raw
        Read ``reference.raw.X`` (as ``use_raw``, for the reference).
    reference_gene_symbols
        ``reference.var`` column with the gene names paired with the query's (as
        ``gene_symbols``, for the reference).
    reference_prior
        ``"ingest"`` (:func:`scanpy.tl.ingest`, default) or ``"scanvi"`` (scvi-tools,
        the ``scvi`` extra; needs raw counts on both sides).
    reference_model
        With ``reference_prior="scanvi"``: a trained ``scvi.model.SCANVI`` of the
        reference, mapped onto the query scArches-style; ``None`` trains one.
    reference_max_epochs
        With ``"scanvi"``: epochs of each training (``None``: scvi-tools' default).

    Returns
    -------
    ``None``, or the annotated copy when ``copy=True``. Writes

    ``adata.obs[key_added]``
        Categorical: the label of each cell's cluster; missing for cells without a
        cluster and for clusters whose answers never named a candidate (or, with
        ``one_to_one``, whose only voted candidate went to another cluster).
    ``adata.obs[f"{key_added}_confidence"]``
        Float in [0, 1]: votes for the cluster's label over the times the cluster was
        asked (unmatched answers and displaced items count against it); 0 for
        unlabelled clusters, NaN for cells without a cluster.
    ``adata.obs[f"{key_added}_ontology_term_id"]``
        With the ontology only: the label's Cell Ontology ID (``CL:...``; missing where
        the label maps to no term).
    ``adata.uns[key_added]['params']``
        Every argument, the model name and revision, the backend and its provenance,
        ``sc_cello1.__version__``, the prompt versions and how labels were assigned.
    ``adata.uns[key_added]['candidates']``
        The candidate list used by the puzzle stage, ``candidate_source`` (``"user"``
        or ``"proposed"``) and, with the ontology, ``unmapped`` (candidates that map
        to no CL term).
    ``adata.uns[key_added]['clusters']``
        DataFrame indexed by cluster: ``label``, ``confidence``, ``votes``,
        ``n_asked`` (answers about it: as a query cell or as an anchor),
        ``n_displaced`` (items displaced by another cell of its label: no votes),
        ``n_valid`` (answers read with one item per cell), ``n_conflict`` (answers
        voided by reference cells answered against their labels), ``n_unmatched``
        (asks whose answer named no candidate or could not vote), ``runner_up``,
        ``runner_up_votes``, ``margin`` (``(votes - runner_up_votes) / n_asked``),
        ``tied``, ``overridden`` (``one_to_one`` gave a
        label other than the most voted), ``n_cells`` and, with the ontology,
        ``ontology_term_id``.
    ``adata.uns[key_added]['votes']``
        Long-form vote table: ``cluster``, ``candidate``, ``votes``.
    ``adata.uns[key_added]['unmatched']``
        What the model said that named no candidate: ``cluster``, ``text`` (empty:
        the answer had no item for the cell), ``count``.
    ``adata.uns[key_added]['reasoning']``
        One row per cell shown: ``cluster``, ``sample`` (the cluster's ask number in
        that donor, from 0; -1 for a known cell), ``round``, ``donor``, ``puzzle`` (row
        of ``puzzles``, where the reasoning is), ``cell`` (1-based position),
        ``cell_id``, ``known`` (the known label of an anchor cell, else empty),
        ``answer`` (the raw item), ``matched``, ``counted`` (it is a vote) and
        ``displaced`` (its cluster's label went to another cell of that label).
    ``adata.uns[key_added]['puzzles']``
        One row per puzzle asked: ``round``, ``purpose`` (``"anti-clustered"``,
        ``"distinct labels"`` or ``"N cells"``), ``donor``, ``n_cells``,
        ``n_candidates``, ``clusters``, ``known`` and ``cell_ids`` (JSON lists in cell
        order), ``user_msg``, ``text`` (the completion, stored once), ``reasoning``
        (its think part), ``answer`` (authors' rule, display), ``repaired`` (display
        only; creates no vote), ``reason`` (why it did or did not vote: ``"ok"``,
        ``"no answer tag"``, ``"7 items for 2 cells"``, ...), ``voted``, ``conflict``
        (known labels answered on none of their known cells), ``n_known`` (known
        cells), ``n_spare`` (known cells that repeat a known label, to fill a puzzle
        to N cells), ``known_right`` (known labels answered on one of their cells),
        ``valid_format`` (one item per cell), ``is_permutation`` (and each a distinct
        candidate), ``finish_reason``, ``n_tokens``; with a reference also
        ``known_score`` (``known_right / (n_known - n_spare)``).
    ``adata.obs[f"{key_added}_reference"]``, ``..._reference_share``, ``..._reference_agrees``
        With a reference only: the prior label of each cell's cluster (the most frequent
        label transferred onto its cells), its share of the cluster's cells, and whether
        the model's label is the same.
    ``adata.uns[key_added]['reference']``
        With a reference only: per cluster ``reference_label``, ``reference_share``,
        ``reference_distribution`` (JSON), ``agrees``, ``n_known`` and ``known_right``
        (known cells beside the cluster in answers that could be read) and
        ``known_score``. ``params['reference']`` records the reference (cells, types,
        label key, sha256 of its labels, how the prior was made).
    ``adata.uns[key_added]['proposals']``
        Without ``candidates`` only: one row per question of the proposal stage:
        ``cluster``, ``sample``, ``cell_id``, ``text``, ``answer`` (the proposed name),
        ``name`` (after merging), ``unusable`` (why no name was taken),
        ``finish_reason``.

    Notes
    -----
    **Puzzle layout** (details in ``sc_cello1.tl._layout`` and
    ``docs/annotation.md``). A trained puzzle has N cells and N candidates, each used
    once; per donor, ``N = min(len(candidates), 15, max_cells_per_puzzle, k)`` for
    ``k`` clusters. Round 1 splits the clusters into ``ceil(k / N)`` puzzles of
    clusters far apart in ``use_rep`` (subclusters of one type are neighbours, and a
    model that uses each candidate once cannot give two cells of one type their type),
    padded to N cells with further clusters. Later rounds ask the clusters with fewer
    than ``n_samples`` asks or in doubt (agreement below 0.75), sharing a puzzle only
    when their current labels differ; a cluster in doubt shares none with clusters
    labelled as one of its hypotheses (its runner-up, its nearest clusters' labels);
    decided clusters pad the puzzles as *known* cells (anchors: the model does not
    know them, so their items are votes for their own clusters; only reference cells
    answered against their labels void a puzzle, ``conflict``). Asking stops when no
    cluster needs it or its budget (``3 * n_samples`` cells, never the same cell
    twice) is spent. Puzzles have fewer cells than candidates where the data do not
    allow N (fewer clusters than candidates, or too few distinct labels); once the
    model is seen listing every candidate for fewer cells (as it was trained to for
    N cells), later puzzles all have N cells, since no other answer of it can vote.
    A donor group with one cluster gets one-cell puzzles: the vote is the model's
    choice among all candidates for that cell alone.

    **Displaced items** (``sc_cello1.tl._displaced``, ``docs/annotation.md``). In an
    answer that gave each candidate once, an item whose cluster's label went to another
    cell of that label is no vote (the rule left it another candidate); labels are the
    self-consistent candidates most likely under the trained rule.

    **Cost**: puzzles, rounds, cells, tokens and prompt characters are in ``params``.

    **Ties** between the most voted candidates go to the one listed first in the
    prompt (``sorted()`` order); ``tied`` marks them and a warning names them.

    Examples
    --------
    >>> import scanpy as sc
    >>> import sc_cello1 as cello1
    >>> adata = sc.datasets.pbmc68k_reduced()
    >>> cello1.tl.annotate(adata, groupby="louvain", model="cell-o1", use_raw=True)  # doctest: +SKIP
    >>> cello1.tl.annotate(
    ...     adata,
    ...     groupby="louvain",
    ...     candidates=adata.obs["bulk_labels"].cat.categories,
    ...     model="cell-o1",
    ...     use_raw=True,
    ... )  # doctest: +SKIP
    >>> adata.uns["cello1"]["clusters"][["label", "confidence", "runner_up", "margin"]]  # doctest: +SKIP
    """
    given = dict(locals())
    adata = given.pop("adata")
    return run_annotate(adata, AnnotateConfig.from_locals(given))


def run_annotate(adata: AnnData, config: AnnotateConfig) -> AnnData | None:
    """Run :func:`annotate` with its settings checked (see there); the stages in order."""
    start = time.perf_counter()
    # -- 1. checks (nothing loaded, nothing written) -------------------------------------
    ready = check_all(adata, config)
    checked, use_ontology = ready.checked, ready.ontology

    # -- 2. representative cells (reads adata only) ---------------------------------------
    rng = np.random.default_rng(config.seed)
    cells = choose_cells(adata, checked, config, rng=rng)
    plan = None
    if ready.reference is not None:  # prior and known cells: before the model loads
        plan = _plan_reference(ready, config)
    runner = load_backend(ready.model, config.backend, config.backend_kwargs)
    provenance = sanitize(redact(runner.provenance()))

    # -- 3. candidates: the user's, or proposed by the model ------------------------------
    proposals = None
    candidate_list = checked.candidates if plan is None else plan.cmap.candidates
    if candidate_list is None:
        from ._propose import propose_stage

        proposals = propose_stage(adata, checked, cells, runner, config, ontology=use_ontology)
        candidate_list = proposals.candidates

    # -- 4. the puzzles, asked in rounds --------------------------------------------------
    context, context_fields = config.context, config.context_fields
    layout = (make_layout if plan is None else plan.layout)(
        cells,
        list(candidate_list),
        n_samples=config.n_samples,
        max_cells_per_puzzle=config.max_cells_per_puzzle,
        rng=rng,
    )
    top_genes = cells.top_genes if plan is None else {**cells.top_genes, **plan.top_genes}
    matcher = NameMatcher(list(candidate_list), ontology=use_ontology)
    logger.info(
        "annotate: %d clusters, %d candidates (%s), up to %d cells per cluster, %s",
        len(checked.clusters),
        len(candidate_list),
        "user" if proposals is None else "proposed",
        layout.budget,
        checked.where,
    )

    def build(laid: Any, index: int) -> Any:
        return to_puzzle(
            laid,
            index,
            top_genes=top_genes,
            obs=adata.obs,
            cluster_names=checked.clusters,
            group_names=cells.group_names,
            context=context,
            context_fields=context_fields,
            has_cellxgene=cells.has_cellxgene,
            known_ids=None if plan is None else plan.known_ids,
        )

    cut: dict[str, Any] = {"n_completions_cut": 0, "max_completion_chars": None}

    def ask(puzzles: list[Any]) -> list[dict]:
        records = solve_puzzles(puzzles, runner, config)
        # completions cut to the documented cap, summed over the rounds
        solved = getattr(records, "provenance", None) or {}
        cut["n_completions_cut"] += int(solved.get("n_cut", 0) or 0)
        cut["max_completion_chars"] = solved.get("max_completion_chars")
        return records

    asked = ask_in_rounds(
        layout,
        n_clusters=len(checked.clusters),
        build=build,
        solve=ask,
        matcher=matcher,
        min_known_score=1.0 if plan is None else MIN_KNOWN_SCORE,
    )

    # -- 5. votes and tables ---------------------------------------------------------------
    result = collect(
        asked,
        clusters=checked.clusters,
        cluster_codes=checked.codes,
        matcher=matcher,
        one_to_one=config.one_to_one,
    )
    counts = cost(asked, len(checked.clusters))

    # -- 6. params, uns, write (the only step that changes adata) ------------------------
    uns, extra_obs = build_results(
        config,
        model=ready.model,
        provenance=provenance,
        checked=checked,
        cells=cells,
        asked=asked,
        result=result,
        matcher=matcher,
        proposals=proposals,
        plan=plan,
        use_ontology=use_ontology,
        counts={**counts, **cut},
        start=start,
    )
    if runner is not ready.model and callable(getattr(runner, "close", None)):
        runner.close()  # the backend annotate built (its connection pool), not the user's
    target = adata.copy() if config.copy else adata
    write(target, config.key_added, result, uns, extra_obs)
    logger.info(
        "annotate: wrote obs[%r], obs[%r], uns[%r] (%.1f s)",
        config.key_added,
        f"{config.key_added}_confidence",
        config.key_added,
        time.perf_counter() - start,
    )
    return target if config.copy else None


def _plan_reference(ready: Any, config: AnnotateConfig) -> Any:
    """Prepare the labelled reference: candidates, prior and known cells (loads no model)."""
    plan = prepare_reference(
        ready.reference,
        ready.checked,
        candidates=ready.checked.candidates,
        ontology=ready.ontology,
        method=config.reference_prior,
        reference_model=config.reference_model,
        max_epochs=config.reference_max_epochs,
        n_samples=config.n_samples,
        n_genes=config.n_genes,
        tie_order=config.tie_order,
        seed=config.seed,
    )
    check_distinct_terms(plan.cmap.candidates, ready.ontology)
    return plan

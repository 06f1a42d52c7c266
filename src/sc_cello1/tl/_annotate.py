"""``cello1.tl.annotate``: label clusters with Cell-o1 by voting over CellPuzzles."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._logging import logger

from ._cluster_puzzles import (
    MAX_TRAINED_CELLS,
    PuzzleSlot,
    build_cluster_puzzles,
    puzzle_slots,
    representative_cells,
)
from ._votes import assign_labels, vote_table

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

    from sc_cello1.data import Puzzle
    from sc_cello1.inference import Backend

_SECRET_WORDS = ("key", "token", "secret", "password")


@dataclass
class _Plan:
    """Everything computed before the model runs (no AnnData is changed)."""

    clusters: list[str]
    cluster_codes: np.ndarray
    n_cells: np.ndarray
    candidates: list[str]
    slots: list[PuzzleSlot]
    puzzles: list[Puzzle]
    expression: str
    context_source: str
    extra: dict[str, Any] = field(default_factory=dict)


def annotate(
    adata: AnnData,
    groupby: str = "leiden",
    *,
    candidates: Sequence[str],
    model: str | os.PathLike | Backend | None = None,
    backend: str = "auto",
    context: str | Callable[[pd.DataFrame], str] | None = None,
    context_fields: Sequence[str] | Mapping[str, str] = (),
    donor_key: str | None = None,
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    n_genes: int = 50,
    n_samples: int = 5,
    temperature: float = 0.0,
    max_new_tokens: int = 3500,
    max_cells_per_puzzle: int = MAX_TRAINED_CELLS,
    unique: bool = True,
    constrained: bool = False,
    batch_size: int | None = None,
    key_added: str = "cello1",
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    copy: bool = False,
    backend_kwargs: Mapping[str, Any] | None = None,
) -> AnnData | None:
    """Annotate clusters with Cell-o1 by solving CellPuzzles built from them.

    For each of ``n_samples`` samples, one representative cell is drawn per cluster
    (sample 0: the cell nearest the cluster's centroid in the expression matrix used;
    later samples: random cells of the cluster, seeded by ``seed``), its ``n_genes``
    top expressed genes are listed, the cells are shuffled, and a CellPuzzle with the
    candidates in ``sorted()`` order (as in training) is put to the model. The answers
    of all samples form a clusters x candidates vote table; the final label of each
    cluster is the best assignment of candidates to clusters (distinct labels when
    ``unique=True`` and there are at least as many candidates as clusters, else each
    cluster's most voted candidate) and its confidence is the share of votes for it.

    Everything is validated before any model is loaded, and the results are written
    into ``adata`` in one step at the end: on any error, including an interrupt or an
    out-of-memory error while the model runs, ``adata`` is left unchanged. With
    ``cache_dir``, finished puzzles are stored and a rerun with the same arguments
    resumes where it stopped.

    Parameters
    ----------
    adata
        Annotated data matrix; cells in rows.
    groupby
        Categorical ``obs`` column with the clusters (string or integer columns are
        taken as categories; the caller's column is not converted). Cells whose cluster
        is missing get no label.
    candidates
        The cell types to choose from (distinct, non-empty names).
    model
        A registered model name (see :mod:`sc_cello1.models`), a local model folder,
        a ``.gguf`` file, for ``backend="openai"`` the name the server knows, or a
        backend object built by :func:`sc_cello1.inference.get_backend`. ``None``:
        :attr:`sc_cello1.settings.default_model`.
    backend
        ``"auto"`` (vLLM with CUDA, else transformers), ``"transformers"``, ``"vllm"``
        or ``"openai"``. Ignored when ``model`` is a backend object.
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
    n_genes
        Top genes listed per cell (CellPuzzles: 50).
    n_samples
        Puzzles (representative cells) per cluster and donor; each is one vote.
    temperature
        Sampling temperature; ``0`` is greedy decoding as in the paper's evaluation (the
        samples still differ by their cells and cell order).
    max_new_tokens
        Cap on generated tokens per answer (the paper's evaluation: 3,500).
    max_cells_per_puzzle
        Largest number of clusters put into one puzzle (CellPuzzles has 8 to 15).
    unique
        Distinct labels within a puzzle (the answer is repaired into an assignment) and
        for the final labels when there are at least as many candidates as clusters.
    constrained
        Restrict the ``<answer>`` part to the candidates while decoding, where the
        backend supports it (see :func:`sc_cello1.tl.solve`).
    batch_size
        Prompts per generation batch; ``None``: the :func:`~sc_cello1.tl.solve` default.
    key_added
        Key under which the results are written to ``obs`` and ``uns``.
    cache_dir
        Folder where each finished puzzle is stored, so that an interrupted run resumes.
    seed
        Seed of the representative cells, the shuffling and the sampling.
    copy
        Return an annotated copy instead of writing into ``adata``.
    backend_kwargs
        Passed to :func:`sc_cello1.inference.get_backend` (``device_map``, ``dtype``,
        ``base_url``, ``api_key``, ...). Keys naming secrets are not recorded.

    Returns
    -------
    ``None``, or the annotated copy when ``copy=True``. Writes

    ``adata.obs[key_added]``
        Categorical: the label of each cell's cluster; missing for cells without a
        cluster and for clusters that no answer gave the label the assignment chose
        (their confidence is 0; ``uns[key_added]['votes']`` shows what they got).
    ``adata.obs[f"{key_added}_confidence"]``
        Float in [0, 1]: the votes for the cluster's label over the puzzles that showed
        the cluster (answers that named no candidate for it count against it); NaN for
        cells without a cluster.
    ``adata.uns[key_added]['params']``
        Every argument, the model name and revision, the backend and its provenance,
        ``sc_cello1.__version__`` and the prompt version
        (:data:`sc_cello1.data.PROMPT_VERSION`).
    ``adata.uns[key_added]['clusters']``
        DataFrame indexed by cluster: ``label``, ``confidence``, ``votes`` (for the
        label), ``n_asked`` (puzzles that showed the cluster), ``n_valid`` (of those,
        answers in the valid format) and ``n_cells``.
    ``adata.uns[key_added]['votes']``
        DataFrame of the vote table in long form: ``cluster``, ``candidate``, ``votes``
        (one row per pair; ``.pivot(index="cluster", columns="candidate",
        values="votes")`` gives the clusters x candidates table).
    ``adata.uns[key_added]['reasoning']``
        DataFrame, one row per cluster and puzzle that showed it: ``cluster``,
        ``sample``, ``donor``, ``puzzle``, ``cell`` (its 1-based position in the
        puzzle), ``cell_id``, ``answer`` (the label given to it) and ``reasoning`` (the
        model's think text for that puzzle).
    ``adata.uns[key_added]['puzzles']``
        DataFrame, one row per puzzle asked: ``sample``, ``donor``, ``part``,
        ``clusters`` and ``cell_ids`` (JSON lists in cell order), ``user_msg``,
        ``text`` (the raw completion), ``answer`` (raw), ``repaired``,
        ``valid_format``, ``is_permutation``, ``finish_reason``.

    Notes
    -----
    Cell-o1 was trained on puzzles of 8 to 15 cells of one donor with exactly as
    many candidates as cells, each candidate used once. How the cases differ:

    - **As many clusters as candidates** (up to ``max_cells_per_puzzle``): the trained
      one-to-one puzzle; each answer is a permutation of the candidates.
    - **More candidates than clusters**: one puzzle lists all candidates for fewer
      cells, so some types stay unused. The prompt still says each candidate is used
      exactly once, which the model never saw violated; expect lower accuracy and
      check the confidence.
    - **More clusters than candidates, or more than** ``max_cells_per_puzzle``: the
      clusters are split at random (anew for each sample) into puzzles of at most
      ``min(max_cells_per_puzzle, len(candidates))`` cells, each with all candidates,
      so a type may be given to clusters of different puzzles. With more clusters than
      candidates some types must repeat, so answers may name a type more than once
      (they are not repaired into permutations, and constrained decoding allows
      repeats) and the final labels are the most voted type per cluster; puzzles with
      fewer cells than candidates are as in the previous case.
    - **Fewer than 8 clusters** (or per donor): smaller puzzles than any in training.
    - **Clusters instead of cell types**: training puzzles had one cell of each
      *distinct* type; two clusters of the same type put two cells of one type into a
      puzzle, which its one-to-one rule forbids. Pass ``unique=False`` when several
      clusters may share a type.

    Examples
    --------
    >>> import scanpy as sc
    >>> import sc_cello1 as cello1
    >>> adata = sc.datasets.pbmc68k_reduced()
    >>> cello1.tl.annotate(
    ...     adata,
    ...     groupby="louvain",
    ...     candidates=adata.obs["bulk_labels"].cat.categories,
    ...     model="cell-o1",
    ...     use_raw=True,
    ... )  # doctest: +SKIP
    >>> adata.obs[["cello1", "cello1_confidence"]].head()  # doctest: +SKIP
    """
    import sc_cello1
    from sc_cello1.data import PROMPT_VERSION

    start = time.perf_counter()
    params = _params(locals())
    data = _validate_data(
        adata,
        groupby,
        candidates=candidates,
        context=context,
        context_fields=context_fields,
        donor_key=donor_key,
        layer=layer,
        use_raw=use_raw,
        gene_symbols=gene_symbols,
        n_genes=n_genes,
        n_samples=n_samples,
        max_cells_per_puzzle=max_cells_per_puzzle,
        key_added=key_added,
        seed=seed,
    )
    _check_run_args(
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        unique=unique,
        constrained=constrained,
        copy=copy,
        batch_size=batch_size,
        backend_kwargs=backend_kwargs,
        cache_dir=cache_dir,
    )
    model = _check_model(model, backend, backend_kwargs)
    plan = _build_plan(
        adata,
        data,
        context=context,
        context_fields=context_fields,
        donor_key=donor_key,
        n_genes=n_genes,
        n_samples=n_samples,
        max_cells_per_puzzle=max_cells_per_puzzle,
        seed=seed,
    )
    logger.info(
        "annotate: %d clusters, %d candidates, %d puzzles (%d samples), %s",
        len(plan.clusters),
        len(plan.candidates),
        len(plan.puzzles),
        n_samples,
        plan.expression,
    )

    # Types must repeat when clusters outnumber candidates: answers may then repeat too.
    unique_in_puzzle = unique and len(plan.clusters) <= len(plan.candidates)
    runner = _load_backend(model, backend, backend_kwargs)
    provenance = _sanitize(dict(runner.provenance()))
    records = _solve(
        plan.puzzles,
        runner,
        n_samples=1,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
        constrained=constrained,
        unique=unique_in_puzzle,
        cache_dir=cache_dir,
        batch_size=batch_size,
    )
    result = _collect(plan, records, unique=unique)

    params.update(
        model=_describe(model),
        model_name=str(provenance.get("model", provenance.get("name", _describe(model)))),
        model_revision=str(provenance.get("revision", "")),
        backend_used=str(provenance.get("backend", backend)),
        provenance=provenance,
        version=sc_cello1.__version__,
        prompt_version=PROMPT_VERSION,
        expression=plan.expression,
        context_source=plan.context_source,
        assignment=result["method"],
        n_puzzles=len(plan.puzzles),
        seconds=round(time.perf_counter() - start, 3),
    )
    uns = {
        "params": params,
        "clusters": result["clusters"],
        "votes": result["votes"],
        "reasoning": result["reasoning"],
        "puzzles": result["puzzles"],
    }
    target = adata.copy() if copy else adata
    _write(target, key_added, result["obs_labels"], result["obs_confidence"], uns)
    logger.info(
        "annotate: wrote obs[%r], obs[%r], uns[%r] (%.1f s)",
        key_added,
        f"{key_added}_confidence",
        key_added,
        time.perf_counter() - start,
    )
    return target if copy else None


# --------------------------------------------------------------------------- params


def _params(args: Mapping[str, Any]) -> dict[str, Any]:
    """Every argument of :func:`annotate`, in a form that survives ``write_h5ad``."""
    out: dict[str, Any] = {}
    for name, value in args.items():
        if name in {"adata", "start", "sc_cello1", "PROMPT_VERSION"}:
            continue
        if name == "candidates":
            value = [str(c) for c in value] if _is_sequence(value) else str(value)
        elif name == "model":
            value = _describe(value) if value is not None else None
        elif name == "context":
            value = value if value is None or isinstance(value, str) else _describe(value)
        elif name == "context_fields":
            if isinstance(value, Mapping):
                value = dict(value)
            elif _is_sequence(value):
                value = [str(v) for v in value]
        elif name == "backend_kwargs":
            value = _redact(value) if isinstance(value, Mapping) else value
        elif name == "cache_dir":
            value = None if value is None else str(value)
        out[name] = value
    return _sanitize(out)


def _describe(obj: Any) -> str:
    if isinstance(obj, str | os.PathLike):
        return os.fspath(obj)
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{getattr(obj, '__module__', '')}.{name}".lstrip(".")


def _redact(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        str(k): ("<redacted>" if any(w in str(k).lower() for w in _SECRET_WORDS) else v)
        for k, v in kwargs.items()
    }


def _sanitize(value: Any) -> Any:
    """Make a value writable to h5ad: dicts of str keys, lists, scalars, strings."""
    if isinstance(value, Mapping):
        return {str(k).replace("/", "_"): _sanitize(v) for k, v in value.items()}
    if (
        isinstance(value, str | bool | int | float | np.integer | np.floating | np.bool_)
        or value is None
    ):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple):
        items = [_sanitize(v) for v in value]
        if all(isinstance(v, str) for v in items) or all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in items
        ):
            return items
        return json.dumps(items, default=str)
    return str(value)


def _is_sequence(value: Any) -> bool:
    return not isinstance(value, str | bytes) and hasattr(value, "__iter__")


# --------------------------------------------------------------------------- validation


def _check_key(adata: AnnData, key: str, what: str, hint: str) -> None:
    if not isinstance(key, str):
        msg = f"`{what}` must be the name of an obs column (a string), got {type(key).__name__}."
        raise TypeError(msg)
    if key not in adata.obs.columns:
        msg = f"`obs[{key!r}]` not found; {hint}"
        raise KeyError(msg)


def _cluster_codes(adata: AnnData, groupby: str) -> tuple[list[str], np.ndarray]:
    """Cluster names (of clusters with cells) and each cell's code (-1: missing)."""
    import pandas as pd
    from pandas.api.types import (
        is_bool_dtype,
        is_float_dtype,
        is_integer_dtype,
        is_object_dtype,
        is_string_dtype,
    )

    _check_key(
        adata,
        groupby,
        "groupby",
        f"run `sc.tl.leiden` first or pass `groupby=` (obs columns: {list(adata.obs.columns)[:20]}).",
    )
    column = adata.obs[groupby]
    if isinstance(column.dtype, pd.CategoricalDtype):
        cat = column
    elif is_float_dtype(column.dtype):
        msg = (
            f"`obs[{groupby!r}]` holds floats ({column.dtype}), not clusters; pass a categorical "
            f"column (e.g. from `sc.tl.leiden`) or convert it with "
            f"`adata.obs[{groupby!r}] = adata.obs[{groupby!r}].astype('category')`."
        )
        raise TypeError(msg)
    elif (
        is_integer_dtype(column.dtype)
        or is_bool_dtype(column.dtype)
        or is_string_dtype(column.dtype)
        or is_object_dtype(column.dtype)
    ):
        values = column.dropna()
        if is_object_dtype(column.dtype) and not all(isinstance(v, str) for v in values):
            kinds = sorted({type(v).__name__ for v in values})
            msg = (
                f"`obs[{groupby!r}]` is an object column with values of types {kinds}; "
                "annotate needs a categorical column or one of strings or integers."
            )
            raise TypeError(msg)
        logger.info("annotate: obs[%r] (%s) is taken as categorical", groupby, column.dtype)
        cat = column.astype("category")
    else:
        msg = (
            f"`obs[{groupby!r}]` has dtype {column.dtype}; annotate needs a categorical column "
            "(or one of strings or integers) with the clusters."
        )
        raise TypeError(msg)
    cat = cat.cat.remove_unused_categories()
    names = [str(c) for c in cat.cat.categories]
    if not names:
        msg = f"`obs[{groupby!r}]` has no cluster with cells (all values are missing)."
        raise ValueError(msg)
    if len(set(names)) != len(names):
        msg = f"`obs[{groupby!r}]` has categories that are equal as strings: {names}; rename them."
        raise ValueError(msg)
    return names, cat.cat.codes.to_numpy().astype(np.int64)


def _check_candidates(candidates: Any) -> list[str]:
    if isinstance(candidates, str | bytes):
        msg = (
            f"`candidates` must be a list of cell type names, not one string ({candidates!r}); "
            "write candidates=[...]."
        )
        raise TypeError(msg)
    if candidates is None or not _is_sequence(candidates):
        msg = f"`candidates` must be a list of cell type names, got {type(candidates).__name__}."
        raise TypeError(msg)
    out = list(candidates)
    if not out:
        msg = "`candidates` is empty; give the cell types to choose from."
        raise ValueError(msg)
    bad = [c for c in out if not isinstance(c, str)]
    if bad:
        msg = f"`candidates` must be strings; got {bad[:5]!r}."
        raise TypeError(msg)
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
    lowered: dict[str, str] = {}
    for c in out:
        if c.lower() in lowered:
            msg = (
                f"Duplicate candidates {lowered[c.lower()]!r} and {c!r} (answers are matched "
                "case-insensitively); give each cell type once."
            )
            raise ValueError(msg)
        lowered[c.lower()] = c
    return out


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"`{name}` must be an integer, got {value!r}."
        raise TypeError(msg)
    if value < minimum:
        msg = f"`{name}`={value} must be at least {minimum}."
        raise ValueError(msg)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool | np.bool_):
        msg = f"`{name}` must be True or False, got {value!r}."
        raise TypeError(msg)


def _check_run_args(
    *,
    temperature: Any,
    max_new_tokens: Any,
    unique: Any,
    constrained: Any,
    copy: Any,
    batch_size: Any,
    backend_kwargs: Any,
    cache_dir: Any,
) -> None:
    from sc_cello1.inference._base import check_sampling

    check_sampling(n=1, temperature=temperature, max_new_tokens=max_new_tokens)
    for name, value in (("unique", unique), ("constrained", constrained), ("copy", copy)):
        _check_bool(name, value)
    if batch_size is not None:
        _check_int("batch_size", batch_size, 1)
    if cache_dir is not None:
        if not isinstance(cache_dir, str | os.PathLike):
            msg = f"`cache_dir` must be a folder path, got {type(cache_dir).__name__}."
            raise TypeError(msg)
        if os.path.isfile(os.path.expanduser(os.fspath(cache_dir))):
            msg = (
                f"cache_dir={os.fspath(cache_dir)!r} is a file; give a folder (created if needed)."
            )
            raise ValueError(msg)
    if backend_kwargs is not None and not isinstance(backend_kwargs, Mapping):
        msg = f"`backend_kwargs` must be a dict of keyword arguments, got {type(backend_kwargs).__name__}."
        raise TypeError(msg)


def _is_backend(model: Any) -> bool:
    return callable(getattr(model, "generate", None)) and callable(
        getattr(model, "provenance", None)
    )


def _check_model(model: Any, backend: Any, backend_kwargs: Mapping[str, Any] | None) -> Any:
    """Check the model and backend without loading anything; returns the model to use."""
    from sc_cello1 import settings
    from sc_cello1.inference._factory import check_backend_args

    if _is_backend(model):
        return model
    if model is None:
        model = settings.default_model
    if not isinstance(model, str | os.PathLike):
        msg = (
            f"`model` must be a model name, a path or a backend object (with `generate` and "
            f"`provenance`), got {type(model).__name__}."
        )
        raise TypeError(msg)
    name = check_backend_args(model, backend, **dict(backend_kwargs or {}))
    if name != "openai":
        from sc_cello1.models import check_model

        check_model(model)  # also rejects unknown registered names, without downloading
    return model


def _expression(
    adata: AnnData, *, layer: str | None, use_raw: bool | None, gene_symbols: str | None
) -> tuple[Any, list[str], str]:
    """Return the expression matrix to rank genes in, its gene symbols, and a description."""
    from sc_cello1._validate import check_nonnegative, expression_matrix, gene_names

    X, var_names, var = expression_matrix(adata, layer=layer, use_raw=use_raw)
    if use_raw:
        where = "adata.raw.X"
    elif layer is not None:
        where = f"adata.layers[{layer!r}]"
    else:
        where = "adata.X"
    check_nonnegative(X, what=where)
    genes = gene_names(var, var_names, gene_symbols)
    return X, [str(g) for g in genes], where


def _validate_data(
    adata: AnnData,
    groupby: str,
    *,
    candidates: Any,
    context: Any,
    context_fields: Any,
    donor_key: Any,
    layer: Any,
    use_raw: Any,
    gene_symbols: Any,
    n_genes: Any,
    n_samples: Any,
    max_cells_per_puzzle: Any,
    key_added: Any,
    seed: Any,
) -> dict[str, Any]:
    """Validate the data arguments (reads ``adata``, never writes; builds nothing)."""
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        msg = f"`adata` must be an AnnData, got {type(adata).__name__}."
        raise TypeError(msg)
    if adata.n_obs == 0:
        msg = "`adata` has no cells."
        raise ValueError(msg)
    clusters, codes = _cluster_codes(adata, groupby)
    candidate_list = _check_candidates(candidates)
    _check_int("n_genes", n_genes, 1)
    _check_int("n_samples", n_samples, 1)
    _check_int("max_cells_per_puzzle", max_cells_per_puzzle, 1)
    _check_int("seed", seed, 0)
    if not isinstance(key_added, str) or not key_added or "/" in key_added:
        msg = f"`key_added` must be a non-empty string without '/', got {key_added!r}."
        raise ValueError(msg)
    if donor_key is not None:
        _check_key(
            adata,
            donor_key,
            "donor_key",
            "pass the obs column that names each cell's donor, or donor_key=None.",
        )
        if adata.obs[donor_key].isna().any():
            msg = f"`obs[{donor_key!r}]` has missing values; every cell needs a donor (fill them or drop those cells)."
            raise ValueError(msg)
    if context is not None and not isinstance(context, str) and not callable(context):
        msg = f"`context` must be a string, a callable or None, got {type(context).__name__}."
        raise TypeError(msg)
    if isinstance(context, str) and (not context.strip() or "\n" in context):
        msg = "`context` must be one line of non-empty text (the donor sentence)."
        raise ValueError(msg)
    if isinstance(context_fields, str) or not (
        _is_sequence(context_fields) or isinstance(context_fields, Mapping)
    ):
        msg = "`context_fields` must be a list (or dict) of obs column names."
        raise TypeError(msg)
    missing_fields = [f for f in context_fields if f not in adata.obs.columns]
    if missing_fields:
        msg = f"`context_fields` {missing_fields} not found in obs; pass existing obs columns."
        raise KeyError(msg)

    X, genes, where = _expression(adata, layer=layer, use_raw=use_raw, gene_symbols=gene_symbols)
    if n_genes > len(genes):
        msg = f"n_genes={n_genes} is more than the {len(genes)} genes in {where}; lower `n_genes`."
        raise ValueError(msg)
    return {
        "clusters": clusters,
        "codes": codes,
        "candidates": candidate_list,
        "X": X,
        "genes": genes,
        "where": where,
    }


def _build_plan(
    adata: AnnData,
    data: Mapping[str, Any],
    *,
    context: Any,
    context_fields: Any,
    donor_key: str | None,
    n_genes: int,
    n_samples: int,
    max_cells_per_puzzle: int,
    seed: int,
) -> _Plan:
    """Draw the representative cells and build every puzzle (reads ``adata`` only)."""
    from sc_cello1.data import CONTEXT_FIELDS
    from sc_cello1.pp._top_genes import top_gene_indices

    clusters, codes, candidate_list = data["clusters"], data["codes"], data["candidates"]
    X, genes, where = data["X"], data["genes"], data["where"]
    n_cells = np.bincount(codes[codes >= 0], minlength=len(clusters))
    if donor_key is not None:
        donors = adata.obs[donor_key].astype("category")
        group_names = [str(d) for d in donors.cat.categories]
        group_codes = donors.cat.codes.to_numpy().astype(np.int64)
    else:
        group_names = [""]
        group_codes = np.zeros(adata.n_obs, dtype=np.int64)

    rng = np.random.default_rng(seed)
    reps = representative_cells(X, codes, group_codes, n_samples=n_samples, rng=rng)
    max_cells = min(max_cells_per_puzzle, len(candidate_list))
    slots = puzzle_slots(
        reps, n_groups=len(group_names), n_samples=n_samples, max_cells=max_cells, rng=rng
    )
    rows = np.array(sorted({r for slot in slots for r in slot.rows}), dtype=np.int64)
    top = top_gene_indices(X, n_genes, rows=rows)
    top_genes = {int(r): [genes[j] for j in top[i]] for i, r in enumerate(rows)}

    has_cellxgene = any(f in adata.obs.columns for f in CONTEXT_FIELDS)
    if isinstance(context, str):
        context_source = "context="
    elif context is not None:
        context_source = f"context={_describe(context)}"
    elif has_cellxgene or context_fields:
        context_source = "obs CELLxGENE columns"
    else:
        context_source = "fallback sentence"
        logger.info(
            "annotate: no CELLxGENE columns in obs and no `context=`; using a generic sentence"
        )
    puzzles = build_cluster_puzzles(
        slots,
        top_genes=top_genes,
        candidates=candidate_list,
        obs=adata.obs,
        cluster_names=clusters,
        group_names=group_names,
        context=context,
        context_fields=context_fields,
        has_cellxgene=has_cellxgene,
    )
    return _Plan(
        clusters=clusters,
        cluster_codes=codes,
        n_cells=n_cells,
        candidates=candidate_list,
        slots=slots,
        puzzles=puzzles,
        expression=where,
        context_source=context_source,
        extra={"group_names": group_names},
    )


# --------------------------------------------------------------------------- running


def _load_backend(model: Any, backend: str, backend_kwargs: Mapping[str, Any] | None) -> Any:
    if _is_backend(model):
        return model
    from sc_cello1.inference import get_backend

    return get_backend(model, backend, **dict(backend_kwargs or {}))


def _solve(
    puzzles: list[Puzzle], runner: Any, *, batch_size: int | None, **kwargs: Any
) -> list[dict]:
    from sc_cello1.tl._solve import solve

    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    return solve(puzzles, model=runner, style="eval", repair=True, **kwargs)


def _labels_of(
    record: Mapping[str, Any], n_cells: int, index: Mapping[str, int]
) -> list[int | None]:
    """Candidate index of each cell's answer (``None``: the answer named none).

    The repaired answer (one candidate per cell) is used for the cells the raw answer
    gave an item for; cells past the end of a short raw answer cast no vote, since
    repair only fills them with the candidates left over.
    """
    raw = list(record.get("items") or [])
    repaired = list(record.get("repaired") or [])
    lowered = {k.lower(): v for k, v in index.items()}
    out: list[int | None] = []
    for i in range(n_cells):
        if i >= len(raw):
            out.append(None)
            continue
        item = repaired[i] if i < len(repaired) and repaired[i] is not None else raw[i]
        out.append(lowered.get(str(item).strip().lower()))
    return out


def _collect(plan: _Plan, records: Sequence[Mapping[str, Any]], *, unique: bool) -> dict[str, Any]:
    """Votes, labels and the tables for ``uns`` from the solved puzzles."""
    import pandas as pd

    index = {c: i for i, c in enumerate(plan.candidates)}
    cluster_index = {c: i for i, c in enumerate(plan.clusters)}
    by_puzzle: dict[int, Mapping[str, Any]] = {}
    for rec in records:
        by_puzzle.setdefault(int(rec["puzzle"]), rec)
    votes: list[tuple[int, int | None]] = []
    n_valid = np.zeros(len(plan.clusters), dtype=np.int64)
    reasoning_rows = []
    puzzle_rows = []
    for i, puzzle in enumerate(plan.puzzles):
        rec = by_puzzle.get(i, {})
        cluster_ids = [cluster_index[c] for c in puzzle.meta["clusters"]]
        labels = _labels_of(rec, puzzle.n_cells, index)
        valid = bool(rec.get("valid_format", False))
        reasoning = rec.get("reasoning") or ""
        for pos, (cluster, label) in enumerate(zip(cluster_ids, labels, strict=True)):
            votes.append((cluster, label))
            n_valid[cluster] += valid
            reasoning_rows.append(
                {
                    "cluster": plan.clusters[cluster],
                    "sample": puzzle.meta["sample"],
                    "donor": puzzle.group,
                    "puzzle": i,
                    "cell": pos + 1,
                    "cell_id": puzzle.cell_ids[pos],
                    "answer": "" if label is None else plan.candidates[label],
                    "reasoning": str(reasoning),
                }
            )
        repaired = rec.get("repaired") or []
        puzzle_rows.append(
            {
                "sample": puzzle.meta["sample"],
                "donor": puzzle.group,
                "part": puzzle.meta["part"],
                "n_cells": puzzle.n_cells,
                "clusters": json.dumps(puzzle.meta["clusters"]),
                "cell_ids": json.dumps(puzzle.cell_ids),
                "user_msg": puzzle.user_msg,
                "text": str(rec.get("text") or ""),
                "answer": str(rec.get("answer") or ""),
                "repaired": " | ".join("" if r is None else str(r) for r in repaired),
                "valid_format": valid,
                "is_permutation": bool(rec.get("is_permutation", False)),
                "finish_reason": str(rec.get("finish_reason") or ""),
            }
        )
    table, asked = vote_table(
        votes, n_clusters=len(plan.clusters), n_candidates=len(plan.candidates)
    )
    result = assign_labels(table, asked, unique=unique)
    if result.method == "argmax" and unique:
        logger.info(
            "annotate: %d clusters but %d candidates; labels are the most voted type per cluster and may repeat",
            len(plan.clusters),
            len(plan.candidates),
        )

    used = [c for i, c in enumerate(plan.candidates) if i in set(result.labels.tolist())]
    cluster_labels = pd.Categorical(
        [plan.candidates[j] if j >= 0 else None for j in result.labels], categories=used
    )
    cluster_table = pd.DataFrame(
        {
            "label": cluster_labels,
            "confidence": result.confidence,
            "votes": result.votes.astype(np.int64),
            "n_asked": asked,
            "n_valid": n_valid,
            "n_cells": plan.n_cells.astype(np.int64),
        },
        index=pd.Index(plan.clusters, name="cluster"),
    )
    # long form: candidate names (e.g. "CD4+/CD25 T Reg") must not become h5 keys
    vote_df = pd.DataFrame(
        {
            "cluster": np.repeat(plan.clusters, len(plan.candidates)),
            "candidate": np.tile(plan.candidates, len(plan.clusters)),
            "votes": table.ravel().astype(np.int64),
        }
    )
    codes = plan.cluster_codes
    cell_label_codes = np.where(
        codes >= 0, np.asarray(cluster_labels.codes)[np.maximum(codes, 0)], -1
    )
    obs_labels = pd.Categorical.from_codes(cell_label_codes, categories=used)
    obs_conf = np.where(codes >= 0, result.confidence[np.maximum(codes, 0)], np.nan)
    reasoning_df = pd.DataFrame(
        reasoning_rows,
        columns=["cluster", "sample", "donor", "puzzle", "cell", "cell_id", "answer", "reasoning"],
    )
    puzzles_df = pd.DataFrame(puzzle_rows)
    puzzles_df.index = pd.Index([str(i) for i in range(len(puzzle_rows))], name="puzzle")
    return {
        "obs_labels": obs_labels,
        "obs_confidence": obs_conf.astype(np.float64),
        "clusters": cluster_table,
        "votes": vote_df,
        "reasoning": reasoning_df,
        "puzzles": puzzles_df,
        "method": result.method,
    }


def _write(
    adata: AnnData, key_added: str, labels: Any, confidence: np.ndarray, uns: dict[str, Any]
) -> None:
    """Write the results into ``adata`` (the only step that changes it)."""
    obs = adata.obs.copy()
    obs[key_added] = labels
    obs[f"{key_added}_confidence"] = confidence
    if adata.is_view:
        adata._init_as_actual(adata.copy())
    adata.obs = obs
    adata.uns[key_added] = uns

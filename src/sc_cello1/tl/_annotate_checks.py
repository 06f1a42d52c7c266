"""Stage 1 of ``tl.annotate``: every argument checked before anything is built or loaded.

Nothing here writes to the AnnData.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._answer import normalize_label
from sc_cello1._logging import logger
from sc_cello1._validate import check_bool, check_int, check_obs_key, is_sequence

if TYPE_CHECKING:
    from anndata import AnnData

#: A non-categorical ``groupby`` column with more distinct values than this is rejected:
#: it is far more likely a per-cell number (``n_genes``) or ID than a clustering.
MAX_IMPLICIT_CLUSTERS = 100

#: Below this many samples per cluster the confidence can only take a few values.
MIN_SAMPLES_FOR_CONFIDENCE = 3


@dataclass
class Checked:
    """What the checks read from ``adata`` (nothing is copied but the cluster codes)."""

    clusters: list[str]
    codes: np.ndarray
    candidates: list[str] | None
    X: Any
    genes: list[str]
    where: str
    rep: Any
    rep_name: str


def cluster_codes(adata: AnnData, groupby: Any) -> tuple[list[str], np.ndarray]:
    """Cluster names (of clusters with cells) and each cell's code (-1: missing)."""
    import pandas as pd
    from pandas.api.types import (
        is_bool_dtype,
        is_float_dtype,
        is_integer_dtype,
        is_object_dtype,
        is_string_dtype,
    )

    check_obs_key(
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
        n_values = values.nunique()
        if n_values > MAX_IMPLICIT_CLUSTERS:
            msg = (
                f"`obs[{groupby!r}]` ({column.dtype}) has {n_values} distinct values, which looks "
                f"like a per-cell value rather than clusters (a non-categorical column may have "
                f"at most {MAX_IMPLICIT_CLUSTERS}). Pass the clustering (e.g. `groupby='leiden'`), "
                f"or, if these really are clusters, make the column categorical: "
                f"`adata.obs[{groupby!r}] = adata.obs[{groupby!r}].astype('category')`."
            )
            raise ValueError(msg)
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


def check_candidates(candidates: Any) -> list[str] | None:
    """Validate the candidate list (``None``: propose candidates first)."""
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
    return out


def representation(adata: AnnData, use_rep: Any, X: Any, where: str) -> tuple[Any, str]:
    """Return the matrix in which representative cells are chosen, and its description.

    ``None``: ``obsm['X_pca']`` when present, else the expression matrix.
    """
    if use_rep is None:
        if "X_pca" in adata.obsm:
            use_rep = "X_pca"
        else:
            logger.info(
                "annotate: no obsm['X_pca'] and no `use_rep`; representative cells are chosen "
                "in %s, where library size can dominate distances (run `sc.pp.pca` or pass "
                "`use_rep=`)",
                where,
            )
            return X, where
    if not isinstance(use_rep, str):
        msg = f"`use_rep` must be the name of an obsm entry (e.g. 'X_pca'), got {type(use_rep).__name__}."
        raise TypeError(msg)
    if use_rep == "X":
        return X, where
    if use_rep not in adata.obsm:
        msg = (
            f"`obsm[{use_rep!r}]` not found (obsm has {list(adata.obsm.keys())}); run "
            "`sc.pp.pca` (for 'X_pca') or pass an existing key, or use_rep='X'."
        )
        raise KeyError(msg)
    rep = adata.obsm[use_rep]
    if hasattr(rep, "to_numpy"):
        rep = rep.to_numpy()
    rep = np.asarray(rep)
    if rep.ndim != 2 or not np.issubdtype(rep.dtype, np.number):
        msg = f"`obsm[{use_rep!r}]` must be a numeric cells x dimensions matrix, got {rep.dtype} with shape {rep.shape}."
        raise ValueError(msg)
    if not np.isfinite(rep).all():
        msg = f"`obsm[{use_rep!r}]` has NaN or infinite values; recompute it or choose another `use_rep`."
        raise ValueError(msg)
    return rep, f"obsm[{use_rep!r}]"


def expression(
    adata: AnnData, *, layer: Any, use_raw: Any, gene_symbols: Any
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
    genes = [str(g) for g in gene_names(var, var_names, gene_symbols)]
    if len(set(genes)) != len(genes):
        dups = sorted({g for g in genes if genes.count(g) > 1})[:5] if len(genes) < 50_000 else []
        logger.warning(
            "annotate: gene names in %s are not unique (e.g. %s); a prompt may list one name "
            "twice. Call `adata.var_names_make_unique()` (or choose `gene_symbols=`) to tell them apart.",
            where,
            dups,
        )
    return X, genes, where


def check_data(
    adata: Any,
    groupby: Any,
    *,
    candidates: Any,
    context: Any,
    context_fields: Any,
    donor_key: Any,
    layer: Any,
    use_raw: Any,
    gene_symbols: Any,
    use_rep: Any,
    n_genes: Any,
    n_samples: Any,
    max_cells_per_puzzle: Any,
    key_added: Any,
    seed: Any,
) -> Checked:
    """Validate the data arguments (reads ``adata``, never writes; builds nothing)."""
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        msg = f"`adata` must be an AnnData, got {type(adata).__name__}."
        raise TypeError(msg)
    if adata.n_obs == 0:
        msg = "`adata` has no cells."
        raise ValueError(msg)
    clusters, codes = cluster_codes(adata, groupby)
    candidate_list = check_candidates(candidates)
    check_int("n_genes", n_genes, 1)
    check_int("n_samples", n_samples, 1)
    check_int("max_cells_per_puzzle", max_cells_per_puzzle, 1)
    check_int("seed", seed, 0)
    if not isinstance(key_added, str) or not key_added or "/" in key_added:
        msg = f"`key_added` must be a non-empty string without '/', got {key_added!r}."
        raise ValueError(msg)
    if donor_key is not None:
        check_obs_key(
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
        is_sequence(context_fields) or isinstance(context_fields, Mapping)
    ):
        msg = "`context_fields` must be a list (or dict) of obs column names."
        raise TypeError(msg)
    missing_fields = [f for f in context_fields if f not in adata.obs.columns]
    if missing_fields:
        msg = f"`context_fields` {missing_fields} not found in obs; pass existing obs columns."
        raise KeyError(msg)

    X, genes, where = expression(adata, layer=layer, use_raw=use_raw, gene_symbols=gene_symbols)
    if n_genes > len(genes):
        msg = f"n_genes={n_genes} is more than the {len(genes)} genes in {where}; lower `n_genes`."
        raise ValueError(msg)
    rep, rep_name = representation(adata, use_rep, X, where)
    if n_samples < MIN_SAMPLES_FOR_CONFIDENCE:
        logger.warning(
            "annotate: n_samples=%d (the minimum of cells asked per cluster); a decided "
            "cluster's confidence can only be one of "
            "%s, so it says little about how sure the model is. Use n_samples>=%d (default 5) "
            "for a confidence that means something.",
            n_samples,
            [round(k / n_samples, 2) for k in range(n_samples + 1)],
            MIN_SAMPLES_FOR_CONFIDENCE,
        )
    if key_added in adata.obs.columns or key_added in adata.uns:
        logger.warning(
            "annotate: obs[%r]/uns[%r] exist and will be overwritten; pass `key_added=` to keep them",
            key_added,
            key_added,
        )
    return Checked(
        clusters=clusters,
        codes=codes,
        candidates=candidate_list,
        X=X,
        genes=genes,
        where=where,
        rep=rep,
        rep_name=rep_name,
    )


def check_run_args(
    *,
    temperature: Any,
    max_new_tokens: Any,
    one_to_one: Any,
    constrained: Any,
    copy: Any,
    batch_size: Any,
    backend_kwargs: Any,
    cache_dir: Any,
) -> None:
    """Validate the arguments that concern the model run."""
    from sc_cello1.inference._base import check_sampling

    check_sampling(n=1, temperature=temperature, max_new_tokens=max_new_tokens)
    for name, value in (("one_to_one", one_to_one), ("constrained", constrained), ("copy", copy)):
        check_bool(name, value)
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
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


def is_backend(model: Any) -> bool:
    """Whether ``model`` is an already built backend (``generate`` and ``provenance``)."""
    return callable(getattr(model, "generate", None)) and callable(
        getattr(model, "provenance", None)
    )


def check_model(model: Any, backend: Any, backend_kwargs: Mapping[str, Any] | None) -> Any:
    """Check the model and backend without loading anything; returns the model to use."""
    from sc_cello1._settings import settings
    from sc_cello1.inference._factory import check_backend_args

    if is_backend(model):
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
        from sc_cello1.models import check_model as check_local_model

        check_local_model(model)  # also rejects unknown registered names, without downloading
    return model

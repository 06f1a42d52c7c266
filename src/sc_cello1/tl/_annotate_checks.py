"""Stage 1 of ``tl.annotate``: every argument checked before anything is built or loaded.

Nothing here writes to the AnnData.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._logging import logger
from sc_cello1._validate import check_bool, check_obs_key

from ._annotate_config import MANY_CANDIDATES, MAX_CANDIDATES, check_candidates

__all__ = [
    "MANY_CANDIDATES",
    "MAX_CANDIDATES",
    "Checked",
    "check_candidates",
    "check_data",
    "check_target",
    "cluster_codes",
    "expression",
    "representation",
]

if TYPE_CHECKING:
    from anndata import AnnData

    from ._annotate_config import AnnotateConfig

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


def check_target(
    adata: AnnData, groupby: str, key_added: str, *, copy: bool, overwrite: Any
) -> None:
    """Refuse a result that would replace ``groupby`` or another result, or a backed copy.

    A previous annotation (``uns[key_added]['params']`` written by annotate) is replaced
    with a warning; any other existing column or ``uns`` entry only with ``overwrite=True``.
    """
    check_bool("overwrite", overwrite)
    if copy and getattr(adata, "isbacked", False):
        msg = (
            "`adata` is backed (read with backed='r'), so copy=True cannot copy it into memory "
            "at the end of the run. Pass copy=False (the results go into adata.obs and "
            "adata.uns), or load it first with `adata = adata.to_memory()`."
        )
        raise ValueError(msg)
    columns = [key_added, f"{key_added}_confidence", f"{key_added}_ontology_term_id"]
    if groupby in columns:
        msg = (
            f"key_added={key_added!r} would write obs[{groupby!r}], the clusters being "
            f"annotated (groupby); pass another key_added=, e.g. key_added='{groupby}_cello1'."
        )
        raise ValueError(msg)
    previous = adata.uns.get(key_added)
    ours = isinstance(previous, Mapping) and isinstance(previous.get("params"), Mapping)
    ours = ours and "prompt_version" in previous["params"]
    taken = [f"obs[{c!r}]" for c in columns if c in adata.obs.columns]
    if key_added in adata.uns:
        taken.append(f"uns[{key_added!r}]")
    if not taken:
        return
    if overwrite or ours:
        logger.warning(
            "annotate: %s exist and will be overwritten%s",
            ", ".join(taken),
            "" if overwrite else " (a previous annotation); pass another `key_added=` to keep them",
        )
        return
    msg = (
        f"key_added={key_added!r} would overwrite {', '.join(taken)}, which annotate did not "
        "write; pass another key_added=, or overwrite=True to replace them."
    )
    raise ValueError(msg)


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
    from sc_cello1._validate import (
        check_names_are_genes,
        check_nonnegative,
        expression_matrix,
        gene_names,
    )

    X, var_names, var = expression_matrix(adata, layer=layer, use_raw=use_raw)
    if use_raw:
        where = "adata.raw.X"
    elif layer is not None:
        where = f"adata.layers[{layer!r}]"
    else:
        where = "adata.X"
    check_nonnegative(X, what=where)
    genes = [str(g) for g in gene_names(var, var_names, gene_symbols)]
    check_names_are_genes(genes, gene_symbols=gene_symbols)
    if len(set(genes)) != len(genes):
        dups = sorted({g for g in genes if genes.count(g) > 1})[:5] if len(genes) < 50_000 else []
        logger.warning(
            "annotate: gene names in %s are not unique (e.g. %s); a prompt may list one name "
            "twice. Call `adata.var_names_make_unique()` (or choose `gene_symbols=`) to tell them apart.",
            where,
            dups,
        )
    return X, genes, where


def check_data(adata: Any, config: AnnotateConfig) -> Checked:
    """Validate the settings against the data (reads ``adata``, never writes; builds nothing).

    What the settings are alone (types, ranges, choices) was checked when ``config`` was
    built; this checks what needs ``adata``: the columns, the genes, the representation.
    """
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        msg = f"`adata` must be an AnnData, got {type(adata).__name__}."
        raise TypeError(msg)
    if adata.n_obs == 0:
        msg = "`adata` has no cells."
        raise ValueError(msg)
    clusters, codes = cluster_codes(adata, config.groupby)
    candidate_list = check_candidates(config.candidates)
    donor_key, n_genes, n_samples = config.donor_key, config.n_genes, config.n_samples
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
    missing_fields = [f for f in config.context_fields if f not in adata.obs.columns]
    if missing_fields:
        msg = f"`context_fields` {missing_fields} not found in obs; pass existing obs columns."
        raise KeyError(msg)

    X, genes, where = expression(
        adata, layer=config.layer, use_raw=config.use_raw, gene_symbols=config.gene_symbols
    )
    if n_genes > len(genes):
        msg = f"n_genes={n_genes} is more than the {len(genes)} genes in {where}; lower `n_genes`."
        raise ValueError(msg)
    rep, rep_name = representation(adata, config.use_rep, X, where)
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

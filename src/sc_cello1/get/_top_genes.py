"""Gene names of the per-cell top genes stored by :func:`sc_cello1.pp.top_genes`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._validate import gene_names

if TYPE_CHECKING:
    from anndata import AnnData


def top_genes(adata: AnnData, key: str = "top_genes") -> pd.DataFrame:
    """Table of each cell's top expressed genes, by name, highest first.

    Parameters
    ----------
    adata
        Annotated data matrix on which :func:`sc_cello1.pp.top_genes` was run.
    key
        The ``key_added`` used there.

    Returns
    -------
    :class:`pandas.DataFrame` with one row per cell (index ``adata.obs_names``) and
    columns ``1 .. n_genes`` (the rank, named ``"rank"``), holding gene names: from
    ``var[gene_symbols]`` when :func:`~sc_cello1.pp.top_genes` was given
    ``gene_symbols=``, else ``var_names`` (``raw`` ones when it used ``use_raw=True``),
    with any ``_ENSG...`` suffix cut.

    Raises
    ------
    KeyError
        If ``adata.obsm[key]`` is missing (run :func:`sc_cello1.pp.top_genes` first), or
        ``use_raw`` was used but ``adata.raw`` is gone.
    ValueError
        If the genes changed since (a different number of genes than recorded).

    Examples
    --------
    >>> import scanpy as sc
    >>> import sc_cello1 as cello1
    >>> adata = sc.datasets.pbmc68k_reduced()
    >>> cello1.pp.top_genes(adata, n_genes=5, use_raw=True)
    >>> cello1.get.top_genes(adata).shape
    (700, 5)
    """
    if key not in adata.obsm:
        msg = (
            f"adata.obsm[{key!r}] not found; run cello1.pp.top_genes(adata, key_added={key!r}) "
            "first, or pass key= the key_added you used."
        )
        raise KeyError(msg)
    positions = np.asarray(adata.obsm[key])
    params = (
        adata.uns.get(key, {}).get("params", {}) if isinstance(adata.uns.get(key), dict) else {}
    )
    use_raw = bool(params.get("use_raw", False))
    gene_symbols = params.get("gene_symbols") or None
    if use_raw:
        if adata.raw is None:
            msg = (
                f"adata.obsm[{key!r}] holds positions into adata.raw.var_names (use_raw=True), "
                "but adata.raw is not set; rerun cello1.pp.top_genes on this AnnData."
            )
            raise KeyError(msg)
        var, var_names = adata.raw.var, adata.raw.var_names
    else:
        var, var_names = adata.var, adata.var_names
    expected = params.get("n_vars")
    if expected is not None and int(expected) != len(var_names):
        msg = (
            f"adata.obsm[{key!r}] was computed on {int(expected)} genes but the AnnData now has "
            f"{len(var_names)}; the genes changed since, so rerun cello1.pp.top_genes."
        )
        raise ValueError(msg)
    names = gene_names(var, var_names, gene_symbols)
    columns = pd.RangeIndex(1, positions.shape[1] + 1, name="rank")
    return pd.DataFrame(
        names[positions], index=adata.obs_names.copy(), columns=columns, dtype=object
    )

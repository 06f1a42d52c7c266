from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import sc_cello1 as cello1


def test_get_top_genes_names_from_raw(pbmc68k):
    cello1.pp.top_genes(pbmc68k, n_genes=10, use_raw=True)
    df = cello1.get.top_genes(pbmc68k)
    assert df.shape == (pbmc68k.n_obs, 10)
    assert list(df.columns) == list(range(1, 11))
    assert df.columns.name == "rank"
    assert df.index.equals(pbmc68k.obs_names)
    # first cell: names of its highest raw values, highest first
    row = pbmc68k.raw.X[0].toarray().ravel()
    expected = pbmc68k.raw.var_names[np.argsort(-row, kind="stable")[:10]].tolist()
    assert df.iloc[0].tolist() == expected
    # raw has the same 765 genes, but names must come from raw even if X's genes differ
    assert set(df.to_numpy().ravel()) <= set(pbmc68k.raw.var_names)


def test_get_top_genes_gene_symbols_cut_ensembl_suffix():
    X = sparse.csr_matrix(np.array([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]], dtype=np.float32))
    var = pd.DataFrame(
        {"feature_name": ["ACTB_ENSG00000075624", "CD3E", "MS4A1_ENSG00000156738"]},
        index=["ENSG00000075624", "ENSG00000198851", "ENSG00000156738"],
    )
    adata = ad.AnnData(X, var=var, obs=pd.DataFrame(index=["c1", "c2"]))
    cello1.pp.top_genes(adata, n_genes=3, gene_symbols="feature_name", key_added="tg")
    df = cello1.get.top_genes(adata, key="tg")
    assert df.loc["c1"].tolist() == ["CD3E", "MS4A1", "ACTB"]
    # fewer nonzero genes than n_genes: zero-valued genes follow in gene order
    assert df.loc["c2"].tolist() == ["ACTB", "CD3E", "MS4A1"]
    cello1.pp.top_genes(adata, n_genes=2)
    assert cello1.get.top_genes(adata).loc["c1"].tolist() == ["ENSG00000198851", "ENSG00000156738"]


def test_get_top_genes_bad_input(pbmc68k):
    with pytest.raises(KeyError, match=r"pp\.top_genes"):
        cello1.get.top_genes(pbmc68k)
    cello1.pp.top_genes(pbmc68k, n_genes=5, use_raw=True, key_added="tg")
    with pytest.raises(KeyError, match=r"obsm\['other'\] not found"):
        cello1.get.top_genes(pbmc68k, key="other")
    no_raw = pbmc68k.copy()
    del no_raw.raw
    with pytest.raises(KeyError, match=r"adata\.raw is not set"):
        cello1.get.top_genes(no_raw, key="tg")
    fewer = pbmc68k[:, :100].copy()
    fewer.raw = fewer
    with pytest.raises(ValueError, match="genes changed"):
        cello1.get.top_genes(fewer, key="tg")

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from sc_cello1._validate import check_nonnegative, expression_matrix, gene_names


def test_expression_matrix_picks_x_layer_or_raw(pbmc68k):
    X, names, var = expression_matrix(pbmc68k)
    assert X is pbmc68k.X and names.equals(pbmc68k.var_names) and var is pbmc68k.var
    X, names, _ = expression_matrix(pbmc68k, use_raw=True)
    assert X.shape == pbmc68k.raw.shape and names.equals(pbmc68k.raw.var_names)
    pbmc68k.layers["counts"] = np.abs(pbmc68k.X)
    X, _, _ = expression_matrix(pbmc68k, layer="counts", use_raw=False)
    assert X is pbmc68k.layers["counts"]


def test_expression_matrix_backed(shared_data):
    backed = ad.read_h5ad(shared_data / "pbmc3k_clustifyr_9types.h5ad", backed="r")
    X, _, _ = expression_matrix(backed)
    assert X.shape == (2638, 13714) and not sparse.issparse(X)  # a backed dataset, not loaded
    check_nonnegative(X)
    check_nonnegative(expression_matrix(backed, layer="counts")[0])
    backed.file.close()


def test_expression_matrix_bad_input(pbmc68k):
    with pytest.raises(KeyError, match=r"layer 'counts' not found in adata.layers"):
        expression_matrix(pbmc68k, layer="counts")
    with pytest.raises(ValueError, match="pass only one"):
        expression_matrix(pbmc68k, layer="counts", use_raw=True)
    with pytest.raises(TypeError, match="use_raw"):
        expression_matrix(pbmc68k, use_raw="yes")
    with pytest.raises(KeyError, match=r"adata\.raw is not set"):
        expression_matrix(ad.AnnData(np.ones((2, 2))), use_raw=True)
    with pytest.raises(KeyError, match=r"adata\.X is None"):
        expression_matrix(ad.AnnData(obs=pd.DataFrame(index=["a"]), var=pd.DataFrame(index=["g"])))


def test_gene_names():
    var = pd.DataFrame(
        {"feature_name": ["ACTB_ENSG00000075624", "CD3E", "A_B_ENSG1_ENSG2"]},
        index=["ENSG00000075624", "ENSG00000198851", "X"],
    )
    assert gene_names(var, var.index, "feature_name").tolist() == ["ACTB", "CD3E", "A_B"]
    assert gene_names(var, var.index).tolist() == ["ENSG00000075624", "ENSG00000198851", "X"]
    with pytest.raises(KeyError, match=r"var\['symbol'\] not found .*'feature_name'"):
        gene_names(var, var.index, "symbol")
    var.loc["X", "feature_name"] = None
    with pytest.raises(ValueError, match="missing values"):
        gene_names(var, var.index, "feature_name")


def test_check_nonnegative(pbmc68k, tmp_path):
    check_nonnegative(pbmc68k.raw.X)
    check_nonnegative(np.arange(6).reshape(2, 3))
    with pytest.raises(ValueError, match=r"adata.X has negative values.*use_raw=True"):
        check_nonnegative(pbmc68k.X, what="adata.X")
    neg = sparse.csr_matrix(np.array([[0.0, -1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match=r"negative values.*layer="):
        check_nonnegative(neg)
    with pytest.raises(ValueError, match="NaN"):
        check_nonnegative(np.array([[np.nan, 1.0]]))
    for X in (neg, neg.toarray()):
        path = tmp_path / f"neg_{sparse.issparse(X)}.h5ad"
        ad.AnnData(X).write_h5ad(path)
        backed = ad.read_h5ad(path, backed="r")
        with pytest.raises(ValueError, match="negative"):
            check_nonnegative(backed.X)
        backed.file.close()


def test_warn_duplicate_gene_names(caplog):
    import logging

    from sc_cello1._validate import warn_duplicate_gene_names

    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        assert warn_duplicate_gene_names(np.array(["A", "B", "C"]), source="adata.var_names") == 0
        assert caplog.records == []
        n = warn_duplicate_gene_names(np.array(["A", "B", "A"]), source="adata.var_names")
    assert n == 1
    assert "adata.var_names_make_unique()" in caplog.records[0].getMessage()

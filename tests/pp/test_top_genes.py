"""Tests of sc_cello1.pp.top_genes and its kernel top_gene_indices.

Parity: the authors' per-cell code (data/build_context.py of ncbi-nlp/cell-o1) is written
below as ``authors_get_top_genes``. The public snapshot of that file (read from the fork
PraMamba/cell-o1) omits its helper functions, so this is the reconstruction of its
``get_top_genes``: read the row of ``adata.X``, ``np.argsort`` it, reverse, keep the
first 50, name them by ``var['feature_name']`` cut at ``_ENSG``. It sorts each full row
with numpy's default (unstable) argsort, so among equal values its order is that of the
sorting algorithm, not defined by the data. sc-cello1 orders equal values by gene
position, lower first. The parity tests therefore check, against the authors' copy,
that the value at every rank is identical and that the gene is identical at every rank
whose value is unique in the row; and against a stable reference (numpy's stable
argsort of the negated row, which is the documented tie rule) that every position is
identical.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import sc_cello1 as cello1
from sc_cello1.pp._top_genes import top_gene_indices


# --- the authors' code (faithful copy, for parity only) ------------------------------
def authors_get_top_genes(adata, cell_idx, top_k=50):
    """build_context.py: top expressed genes of one cell, by sorting its full row."""
    expr = adata.X[cell_idx]
    if hasattr(expr, "toarray"):
        expr = expr.toarray().flatten()
    top_idx = np.argsort(expr)[::-1][:top_k]
    genes = adata.var["feature_name"].values[top_idx]
    return [g.split("_ENSG")[0] for g in genes], top_idx


def authors_loop(adata, top_k=50):
    """Their per-cell loop over every cell (positions and names)."""
    positions, names = [], []
    for i in range(adata.n_obs):
        g, idx = authors_get_top_genes(adata, i, top_k)
        positions.append(idx)
        names.append(g)
    return np.asarray(positions), names


def stable_reference(X, n):
    """Documented rule: value descending, then gene position ascending."""
    X = X.toarray() if sparse.issparse(X) else np.asarray(X)
    return np.stack([np.argsort(-row, kind="stable")[:n] for row in X])


# --- real data ------------------------------------------------------------------------
def _real(name, shared_data):
    if name == "pbmc68k_raw":
        import scanpy as sc

        adata = sc.datasets.pbmc68k_reduced()
        X = adata.raw.X
        var = adata.raw.var.copy()
        var["feature_name"] = adata.raw.var_names
    elif name == "pbmc3k_counts":
        full = ad.read_h5ad(shared_data / "pbmc3k_clustifyr_9types.h5ad")
        X, var = full.layers["counts"], full.var
    else:
        full = ad.read_h5ad(shared_data / "lymphnode_ref_spacexr_11types.h5ad")
        X, var = full.X, full.var
    X = sparse.csr_matrix(X, dtype=np.float32)
    return ad.AnnData(
        X=X, var=pd.DataFrame({"feature_name": np.asarray(var["feature_name"])}, index=var.index)
    )


def _unique_value_mask(dense, positions):
    """True where the value at that rank occurs once in the row (no tie to resolve)."""
    mask = np.empty(positions.shape, dtype=bool)
    for i in range(dense.shape[0]):
        row = np.sort(dense[i])
        v = dense[i, positions[i]]
        mask[i] = np.searchsorted(row, v, side="right") - np.searchsorted(row, v, side="left") == 1
    return mask


@pytest.fixture(scope="module")
def real_cases(shared_data):
    cases = {}
    for name in ("pbmc68k_raw", "pbmc3k_counts", "lymphnode_counts"):
        adata = _real(name, shared_data)
        if name == "pbmc3k_counts":
            adata = adata[:1000].copy()  # all 13,714 genes; fewer cells keep the test fast
        dense = adata.X.toarray()
        auth_pos, auth_names = authors_loop(adata, 50)
        cases[name] = {
            "adata": adata,
            "dense": dense,
            "authors_pos": auth_pos,
            "authors_names": np.asarray(auth_names, dtype=object),
            "unique": _unique_value_mask(dense, auth_pos),
            "stable": stable_reference(dense, 50),
        }
    return cases


@pytest.fixture(scope="module")
def backed_files(real_cases, tmp_path_factory):
    root = tmp_path_factory.mktemp("backed")
    paths = {}
    for name, case in real_cases.items():
        adata = case["adata"]
        for fmt in ("csr", "csc", "dense"):
            X = {"csr": adata.X, "csc": adata.X.tocsc(), "dense": case["dense"]}[fmt]
            path = root / f"{name}_{fmt}.h5ad"
            ad.AnnData(X=X, var=adata.var).write_h5ad(path)
            paths[name, fmt] = path
    return paths


def _matrix(case, fmt, backed_files, name):
    if fmt == "dense":
        return case["dense"], None
    if fmt == "csr":
        return case["adata"].X, None
    if fmt == "csc":
        return case["adata"].X.tocsc(), None
    backed = ad.read_h5ad(backed_files[name, fmt.removeprefix("backed_")], backed="r")
    return backed.X, backed


FORMATS = ["dense", "csr", "csc", "backed_csr", "backed_csc", "backed_dense"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["pbmc68k_raw", "pbmc3k_counts", "lymphnode_counts"])
def test_top_genes_match_authors_on_real_data(real_cases, backed_files, name, fmt):
    case = real_cases[name]
    X, backed = _matrix(case, fmt, backed_files, name)
    ours = top_gene_indices(X, 50, chunk_size=300)
    if backed is not None:
        backed.file.close()
    # the documented tie rule, position by position
    np.testing.assert_array_equal(ours, case["stable"])
    # the authors: the same value at every rank ...
    dense, theirs, unique = case["dense"], case["authors_pos"], case["unique"]
    rows = np.arange(dense.shape[0])[:, None]
    np.testing.assert_array_equal(dense[rows, ours], dense[rows, theirs])
    # ... and the same gene (position and name) wherever that value is unique in the row
    assert unique.sum() > 0.05 * unique.size
    np.testing.assert_array_equal(ours[unique], theirs[unique])
    ours_names = case["adata"].var["feature_name"].to_numpy()[ours]
    np.testing.assert_array_equal(ours_names[unique], case["authors_names"][unique])


def test_authors_ties_are_real_on_raw_counts(real_cases):
    """Raw counts tie at the 50th gene in most cells, so the tie rule matters."""
    case = real_cases["pbmc3k_counts"]
    dense = case["dense"]
    rows = np.arange(dense.shape[0])
    v50 = dense[rows, case["stable"][:, 49]]
    n_tied = ((dense == v50[:, None]).sum(axis=1) > 1).mean()
    assert n_tied > 0.5


def test_cells_with_fewer_nonzero_genes_get_zero_genes_in_gene_order(real_cases):
    case = real_cases["pbmc3k_counts"]
    X = case["adata"].X[:200]
    n = 400  # more than the nonzero genes of the sparsest cells (min 212)
    ours = top_gene_indices(X, n)
    np.testing.assert_array_equal(ours, stable_reference(X, n))
    nnz = np.diff(X.indptr)
    i = int(np.argmin(nnz))
    assert nnz[i] < n
    fill = ours[i, nnz[i] :]
    zero_genes = np.flatnonzero(X[i].toarray().ravel() == 0)
    np.testing.assert_array_equal(fill, zero_genes[: n - nnz[i]])


# --- rules on small matrices ----------------------------------------------------------
def test_ties_ordered_by_lower_gene_position_and_zeros_fill_in():
    X = np.array(
        [
            [0.0, 2.0, 1.0, 2.0, 0.0, 3.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 5.0, 0.0, 0.0, 0.0],
        ]
    )
    expected = [[5, 1, 3, 2, 0], [0, 1, 2, 3, 4], [2, 0, 1, 3, 4]]
    for M in (X, sparse.csr_matrix(X), sparse.csc_matrix(X), sparse.coo_matrix(X)):
        assert top_gene_indices(M, 5).tolist() == expected


def test_explicit_zeros_and_duplicate_entries_in_sparse_input():
    # row 0: explicit zero at gene 0; gene 2 stored twice (1 + 2 = 3)
    m = sparse.csr_matrix(
        (np.array([0.0, 1.0, 2.0, 1.5]), np.array([0, 2, 2, 3]), np.array([0, 4])), shape=(1, 5)
    )
    assert top_gene_indices(m, 4).tolist() == [[2, 3, 0, 1]]
    c = sparse.csc_matrix(
        (np.array([0.0, 1.0, 2.0, 1.5]), np.array([0, 0, 0, 0]), np.array([0, 1, 1, 3, 4, 4])),
        shape=(1, 5),
    )
    assert top_gene_indices(c, 4).tolist() == [[2, 3, 0, 1]]


def test_rows_subset_order_duplicates_and_mask(real_cases):
    case = real_cases["lymphnode_counts"]
    rows = np.array([7, 3, 3, 300, 0])
    for M in (case["adata"].X, case["adata"].X.tocsc(), case["dense"]):
        got = top_gene_indices(M, 50, rows=rows, chunk_size=2)
        np.testing.assert_array_equal(got, case["stable"][rows])
    mask = np.zeros(case["dense"].shape[0], dtype=bool)
    mask[[5, 9]] = True
    np.testing.assert_array_equal(
        top_gene_indices(case["adata"].X, 50, rows=mask), case["stable"][[5, 9]]
    )
    assert top_gene_indices(case["adata"].X, 50, rows=[]).shape == (0, 50)


def test_backed_rows_subset(real_cases, backed_files):
    case = real_cases["pbmc3k_counts"]
    rows = np.array([990, 5, 6, 5, 500, 7])
    for fmt in ("csr", "csc", "dense"):
        backed = ad.read_h5ad(backed_files["pbmc3k_counts", fmt], backed="r")
        got = top_gene_indices(backed.X, 50, rows=rows, chunk_size=3 if fmt != "csc" else 4000)
        backed.file.close()
        np.testing.assert_array_equal(got, case["stable"][rows])


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.float64, bool])
def test_dtypes(dtype):
    rng = np.random.default_rng(0)
    X = rng.poisson(0.7, size=(30, 40)).astype(dtype)
    ref = stable_reference(X.astype(np.float64), 10)
    formats = (X,) if dtype is np.float16 else (X, sparse.csr_matrix(X), sparse.csc_matrix(X))
    for M in formats:
        np.testing.assert_array_equal(top_gene_indices(M, 10), ref)


def test_all_genes_and_chunk_size_do_not_change_the_result(real_cases):
    case = real_cases["pbmc68k_raw"]
    full = top_gene_indices(case["adata"].X, case["dense"].shape[1], chunk_size=7)
    assert full.dtype == np.int32
    np.testing.assert_array_equal(full, stable_reference(case["dense"], case["dense"].shape[1]))


def test_top_gene_indices_bad_input():
    X = sparse.csr_matrix(np.ones((3, 4)))
    with pytest.raises(ValueError, match="n_genes=5 is larger than the number of genes"):
        top_gene_indices(X, 5)
    with pytest.raises(ValueError, match="positive integer"):
        top_gene_indices(X, 0)
    with pytest.raises(ValueError, match="rows must be positions"):
        top_gene_indices(X, 2, rows=[0, 3])
    with pytest.raises(ValueError, match="boolean rows mask"):
        top_gene_indices(X, 2, rows=np.array([True, False]))
    with pytest.raises(TypeError, match="rows must be"):
        top_gene_indices(X, 2, rows=[0.5])
    with pytest.raises(ValueError, match="chunk_size"):
        top_gene_indices(X, 2, chunk_size=0)


# --- the public function --------------------------------------------------------------
def test_pp_top_genes_on_pbmc68k_raw(pbmc68k):
    stable = stable_reference(pbmc68k.raw.X, 50)
    assert cello1.pp.top_genes(pbmc68k, use_raw=True) is None
    got = pbmc68k.obsm["top_genes"]
    assert got.shape == (pbmc68k.n_obs, 50)
    np.testing.assert_array_equal(got, stable)
    params = pbmc68k.uns["top_genes"]["params"]
    assert params["n_genes"] == 50
    assert params["use_raw"] is True
    assert params["var_source"] == "raw"
    assert params["n_vars"] == pbmc68k.raw.n_vars
    assert params["layer"] == ""
    assert params["gene_symbols"] == ""
    assert params["key_added"] == "top_genes"
    assert params["version"] == cello1.__version__
    assert set(params) >= {"n_genes", "layer", "use_raw", "gene_symbols", "key_added", "chunk_size"}


def test_pp_top_genes_layer_copy_and_write(shared_data, tmp_path):
    adata = ad.read_h5ad(shared_data / "kang2018_muscat_example.h5ad")
    before = set(adata.obsm)
    out = cello1.pp.top_genes(
        adata, 20, layer="counts", key_added="tg", gene_symbols="SYMBOL", copy=True
    )
    assert set(adata.obsm) == before and "tg" not in adata.uns
    np.testing.assert_array_equal(out.obsm["tg"], stable_reference(adata.layers["counts"], 20))
    assert out.uns["tg"]["params"]["var_source"] == "layers"
    out.write_h5ad(tmp_path / "k.h5ad")
    back = ad.read_h5ad(tmp_path / "k.h5ad")
    np.testing.assert_array_equal(back.obsm["tg"], out.obsm["tg"])
    assert back.uns["tg"]["params"]["gene_symbols"] == "SYMBOL"


def test_pp_top_genes_backed(backed_files, real_cases):
    backed = ad.read_h5ad(backed_files["lymphnode_counts", "csr"], backed="r")
    cello1.pp.top_genes(backed, chunk_size=64)
    np.testing.assert_array_equal(
        backed.obsm["top_genes"], real_cases["lymphnode_counts"]["stable"]
    )
    with pytest.raises(ValueError, match="backed"):
        cello1.pp.top_genes(backed, copy=True)
    backed.file.close()


def _snapshot(adata):
    return set(adata.obsm), set(adata.uns), adata.X.copy()


def _assert_unchanged(adata, snap):
    assert set(adata.obsm) == snap[0]
    assert set(adata.uns) == snap[1]
    np.testing.assert_array_equal(adata.X, snap[2])


def test_pp_top_genes_bad_input_leaves_adata_unchanged(pbmc68k):
    snap = _snapshot(pbmc68k)
    with pytest.raises(ValueError, match=r"negative values.*use_raw=True"):
        cello1.pp.top_genes(pbmc68k)  # X is scaled
    with pytest.raises(ValueError, match="larger than the number of genes"):
        cello1.pp.top_genes(pbmc68k, n_genes=pbmc68k.raw.n_vars + 1, use_raw=True)
    with pytest.raises(KeyError, match="layer 'counts' not found"):
        cello1.pp.top_genes(pbmc68k, layer="counts")
    with pytest.raises(ValueError, match="only one"):
        cello1.pp.top_genes(pbmc68k, layer="counts", use_raw=True)
    with pytest.raises(KeyError, match=r"var\['feature_name'\] not found"):
        cello1.pp.top_genes(pbmc68k, use_raw=True, gene_symbols="feature_name")
    with pytest.raises(ValueError, match="positive integer"):
        cello1.pp.top_genes(pbmc68k, n_genes=True, use_raw=True)
    with pytest.raises(TypeError, match="key_added"):
        cello1.pp.top_genes(pbmc68k, use_raw=True, key_added="")
    _assert_unchanged(pbmc68k, snap)
    no_raw = ad.AnnData(np.abs(pbmc68k.X))
    with pytest.raises(KeyError, match=r"adata\.raw is not set"):
        cello1.pp.top_genes(no_raw, use_raw=True)
    nan = ad.AnnData(np.array([[1.0, np.nan], [0.0, 2.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        cello1.pp.top_genes(nan, n_genes=1)
    assert "top_genes" not in nan.obsm


def _counts_with_names(names):
    rng = np.random.default_rng(0)
    X = sparse.csr_matrix(rng.poisson(1.0, size=(30, len(names))).astype(np.float32))
    a = ad.AnnData(
        X=X, var=pd.DataFrame({"symbol": names}, index=[f"g{i}" for i in range(len(names))])
    )
    return a


def test_repeated_gene_names_are_kept_with_a_warning(caplog):
    import logging

    a = _counts_with_names(["CD3E", "CD3E", "MS4A1", "NKG7", "NKG7", "NKG7", "LYZ"])
    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        cello1.pp.top_genes(a, n_genes=3, gene_symbols="symbol")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "2 gene names in adata.var['symbol'] occur more than once" in messages[0]
    assert "'NKG7' x3, 'CD3E' x2" in messages[0] and "gene_symbols=" in messages[0]
    assert a.obsm["top_genes"].shape == (30, 3)  # computed as before: positions
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        cello1.pp.top_genes(a, n_genes=3)  # var_names are unique
    assert caplog.records == []


def test_top_genes_progress_follows_the_setting(capsys, monkeypatch):
    from sc_cello1.pp import _top_genes

    a = _counts_with_names([f"G{i}" for i in range(20)])
    monkeypatch.setattr(_top_genes, "PROGRESS_DELAY", 0.0)
    cello1.pp.top_genes(a, n_genes=5, chunk_size=10)
    assert "top genes" in capsys.readouterr().err
    monkeypatch.setattr(cello1.settings, "progress", False)
    cello1.pp.top_genes(a, n_genes=5, chunk_size=10)
    assert "top genes" not in capsys.readouterr().err

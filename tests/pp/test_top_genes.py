"""Tests of sc_cello1.pp.top_genes and its kernel top_gene_indices.

Parity: the authors' per-cell loop (data/build_context.py of ncbi-nlp/cell-o1, newest
snapshot; see CELLPUZZLES.md, "Top genes") is copied in ``tests/data/_authors.py``:
per cell, re-read the gene names, densify ``X[i, :]``, ``np.argpartition(row,
-50)[-50:]``, then the reversed default ``np.argsort`` of those 50 values.
``tie_order="authors"`` must give exactly its positions, cell by cell and gene by gene,
for every input format. ``tie_order="position"`` (default) must give the documented
rule exactly (numpy's stable argsort of the negated row), and agree with the authors'
loop on the value at every rank and on the gene wherever that value is unique in the
row.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from tests.data._authors import top_gene_positions

import sc_cello1 as cello1
from sc_cello1.pp import _top_genes_authors
from sc_cello1.pp._top_genes import top_gene_indices


def authors_loop(adata, n=50):
    """The authors' loop over every cell of ``adata.X`` (positions, names)."""
    pos, names = top_gene_positions(adata.X, adata.var, n, gene_key="feature_name")
    return pos, names


def stable_reference(X, n):
    """Documented rule: value descending, then gene position ascending."""
    X = X.toarray() if sparse.issparse(X) else np.asarray(X)
    return np.stack([np.argsort(-row, kind="stable")[:n] for row in X])


# --- real data ------------------------------------------------------------------------
REAL = ["pbmc68k_raw", "pbmc3k_counts", "pbmc3k_lognorm", "lymphnode_counts", "kang_counts"]
REAL += ["kang_logcounts"]


def _real(name, shared_data):
    if name == "pbmc68k_raw":
        import scanpy as sc

        adata = sc.datasets.pbmc68k_reduced()
        X = adata.raw.X
        var = adata.raw.var.copy()
        var["feature_name"] = adata.raw.var_names
    elif name.startswith("pbmc3k"):
        full = ad.read_h5ad(shared_data / "pbmc3k_clustifyr_9types.h5ad")
        X = full.layers["counts"] if name == "pbmc3k_counts" else full.X
        var = full.var
    elif name.startswith("kang"):
        full = ad.read_h5ad(shared_data / "kang2018_muscat_example.h5ad")
        X = full.layers["counts"] if name == "kang_counts" else full.X
        var = full.var.copy()
        var["feature_name"] = full.var_names
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
    """Every cell of each dataset (all genes), the authors' loop and the stable rule."""
    cases = {}
    for name in REAL:
        adata = _real(name, shared_data)
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
@pytest.mark.parametrize("name", REAL)
def test_authors_tie_order_is_their_loop_cell_by_cell(real_cases, backed_files, name, fmt):
    case = real_cases[name]
    X, backed = _matrix(case, fmt, backed_files, name)
    try:
        ours = top_gene_indices(X, 50, chunk_size=300, tie_order="authors")
    finally:
        if backed is not None:
            backed.file.close()
    np.testing.assert_array_equal(ours, case["authors_pos"])
    names = case["adata"].var["feature_name"].to_numpy()[ours]
    np.testing.assert_array_equal(names, case["authors_names"])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", REAL)
def test_position_tie_order_matches_authors_on_real_data(real_cases, backed_files, name, fmt):
    case = real_cases[name]
    X, backed = _matrix(case, fmt, backed_files, name)
    try:
        ours = top_gene_indices(X, 50, chunk_size=300)
    finally:
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


def test_the_two_tie_orders_differ_on_counts(real_cases):
    """Raw and log-normalised counts tie inside the top 50, so the rule shows."""
    for name in ("pbmc3k_counts", "pbmc3k_lognorm", "lymphnode_counts"):
        case = real_cases[name]
        differ = (case["authors_pos"] != case["stable"]).any(axis=1).mean()
        assert differ > 0.5, (name, differ)


def _authors_1d(row, n):
    idx = np.argpartition(row, -n)[-n:]
    return idx[np.argsort(row[idx])[::-1]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.float16])
def test_numpy_2d_calls_equal_the_1d_calls_row_by_row(dtype):
    """What tie_order='authors' relies on: numpy's argpartition and argsort along
    axis=1 of a block treat each row exactly as the 1-d call on that row does."""
    rng = np.random.default_rng(0)
    for n_vars, density, lam in [(60, 0.8, 1), (700, 0.2, 0.5), (5000, 0.05, 3), (33000, 0.05, 1)]:
        X = rng.poisson(lam, (40, n_vars)) * (rng.random((40, n_vars)) < density)
        X = X.astype(dtype)
        for n in (1, 3, 17, 50, min(n_vars, 300)):
            expected = np.stack([_authors_1d(X[i].copy(), n) for i in range(X.shape[0])])
            np.testing.assert_array_equal(_top_genes_authors.authors_block(X, n), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_authors_tie_order_keeps_the_stored_dtype(real_cases, dtype):
    counts = real_cases["pbmc3k_counts"]["adata"].X[:300].astype(dtype)
    var = real_cases["pbmc3k_counts"]["adata"].var
    expected, _ = top_gene_positions(counts, var)
    for M in (counts, counts.toarray(), counts.tocsc()):
        np.testing.assert_array_equal(top_gene_indices(M, 50, tie_order="authors"), expected)


def test_authors_tie_order_on_scaled_values_with_negatives(pbmc68k):
    """top_gene_indices ranks values as they are in the authors' order (pbmc68k X is
    scaled: no zeros, negative values); pp.top_genes rejects such matrices."""
    X = np.asarray(pbmc68k.X)
    expected, _ = top_gene_positions(X, pbmc68k.var)
    np.testing.assert_array_equal(top_gene_indices(X, 50, tie_order="authors"), expected)
    np.testing.assert_array_equal(
        top_gene_indices(sparse.csr_matrix(X), 50, tie_order="authors"), expected
    )


def test_authors_tie_order_blocks_passes_rows_and_zero_fill(real_cases, backed_files, monkeypatch):
    """Many small blocks, several passes over a backed CSC file, row subsets with
    duplicates, more genes than a cell has nonzero values, and all genes."""
    monkeypatch.setattr(_top_genes_authors, "_AUTHORS_BLOCK_BYTES", 20 * 13714 * 12)
    monkeypatch.setattr(_top_genes_authors, "_CSC_PASS_BYTES", 30_000)  # 3 rows a pass
    case = real_cases["pbmc3k_counts"]
    X = case["adata"].X
    sparsest = int(np.argmin(np.diff(X.indptr)))
    rows = np.array([990, 5, 6, 5, sparsest, 500, 7, 2637, 0, 1200])
    n = 400  # more than the nonzero genes of the sparsest cells
    expected, _ = top_gene_positions(X[rows], case["adata"].var, n)
    assert np.diff(X.indptr)[sparsest] < n
    for M in (X, X.tocsc(), case["dense"]):
        got = top_gene_indices(M, n, rows=rows, chunk_size=4, tie_order="authors")
        np.testing.assert_array_equal(got, expected)
    for fmt in ("csr", "csc", "dense"):
        backed = ad.read_h5ad(backed_files["pbmc3k_counts", fmt], backed="r")
        try:
            got = top_gene_indices(backed.X, n, rows=rows, chunk_size=3, tie_order="authors")
        finally:
            backed.file.close()
        np.testing.assert_array_equal(got, expected)
    mask = np.zeros(X.shape[0], dtype=bool)
    mask[[5, 9]] = True
    np.testing.assert_array_equal(
        top_gene_indices(X, 50, rows=mask, tie_order="authors"), case["authors_pos"][[5, 9]]
    )
    small = real_cases["pbmc68k_raw"]
    n_all = small["dense"].shape[1]
    expected_all, _ = top_gene_positions(small["adata"].X, small["adata"].var, n_all)
    np.testing.assert_array_equal(
        top_gene_indices(small["adata"].X, n_all, tie_order="authors"), expected_all
    )


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
    with pytest.raises(ValueError, match="tie_order"):
        top_gene_indices(X, 2, tie_order=None)


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
    assert params["tie_order"] == "position"
    assert params["numpy_version"] == np.__version__
    assert set(params) >= {"n_genes", "layer", "use_raw", "gene_symbols", "key_added", "chunk_size"}


def test_pp_top_genes_authors_tie_order(pbmc68k):
    expected, names = top_gene_positions(pbmc68k.raw.X, pbmc68k.raw.var)
    cello1.pp.top_genes(pbmc68k, use_raw=True, tie_order="authors", key_added="tg_auth")
    np.testing.assert_array_equal(pbmc68k.obsm["tg_auth"], expected)
    assert pbmc68k.uns["tg_auth"]["params"]["tie_order"] == "authors"
    got = cello1.get.top_genes(pbmc68k, key="tg_auth")
    assert got.to_numpy().tolist() == names


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
    with pytest.raises(ValueError, match=r"tie_order must be 'position'.*'authors'.*'stable'"):
        cello1.pp.top_genes(pbmc68k, use_raw=True, tie_order="stable")
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
    from sc_cello1.pp import _top_genes_common

    a = _counts_with_names([f"G{i}" for i in range(20)])
    monkeypatch.setattr(_top_genes_common, "PROGRESS_DELAY", 0.0)
    cello1.pp.top_genes(a, n_genes=5, chunk_size=10)
    assert "top genes" in capsys.readouterr().err
    monkeypatch.setattr(cello1.settings, "progress", False)
    cello1.pp.top_genes(a, n_genes=5, chunk_size=10)
    assert "top genes" not in capsys.readouterr().err

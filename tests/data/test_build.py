from __future__ import annotations

import logging
import warnings
from collections import Counter

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import sc_cello1 as cello1
from sc_cello1.data import Puzzle, build_puzzles
from tests.data import _authors


@pytest.fixture(scope="module")
def pbmc():
    """pbmc68k_reduced with its raw (log1p) matrix as X and a fake donor column."""
    import scanpy as sc

    a = sc.datasets.pbmc68k_reduced()
    a.obs["donor_id"] = np.where(np.arange(a.n_obs) % 3 == 0, "donor_a", "donor_b")
    return a


@pytest.fixture(scope="module")
def lymphnode(shared_data):
    a = ad.read_h5ad(shared_data / "lymphnode_ref_spacexr_11types.h5ad")
    # CELLxGENE-style context columns, per sample
    samples = a.obs["sample"].astype(str)
    codes = pd.factorize(samples)[0]
    a.obs["sex"] = np.where(codes % 2 == 0, "female", "male")
    a.obs["development_stage"] = np.where(codes % 3 == 0, "unknown", "45-year-old stage")
    a.obs["tissue"] = "lymph node"
    a.obs["disease"] = np.where(codes % 4 == 0, "normal", "lymphoma")
    return a


@pytest.fixture(scope="module")
def kang(shared_data):
    return ad.read_h5ad(shared_data / "kang2018_muscat_example.h5ad")


def _authors_pairs(
    adata,
    *,
    cell_type_key,
    donor_key,
    matrix,
    var,
    seed,
    lo,
    hi,
    per_size,
    batch_key=None,
    gene_key=None,
):
    records = _authors.cell_records(
        adata,
        cell_type_key=cell_type_key,
        donor_key=donor_key,
        batch_key=batch_key,
        matrix=matrix,
        var=var,
        gene_key=gene_key,
    )
    return _authors.generate_pairs(
        records, min_n=lo, max_n_cells=hi, target_per_n=per_size, seed=seed, type_order=sorted
    )


def _assert_same(ours: list[Puzzle], theirs: list[dict]):
    assert len(ours) == len(theirs)
    for p, q in zip(ours, theirs, strict=True):
        assert p.user_msg == q["question"]
        assert p.assistant_msg == q["answer"]
        assert p.group == q["group"]


# ------------------------------------------------------------------ parity with match_qa.py


def test_parity_with_authors_pbmc68k(pbmc):
    ours = build_puzzles(
        pbmc,
        cell_type_key="bulk_labels",
        use_raw=True,
        n_cells=(8, 10),
        per_size=6,
        seed=7,
        tie_order="authors",
    )
    theirs = _authors_pairs(
        pbmc,
        cell_type_key="bulk_labels",
        donor_key="donor_id",
        matrix=pbmc.raw.X,
        var=pbmc.raw.var,
        seed=7,
        lo=8,
        hi=10,
        per_size=6,
    )
    _assert_same(ours, theirs)
    # cell ids are the cells the authors selected
    for p, q in zip(ours, theirs, strict=True):
        assert p.cell_ids == [pbmc.obs_names[int(i)] for i in q["selected_cells"]]


def test_parity_with_authors_lymphnode_context_and_feature_name(lymphnode):
    # `sample` as donor: at most 9 types per sample, so N = 8..9; CELLxGENE context columns
    ours = build_puzzles(
        lymphnode,
        cell_type_key="cell_type",
        donor_key="sample",
        n_cells=(8, 15),
        per_size=5,
        gene_symbols="feature_name",
        tie_order="authors",
    )
    theirs = _authors_pairs(
        lymphnode,
        cell_type_key="cell_type",
        donor_key="sample",
        matrix=lymphnode.X,
        var=lymphnode.var,
        gene_key="feature_name",
        seed=42,
        lo=8,
        hi=15,
        per_size=5,
    )
    _assert_same(ours, theirs)
    assert {p.n_cells for p in ours} == {8, 9}
    assert Counter(p.n_cells for p in ours) == {8: 5, 9: 5}
    assert any("The patient has been diagnosed with lymphoma." in p.user_msg for p in ours)
    assert all(p.user_msg.startswith("Context: The cell is from a ") for p in ours)


def test_parity_with_authors_kang_with_batch(kang):
    ours = build_puzzles(
        kang,
        donor_key="donor_id",
        batch_key="group_id",
        n_cells=(3, 5),
        per_size=4,
        layer="counts",
        tie_order="authors",
    )
    theirs = _authors_pairs(
        kang,
        cell_type_key="cell_type",
        donor_key="donor_id",
        batch_key="group_id",
        matrix=kang.layers["counts"],
        var=kang.var,
        seed=42,
        lo=3,
        hi=5,
        per_size=4,
    )
    _assert_same(ours, theirs)
    assert {p.group for p in ours} == {
        "('101', 'ctrl')",
        "('101', 'stim')",
        "('107', 'ctrl')",
        "('107', 'stim')",
    }


# ------------------------------------------------------------------ the statistical contract


def test_contract_quotas_types_cells_groups(pbmc):
    puzzles = build_puzzles(
        pbmc, cell_type_key="bulk_labels", use_raw=True, n_cells=(8, 10), per_size=7, seed=3
    )
    assert Counter(p.n_cells for p in puzzles) == {8: 7, 9: 7, 10: 7}
    labels = pbmc.obs["bulk_labels"].astype(str)
    donors = pbmc.obs["donor_id"]
    for p in puzzles:
        assert len(set(p.answer)) == p.n_cells  # distinct types, one cell per type
        assert p.candidates == sorted(p.answer)
        assert [labels[c] for c in p.cell_ids] == p.answer
        assert len(set(p.cell_ids)) == p.n_cells
        assert {donors[c] for c in p.cell_ids} == {p.group}  # one group per puzzle
        assert p.meta["donor"] == p.group and p.meta["n"] == p.n_cells
        assert all(len(g) == 50 for g in p.genes)


def test_reproducible_for_a_seed_and_different_for_another(pbmc):
    kw = dict(cell_type_key="bulk_labels", use_raw=True, n_cells=(8, 9), per_size=4)
    a = [p.to_record() for p in build_puzzles(pbmc, seed=11, **kw)]
    b = [p.to_record() for p in build_puzzles(pbmc, seed=11, **kw)]
    c = [p.to_record() for p in build_puzzles(pbmc, seed=12, **kw)]
    assert a == b
    assert a != c


def test_top_genes_are_highest_values_of_the_cell(pbmc):
    puzzles = build_puzzles(
        pbmc, cell_type_key="bulk_labels", use_raw=True, n_cells=8, per_size=2, n_genes=10
    )
    X = pbmc.raw.X
    names = np.asarray(pbmc.raw.var_names)
    pos = {c: i for i, c in enumerate(pbmc.obs_names)}
    for p in puzzles:
        for cell, genes in zip(p.cell_ids, p.genes, strict=True):
            row = np.asarray(X[pos[cell]].todense()).ravel() if sparse.issparse(X) else X[pos[cell]]
            assert genes == list(names[np.argsort(-row, kind="stable")[:10]])


def test_groups_with_too_few_types_are_skipped(lymphnode):
    # with N >= 9 only the samples with 9 types take part
    puzzles = build_puzzles(lymphnode, donor_key="sample", n_cells=(9, 9), per_size=6)
    n_types = lymphnode.obs.groupby("sample", observed=True)["cell_type"].nunique()
    assert len(puzzles) == 6
    assert {p.group for p in puzzles} <= set(n_types[n_types >= 9].index.astype(str))


def test_context_string_and_callable(kang):
    fixed = build_puzzles(
        kang, n_cells=(5, 5), per_size=2, layer="counts", context="A lupus patient."
    )
    assert all(p.user_msg.startswith("Context: A lupus patient. \n\nCell 1: ") for p in fixed)
    called = build_puzzles(
        kang,
        n_cells=(5, 5),
        per_size=2,
        layer="counts",
        context=lambda row: f"Donor {row['donor_id']}, {row['group_id']} sample.",
    )
    for p in called:
        first = kang.obs.loc[p.cell_ids[0]]
        assert p.context == f"Donor {first['donor_id']}, {first['group_id']} sample."


def test_context_callable_that_returns_no_single_line_is_refused(kang):
    kw = {"n_cells": (5, 5), "per_size": 1, "layer": "counts"}
    with pytest.raises(TypeError, match="returned a int, not a string"):
        build_puzzles(kang, **kw, context=lambda row: 3)
    with pytest.raises(ValueError, match="more than one line"):
        build_puzzles(kang, **kw, context=lambda row: "two\nlines")
    with pytest.raises(ValueError, match="is empty"):
        build_puzzles(kang, **kw, context=lambda row: " ")


def test_context_fields(kang):
    puzzles = build_puzzles(
        kang,
        n_cells=(5, 5),
        per_size=1,
        layer="counts",
        context_fields={"group_id": "Condition"},
    )
    first = kang.obs.loc[puzzles[0].cell_ids[0]]
    assert puzzles[0].context == f"The cell is from. Condition: {first['group_id']}."
    with pytest.warns(FutureWarning, match="context_fields"):
        old = build_puzzles(
            kang,
            n_cells=(5, 5),
            per_size=1,
            layer="counts",
            extra_context_fields={"group_id": "Condition"},
        )
    assert [p.context for p in old] == [p.context for p in puzzles]


def test_no_donor_column_warns_and_uses_one_group(pbmc, caplog):
    a = pbmc.copy()
    del a.obs["donor_id"]
    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        puzzles = build_puzzles(a, cell_type_key="bulk_labels", use_raw=True, n_cells=8, per_size=3)
    assert len(puzzles) == 3 and {p.group for p in puzzles} == {"all"}
    assert [r.getMessage() for r in caplog.records if "not found" in r.getMessage()] == [
        "`obs['donor_id']` not found: all cells are treated as one donor group, so a puzzle "
        "may mix cells of different donors. Pass donor_key= naming the donor column, or "
        "donor_key=None to silence this warning."
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sc_cello1"), warnings.catch_warnings():
        warnings.simplefilter("error")
        build_puzzles(
            a, cell_type_key="bulk_labels", use_raw=True, donor_key=None, n_cells=8, per_size=1
        )
    assert not [r for r in caplog.records if "donor" in r.getMessage()]


def test_backed_and_dense_give_the_same_puzzles(lymphnode, tmp_path):
    path = tmp_path / "ln.h5ad"
    lymphnode.write_h5ad(path)
    kw = dict(donor_key="sample", n_cells=(8, 9), per_size=3)
    expected = [p.to_record() for p in build_puzzles(lymphnode, **kw)]
    backed = ad.read_h5ad(path, backed="r")
    try:
        assert [p.to_record() for p in build_puzzles(backed, **kw)] == expected
    finally:
        backed.file.close()
    dense = lymphnode.copy()
    dense.X = dense.X.toarray()
    assert [p.to_record() for p in build_puzzles(dense, **kw)] == expected


def test_tie_order_changes_only_the_order_among_equal_values(kang, tmp_path):
    kw = dict(donor_key="donor_id", batch_key="group_id", n_cells=(3, 5), per_size=4)
    kw |= dict(layer="counts")
    position = build_puzzles(kang, **kw)
    authors = build_puzzles(kang, tie_order="authors", **kw)
    # the same cells and candidates; genes differ only where raw counts tie
    assert [p.cell_ids for p in position] == [p.cell_ids for p in authors]
    assert any(p.genes != q.genes for p, q in zip(position, authors, strict=True))
    counts = sparse.csr_matrix(kang.layers["counts"])
    pos_of = {g: i for i, g in enumerate(kang.var_names)}
    cell = {c: i for i, c in enumerate(kang.obs_names)}
    for p, q in zip(position, authors, strict=True):
        for c, a, b in zip(p.cell_ids, p.genes, q.genes, strict=True):
            row = counts[cell[c]].toarray().ravel()
            va = row[[pos_of[g] for g in a]]
            np.testing.assert_array_equal(va, row[[pos_of[g] for g in b]])
            assert list(va) == sorted(va, reverse=True)
    # a backed file gives the authors' order too
    path = tmp_path / "kang.h5ad"
    kang.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    try:
        again = build_puzzles(backed, tie_order="authors", **kw)
    finally:
        backed.file.close()
    assert [p.to_record() for p in again] == [p.to_record() for p in authors]


def test_cells_without_donor_are_left_out(kang):
    a = kang.copy()
    a.obs["donor_id"] = a.obs["donor_id"].astype(object)
    a.obs.loc[a.obs_names[::2], "donor_id"] = np.nan
    puzzles = build_puzzles(a, n_cells=(5, 5), per_size=5, layer="counts")
    kept = set(a.obs_names[1::2])
    assert all(set(p.cell_ids) <= kept for p in puzzles)


# ------------------------------------------------------------------ bad input


def _unchanged(before: ad.AnnData, after: ad.AnnData):
    pd.testing.assert_frame_equal(before.obs, after.obs)
    pd.testing.assert_frame_equal(before.var, after.var)
    assert (
        (before.X != after.X).nnz == 0
        if sparse.issparse(before.X)
        else np.array_equal(before.X, after.X)
    )
    assert before.uns.keys() == after.uns.keys()
    assert before.obsm.keys() == after.obsm.keys()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"cell_type_key": "celltype"}, KeyError, r"obs\['celltype'\].*cell_type_key="),
        ({"donor_key": "patient"}, KeyError, r"obs\['patient'\].*donor_key="),
        ({"batch_key": "lane"}, KeyError, r"obs\['lane'\].*batch_key="),
        ({"gene_symbols": "symbol"}, KeyError, r"var\['symbol'\].*gene_symbols="),
        ({"layer": "spliced"}, KeyError, r"layer 'spliced' not found"),
        (
            {"n_genes": 2000},
            ValueError,
            r"n_genes=2000 is larger than the number of genes \(1267\)",
        ),
        (
            {"n_cells": (8, 15)},
            ValueError,
            r"fewer than 8 distinct cell types.*has 5.*n_cells=\(3, 5\)",
        ),
        ({"n_cells": (1, 5)}, ValueError, r"at least 2 cells"),
        ({"n_cells": (5, 3)}, ValueError, r"minimum N is larger"),
        ({"per_size": 0}, ValueError, r"`per_size`=0"),
        ({"context": 3}, TypeError, r"context must be None, a string or a callable"),
        ({"context": "two\nlines"}, ValueError, r"one line"),
        ({"context_fields": ["smoker"]}, KeyError, r"obs\['smoker'\]"),
        (
            {"context_fields": ["group_id"], "context": "x"},
            ValueError,
            r"use it with context=None",
        ),
        ({"seed": "42"}, TypeError, r"seed='42' must be an integer"),
        ({"n_genes": 0}, ValueError, r"`n_genes`=0 must be at least 1"),
        ({"n_cells": "8-15"}, TypeError, r"pair \(min N, max N\)"),
        ({"tie_order": "stable"}, ValueError, r"tie_order must be 'position'.*or 'authors'"),
    ],
)
def test_bad_arguments(kang, kwargs, error, match):
    before = kang.copy()
    kw = {"n_cells": (3, 5), "per_size": 2, "layer": "counts"} | kwargs
    with pytest.raises(error, match=match):
        build_puzzles(kang, **kw)
    _unchanged(before, kang)


def test_negative_values_say_use_layer_or_raw(pbmc):
    before = pbmc.copy()
    with pytest.raises(ValueError, match=r"negative values.*layer=.*use_raw=True"):
        build_puzzles(pbmc, cell_type_key="bulk_labels", n_cells=8, per_size=1)
    _unchanged(before, pbmc)


def test_nan_labels_say_how_many_and_the_fix(kang):
    a = kang.copy()
    a.obs["cell_type"] = a.obs["cell_type"].astype(object)
    a.obs.loc[a.obs_names[:7], "cell_type"] = np.nan
    before = a.copy()
    with pytest.raises(ValueError, match=r"7 of 1556 cells have no label.*drop them.*fill them"):
        build_puzzles(a, n_cells=(3, 5), layer="counts")
    _unchanged(before, a)


def test_string_labels_need_not_be_categorical(kang):
    a = kang.copy()
    a.obs["cell_type"] = a.obs["cell_type"].astype(str)
    expected = [
        p.to_record() for p in build_puzzles(kang, n_cells=(3, 5), per_size=2, layer="counts")
    ]
    assert [
        p.to_record() for p in build_puzzles(a, n_cells=(3, 5), per_size=2, layer="counts")
    ] == expected


def test_numeric_labels_are_rejected(kang):
    a = kang.copy()
    a.obs["cell_type"] = a.obs["cell_type"].cat.codes
    with pytest.raises(TypeError, match=r"holds numbers"):
        build_puzzles(a, n_cells=(3, 5), layer="counts")


def test_duplicate_candidate_labels(kang):
    a = kang.copy()
    labels = a.obs["cell_type"].astype(str).to_numpy()
    labels[labels == "B cells"] = "b cells"
    labels[:3] = "B cells"
    a.obs["cell_type"] = labels
    before = a.copy()
    with pytest.raises(ValueError, match=r"duplicate candidate labels.*'B cells', 'b cells'"):
        build_puzzles(a, n_cells=(3, 5), layer="counts")
    _unchanged(before, a)


def test_labels_that_break_the_answer_format(kang):
    a = kang.copy()
    a.obs["cell_type"] = a.obs["cell_type"].astype(str).str.replace("B cells", "B | plasma")
    with pytest.raises(ValueError, match=r"'\|'"):
        build_puzzles(a, n_cells=(3, 5), layer="counts")


def test_too_few_types_in_every_group_names_the_largest(lymphnode):
    with pytest.raises(ValueError, match=r"largest group, '.+', has 9.*n_cells=\(3, 9\)"):
        build_puzzles(lymphnode, donor_key="sample", n_cells=(10, 15))


def test_not_anndata():
    with pytest.raises(TypeError, match="AnnData"):
        build_puzzles(pd.DataFrame({"a": [1]}))


def test_public_name():
    assert cello1.data.build_puzzles is build_puzzles


def test_repeated_gene_names_warn_once(pbmc, caplog):
    a = ad.AnnData(pbmc.raw.X.copy(), obs=pbmc.obs.copy(), var=pbmc.raw.var.copy())
    names = a.var_names.tolist()
    names[1] = names[0]
    a.var_names = names
    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        puzzles = build_puzzles(a, cell_type_key="bulk_labels", n_cells=8, per_size=2)
    repeated = [r.getMessage() for r in caplog.records if "occur more than once" in r.getMessage()]
    assert len(repeated) == 1 and "adata.var_names" in repeated[0]
    assert len(puzzles) == 2

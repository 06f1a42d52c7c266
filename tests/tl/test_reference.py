"""The reference machinery of tl.annotate: checks, candidates, prior, known cells, provenance.

Real data: PBMC 3k (9 types) split by cells into a reference half and a query half.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest
from scipy import sparse

from sc_cello1.tl._reference import (
    check_reference,
    known_cells,
    known_top_genes,
    labels_sha256,
    map_candidates,
    reference_params,
)
from sc_cello1.tl._reference_prior import check_prior_args, transfer_labels


def _fingerprint(adata) -> str:
    """Hash of everything a failure could touch: X, layers, obs, var, uns keys, obsm keys."""
    h = hashlib.sha256()
    for m in [adata.X, *adata.layers.values()]:
        m = m.tocsr() if sparse.issparse(m) else sparse.csr_matrix(np.asarray(m))
        for part in (m.data, m.indices, m.indptr):
            h.update(np.ascontiguousarray(part).tobytes())
    h.update(adata.obs.to_csv().encode())
    h.update(adata.var.to_csv().encode())
    h.update(repr(sorted(adata.uns.keys())).encode())
    h.update(repr(sorted(adata.obsm.keys())).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def split(shared_data):
    import anndata as ad

    full = ad.read_h5ad(shared_data / "pbmc3k_clustifyr_9types.h5ad")
    half = np.random.default_rng(0).permutation(full.n_obs) < full.n_obs // 2
    return full[half].copy(), full[~half].copy()


@pytest.fixture
def ref_query(split):
    ref, query = split
    return ref.copy(), query.copy()


@pytest.fixture(scope="module")
def ingest_prior(split):
    """One ingest prior of the query half (clusters: the true types), computed once."""
    ref, query = split
    checked = check_reference(
        ref, reference_key="cell_type", query_genes=list(query.var_names), n_genes=50
    )
    codes = query.obs["cell_type"].cat.codes.to_numpy()
    before = (_fingerprint(ref), _fingerprint(query))
    prior = transfer_labels(query.X, checked, codes=codes, n_clusters=9, seed=0)
    after = (_fingerprint(ref), _fingerprint(query))
    return checked, prior, before, after


def _check(ref, query, **kwargs):
    args = {"reference_key": "cell_type", "query_genes": list(query.var_names), "n_genes": 50}
    args.update(kwargs)
    return check_reference(ref, **args)


# --------------------------------------------------------------------------- checks


def _nan_labels(ref):
    ref.obs["cell_type"] = ref.obs["cell_type"].astype(object)
    ref.obs.iloc[:3, ref.obs.columns.get_loc("cell_type")] = None


def _one_type(ref):
    ref.obs["cell_type"] = "T cell"


def _renamed_genes(ref):
    ref.var["symbol"] = ref.var_names.to_numpy()
    ref.var_names = [f"ENSG{i:011d}" for i in range(ref.n_vars)]


def _scaled(ref):
    ref.X = ref.X.toarray() - 1.0


@pytest.mark.parametrize(
    ("spoil", "kwargs", "error", "words"),
    [
        (None, {"reference_key": "celltype"}, KeyError, ["celltype", "reference_key="]),
        (None, {"reference_key": None}, ValueError, ["reference_key", "obs column"]),
        (_nan_labels, {}, ValueError, ["3 missing labels", "notna()"]),
        (_one_type, {}, ValueError, ["one type", "'T cell'", "at least two"]),
        (
            _renamed_genes,
            {},
            ValueError,
            ["share 0 gene names", "reference_gene_symbols=", "'symbol'"],
        ),
        (
            None,
            {"min_shared_genes": 20000},
            ValueError,
            ["share 13714 gene names", "min_shared_genes"],
        ),
        (_scaled, {}, ValueError, ["negative values", "reference_layer="]),
        (None, {"reference_layer": "spliced"}, KeyError, ["spliced", "reference_layer="]),
    ],
    ids=[
        "missing-key",
        "no-key",
        "nan-labels",
        "one-type",
        "other-gene-names",
        "too-few-shared",
        "scaled",
        "no-layer",
    ],
)
def test_reference_checks_name_the_problem_and_the_fix(ref_query, spoil, kwargs, error, words):
    ref, query = ref_query
    if spoil is not None:
        spoil(ref)
    before = (_fingerprint(ref), _fingerprint(query))
    with pytest.raises(error) as info:
        _check(ref, query, **kwargs)
    text = str(info.value) + " ".join(getattr(info.value, "__notes__", []))
    for w in words:
        assert w in text
    assert (_fingerprint(ref), _fingerprint(query)) == before


def test_reference_view_and_backed_are_rejected_with_the_fix(ref_query, tmp_path):
    import anndata as ad

    ref, query = ref_query
    with pytest.raises(ValueError, match=r"view .*\.copy\(\)"):
        _check(ref[:500], query)
    path = tmp_path / "ref.h5ad"
    ref.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    with pytest.raises(ValueError, match=r"backed .*to_memory\(\)"):
        _check(backed, query)
    with pytest.raises(TypeError, match="must be an AnnData"):
        _check(ref.to_df(), query)


def test_gene_symbols_in_another_column_on_both_sides_are_paired(ref_query):
    ref, query = ref_query
    _renamed_genes(ref)
    query.var["symbol"] = query.var_names.to_numpy()
    query.var_names = [f"q{i}" for i in range(query.n_vars)]
    checked = _check(
        ref,
        query,
        query_genes=query.var["symbol"].astype(str).tolist(),
        reference_gene_symbols="symbol",
    )
    assert len(checked.shared_genes) == query.n_vars
    assert checked.shared_genes[:3] == ref.var["symbol"].tolist()[:3]
    np.testing.assert_array_equal(checked.query_cols, checked.ref_cols)


# --------------------------------------------------------------------------- candidates


def test_reference_labelled_in_its_own_words_maps_onto_the_users_candidates(caplog):
    types = sorted(["NAIVE_CD4_T_CELLS", "B_CELLS", "CD14_MONOCYTES", "NK_CELLS", "PLATELET"])
    candidates = ["B cell", "naive CD4 T cell", "CD14 monocyte", "NK cell", "plasma cell"]
    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        cmap = map_candidates(types, candidates, ontology=False)
    assert cmap.type_of == {
        "B cell": "B_CELLS",
        "naive CD4 T cell": "NAIVE_CD4_T_CELLS",
        "CD14 monocyte": "CD14_MONOCYTES",
        "NK cell": "NK_CELLS",
    }
    assert cmap.unmatched == ["plasma cell"]
    assert cmap.unused_types == ["PLATELET"]
    assert cmap.candidates == candidates  # the model sees the user's names
    uns = cmap.as_uns()
    assert uns["unmatched_candidates"] == ["plasma cell"]
    assert uns["unused_reference_labels"] == ["PLATELET"]
    text = caplog.text
    assert "'plasma cell'" in text and "name no reference label" in text
    assert "'PLATELET'" in text and "match no candidate" in text


def test_reference_labels_match_candidates_through_cell_ontology_synonyms():
    pytest.importorskip("cellxgene_ontology_guide")
    cmap = map_candidates(["NATURAL_KILLER_CELL", "B_CELL"], ["NK cell", "B cell"], ontology=True)
    assert cmap.type_of == {"NK cell": "NATURAL_KILLER_CELL", "B cell": "B_CELL"}


def test_without_candidates_the_reference_labels_are_the_candidates():
    cmap = map_candidates(["B", "NK"], None, ontology=False)
    assert cmap.candidates == ["B", "NK"]
    assert cmap.candidate_of == {"B": "B", "NK": "NK"}
    assert cmap.unmatched == [] and cmap.unused_types == []


def test_two_candidates_for_one_reference_label_keep_the_first(caplog):
    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        cmap = map_candidates(["T_CELL", "B_CELL"], ["T cell", "T-cells", "B cell"], ontology=False)
    assert cmap.type_of == {"T cell": "T_CELL", "B cell": "B_CELL"}
    assert cmap.unmatched == ["T-cells"]
    assert "both name the reference label 'T_CELL'" in caplog.text


# --------------------------------------------------------------------------- the prior


def test_ingest_prior_gives_each_cluster_its_type_with_share_and_distribution(split, ingest_prior):
    _, query = split
    checked, prior, before, after = ingest_prior
    truth = list(query.obs["cell_type"].cat.categories)
    assert prior.method == "ingest"
    assert prior.label == truth  # each true-type cluster's most frequent transferred label
    for k, dist in enumerate(prior.distribution):
        assert prior.share[k] == max(dist.values()) > 0.5
        assert sum(dist.values()) == pytest.approx(1.0)
        assert next(iter(dist)) == prior.label[k]
        assert set(dist) <= set(checked.types)
    cell_truth = query.obs["cell_type"].astype(str).to_numpy()
    assert (prior.cell_labels == cell_truth).mean() > 0.8
    assert prior.params["n_genes"] == 2000 and prior.params["n_neighbors"] == 15
    assert prior.params["reference_log_normalised_here"] is False  # X is log1p(CP10k) already
    assert before == after  # neither AnnData touched


def test_prior_is_the_same_from_counts_as_from_log_normalised_expression(split, ingest_prior):
    """Counts are log-normalised on the copy: the prior from layers['counts'] matches X's."""
    ref, query = split
    _, prior, _, _ = ingest_prior
    checked = check_reference(
        ref,
        reference_key="cell_type",
        query_genes=list(query.var_names),
        n_genes=50,
        reference_layer="counts",
    )
    codes = query.obs["cell_type"].cat.codes.to_numpy()
    again = transfer_labels(query.layers["counts"], checked, codes=codes, n_clusters=9, seed=0)
    assert again.params["reference_log_normalised_here"] is True
    assert again.params["query_log_normalised_here"] is True
    assert again.label == prior.label
    assert (again.cell_labels == prior.cell_labels).mean() > 0.97


def test_label_transfer_that_cannot_run_says_what_to_change(ref_query):
    ref, query = ref_query
    small = ref[:10].copy()
    checked = _check(small, query)
    codes = np.zeros(query.n_obs, dtype=np.int64)
    with pytest.raises(ValueError, match=r"reference_n_neighbors`=15 .* 10\b.*lower"):
        transfer_labels(query.X, checked, codes=codes, n_clusters=1)
    with pytest.raises(ValueError, match="reference_prior` must be one of"):
        check_prior_args("knn", None, None)
    with pytest.raises(ValueError, match="reference_prior='scanvi'"):
        check_prior_args("ingest", object(), None)


def test_scanvi_prior_needs_raw_counts_and_says_which_layer(ref_query):
    pytest.importorskip("scvi")
    ref, query = ref_query
    checked = _check(ref, query)
    codes = query.obs["cell_type"].cat.codes.to_numpy()
    with pytest.raises(ValueError, match=r"raw counts.*layer='counts'"):
        transfer_labels(query.X, checked, codes=codes, n_clusters=9, method="scanvi")
    with pytest.raises(TypeError, match=r"trained `scvi\.model\.SCANVI`"):
        check_prior_args("scanvi", object(), None)


@pytest.mark.slow
def test_scanvi_prior_maps_the_query_scarches_style(ref_query):
    pytest.importorskip("scvi")
    ref, query = ref_query
    checked = _check(ref, query, reference_layer="counts")
    codes = query.obs["cell_type"].cat.codes.to_numpy()
    before = (_fingerprint(ref), _fingerprint(query))
    prior = transfer_labels(
        query.layers["counts"],
        checked,
        codes=codes,
        n_clusters=9,
        method="scanvi",
        max_epochs=3,
        n_top_genes=1000,
    )
    assert (_fingerprint(ref), _fingerprint(query)) == before
    assert prior.method == "scanvi"
    assert set(prior.cell_labels) <= set(checked.types)
    import scvi

    assert prior.params["scvi_version"] == scvi.__version__
    assert prior.params["max_epochs"] == 3
    # a few epochs already place the large, distinct types
    truth = list(query.obs["cell_type"].cat.categories)
    right = sum(p == t for p, t in zip(prior.label, truth, strict=True))
    assert right >= 4, prior.label


# --------------------------------------------------------------------------- known cells


def test_known_cells_are_distinct_cells_of_their_type_nearest_the_centroid_first(ingest_prior):
    from sc_cello1.tl._cluster_puzzles import nearest_to_centroid

    checked, prior, _, _ = ingest_prior
    chosen = known_cells(checked, prior.ref_rep, n_samples=4, seed=1)
    assert list(chosen) == checked.types
    for t, rows in chosen.items():
        assert len(rows) == len(set(rows)) == 4
        assert all(checked.labels[r] == t for r in rows)
        members = np.flatnonzero(checked.labels == t)
        assert rows[0] == nearest_to_centroid(prior.ref_rep, members)
    again = known_cells(checked, prior.ref_rep, n_samples=4, seed=1)
    assert again == chosen  # seeded
    few = known_cells(checked, prior.ref_rep, n_samples=10_000, seed=1)
    assert len(few["Platelet"]) == int((checked.labels == "Platelet").sum())


def test_known_cells_top_genes_follow_pp_top_genes_on_the_shared_genes(split, ingest_prior):
    import sc_cello1 as cello1

    ref, _ = split
    checked, prior, _, _ = ingest_prior
    rows = known_cells(checked, prior.ref_rep, n_samples=2, seed=0)["B"]
    genes = known_top_genes(checked, rows, n_genes=50)
    sub = ref[rows][:, checked.shared_genes].copy()
    cello1.pp.top_genes(sub, n_genes=50)
    expected = cello1.get.top_genes(sub)
    for i, r in enumerate(rows):
        assert genes[r] == expected.iloc[i].tolist()


def test_known_cells_top_genes_keep_only_genes_the_query_has(ref_query):
    ref, query = ref_query
    keep = query.var_names[:5000]
    query = query[:, keep].copy()
    checked = _check(ref, query)
    rows = [0, 1, 2]
    genes = known_top_genes(checked, rows, n_genes=50)
    assert all(set(g) <= set(keep) for g in genes.values())


# --------------------------------------------------------------------------- provenance


def test_provenance_records_the_reference_and_a_hash_of_its_labels(ingest_prior):
    checked, prior, _, _ = ingest_prior
    cmap = map_candidates(checked.types, None, ontology=False)
    params = reference_params(checked, cmap, prior.params, n_known_per_type=3, seed=0)
    assert params["n_cells"] == checked.adata.n_obs and params["n_types"] == 9
    assert params["label_key"] == "cell_type"
    expected = hashlib.sha256("\n".join(checked.labels.astype(str)).encode()).hexdigest()
    assert params["labels_sha256"] == expected
    changed = checked.labels.copy()
    changed[0] = "B" if changed[0] != "B" else "NK"
    assert labels_sha256(changed) != expected
    assert params["prior"]["method"] == "ingest"
    assert "nearest the type centroid" in params["known_cells"]["rule"]
    assert None not in params.values()

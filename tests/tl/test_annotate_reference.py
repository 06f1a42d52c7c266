"""tl.annotate against a labelled reference, through the public API.

A reference of half of PBMC 3k (9 types) and a query of the other half, partitioned as
leiden at a high resolution would (over-clustered: each type split into pure clusters
of about 50 cells) and with fewer types than candidates (the clusters of 5 types, the
9 reference labels as candidates). The models are trained-like simulations
(:mod:`tests.tl._reference_backends`): each candidate at most once per puzzle, or every
candidate listed once; each cell's type known with chance ``p``.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
from tests.tl._reference_backends import TruthModel, half_split, partitions, truth_by_genes

import sc_cello1 as cello1


@pytest.fixture(scope="module")
def data(shared_data):
    import anndata as ad

    full = ad.read_h5ad(shared_data / "pbmc3k_clustifyr_9types.h5ad")
    ref, query = half_split(full)
    return truth_by_genes(full), ref, partitions(query)


@pytest.fixture(autouse=True)
def _no_progress():
    # progress bars off for these many runs, restored after (no leak into other tests)
    with cello1.settings.override(progress=False):
        yield


def _run(data, groupby, *, behaviour="permutation", p=1.0, seed=1, **kwargs):
    tbg, ref, query = data
    q = query[query.obs[groupby].notna()].copy()
    out = cello1.tl.annotate(
        q,
        groupby,
        model=TruthModel(tbg, behaviour=behaviour, p=p, seed=seed),
        reference=kwargs.pop("reference", ref),
        reference_key=kwargs.pop("reference_key", "cell_type"),
        ontology=False,
        copy=True,
        **kwargs,
    )
    truth = q.obs.groupby(groupby, observed=True)["cell_type"].first().astype(str)
    table = out.uns["cello1"]["clusters"].reindex(truth.index)
    right = (table["label"].astype(object) == truth.values).to_numpy()
    return out, table, right


@pytest.mark.parametrize("behaviour", ["permutation", "n-items"])
@pytest.mark.parametrize("groupby", ["over", "fewer"])
def test_a_right_model_gives_every_cluster_its_type_with_a_reference(data, groupby, behaviour):
    out, table, right = _run(data, groupby, behaviour=behaviour, p=1.0)
    assert right.all(), table[~right]
    assert (table["confidence"] >= 0.75).mean() > 0.9
    puzzles = out.uns["cello1"]["puzzles"]
    # known cells fill the puzzles towards N cells and N candidates
    assert (puzzles["n_cells"] == puzzles["n_candidates"]).any()
    voted = puzzles[puzzles["voted"]]
    if behaviour == "n-items":  # such a model votes only with N cells
        assert (voted["n_cells"] == voted["n_candidates"]).all()
    assert (puzzles["n_known"] > 0).any()
    assert voted["known_score"].dropna().mean() >= 0.95
    ref_table = out.uns["cello1"]["reference"]
    assert ref_table["agrees"].mean() > 0.8
    assert out.uns["cello1"]["params"]["reference"]["known_score"] > 0.95


@pytest.mark.parametrize("behaviour", ["permutation", "n-items"])
def test_a_model_knowing_70_percent_of_cells_gets_90_percent_of_clusters(data, behaviour):
    rights, wrong_high = [], 0
    for groupby in ("over", "fewer"):
        _, table, right = _run(data, groupby, behaviour=behaviour, p=0.7)
        rights.append(right)
        wrong_high += int((table["confidence"].to_numpy()[~right] > 0.5).sum())
    assert np.concatenate(rights).mean() >= 0.9
    assert wrong_high == 0


def test_a_model_answering_known_cells_at_random_ends_with_low_confidence_and_a_warning(
    data, caplog
):
    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        out, table, _ = _run(data, "over", p=0.0)
    assert table["confidence"].max() <= 0.3
    assert "known-cell score" in caplog.text
    assert "(one_to_one)" not in caplog.text  # unlabelled because voided, said so
    score = out.uns["cello1"]["params"]["reference"]["known_score"]
    assert score < 0.3 and f"{score:.2f}" in caplog.text
    assert out.uns["cello1"]["puzzles"]["conflict"].astype(bool).mean() > 0.5


def test_reference_second_opinion_is_written_per_cell_and_never_votes(data):
    out, table, _ = _run(data, "fewer", p=1.0)
    obs = out.obs
    assert {"cello1_reference", "cello1_reference_share", "cello1_reference_agrees"} <= set(
        obs.columns
    )
    ref_table = out.uns["cello1"]["reference"]
    # per cell: the prior of its cluster
    first = obs.groupby("fewer", observed=True)["cello1_reference"].first().astype(str)
    assert (first.reindex(ref_table.index) == ref_table["reference_label"]).all()
    share = obs.groupby("fewer", observed=True)["cello1_reference_share"].first()
    np.testing.assert_allclose(share.reindex(ref_table.index), ref_table["reference_share"])
    agrees = obs["cello1_reference_agrees"].to_numpy()
    same = (obs["cello1"].astype(object) == obs["cello1_reference"].astype(object)).to_numpy()
    np.testing.assert_array_equal(agrees, same)
    # votes only from answers: every counted vote is an answer item of a query cell
    reasoning = out.uns["cello1"]["reasoning"]
    counted = reasoning[reasoning["counted"]]
    assert (counted["known"] == "").all()
    assert (counted["matched"] == counted["answer"]).all()
    votes = out.uns["cello1"]["votes"].groupby("cluster")["votes"].sum()
    assert (
        votes.reindex(table.index) == counted.groupby("cluster").size().reindex(table.index)
    ).all()


def test_known_cells_are_reference_cells_and_the_context_is_the_query_donors(data):
    _, ref, query = data
    q = query[query.obs["fewer"].notna()].copy()
    q.obs["sex"] = "female"
    q.obs["tissue"] = "blood"
    out = cello1.tl.annotate(
        q,
        "fewer",
        model=TruthModel(data[0]),
        reference=ref,
        reference_key="cell_type",
        ontology=False,
        copy=True,
    )
    puzzles = out.uns["cello1"]["puzzles"]
    for _, row in puzzles.iterrows():
        ids = json.loads(row["cell_ids"])
        known = json.loads(row["known"])
        for cid, k in zip(ids, known, strict=True):
            if k is None:
                assert cid in q.obs_names
            else:
                name = cid.removeprefix("reference:")
                assert name in ref.obs_names and ref.obs.loc[name, "cell_type"] == k
        assert row["user_msg"].startswith("Context: The cell is from a female")


def test_reference_labels_in_their_own_words_map_onto_the_users_candidates(data, caplog):
    _, ref, _ = data
    own = ref.copy()
    own.obs["label"] = own.obs["cell_type"].astype(str).str.upper().str.replace(" ", "_")
    own.obs["label"] = own.obs["label"].str.replace("+", "", regex=False)
    candidates = ["B", "CD14 Mono", "CD8 T", "NK", "Naive CD4 T", "Plasma cell"]
    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        out, table, _ = _run(
            data, "fewer", reference=own, reference_key="label", candidates=candidates
        )
    names = out.uns["cello1"]["candidates"]
    assert names["candidate_source"] == "user"
    mapping = dict(
        zip(names["reference"]["candidates"], names["reference"]["reference_labels"], strict=True)
    )
    assert mapping["CD14 Mono"] == "CD14_MONO" and mapping["Naive CD4 T"] == "NAIVE_CD4_T"
    assert names["reference"]["unmatched_candidates"] == ["Plasma cell"]
    assert "'Plasma cell'" in caplog.text
    # labels are the user's names; CD14+ Mono clusters get "CD14 Mono"
    assert set(table["label"].astype(str)) <= set(candidates)
    assert (table["label"].astype(str) == "CD14 Mono").sum() > 0


def test_provenance_records_the_reference(data):
    _, ref, _ = data
    out, _, _ = _run(data, "fewer", p=1.0)
    params = out.uns["cello1"]["params"]
    rp = params["reference"]
    assert rp["n_cells"] == ref.n_obs and rp["n_types"] == 9 and rp["label_key"] == "cell_type"
    labels = "\n".join(ref.obs["cell_type"].astype(str))
    assert rp["labels_sha256"] == hashlib.sha256(labels.encode()).hexdigest()
    assert rp["prior"]["method"] == "ingest" and rp["prior"]["n_neighbors"] == 15
    assert params["reference_prior"] == "ingest"
    assert params["n_known_cells_asked"] > 0
    assert out.uns["cello1"]["candidates"]["candidate_source"] == "reference"


class _NeverCalled:
    name = "never"

    def generate(self, *a, **k):  # pragma: no cover - the test fails if reached
        raise AssertionError("the model must not be asked")

    def provenance(self):
        return {"backend": "never"}


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"reference_key": "celltype"}, KeyError, "reference_key="),
        ({"reference_key": None}, ValueError, "reference_key"),
        ({"reference_prior": "knn"}, ValueError, "reference_prior"),
        ({"reference_layer": "spliced"}, KeyError, "reference_layer="),
        ({"reference": None, "reference_key": "cell_type"}, ValueError, "without `reference`"),
    ],
)
def test_bad_reference_arguments_fail_before_any_model_is_asked(data, kwargs, error, words):
    _, ref, query = data
    q = query[query.obs["fewer"].notna()].copy()
    before = (q.obs.copy(), dict(q.uns), ref.obs.copy())
    args = {"reference": ref, "reference_key": "cell_type", **kwargs}
    with pytest.raises(error) as info:
        cello1.tl.annotate(q, "fewer", model=_NeverCalled(), ontology=False, **args)
    assert words in str(info.value) + " ".join(getattr(info.value, "__notes__", []))
    assert q.obs.equals(before[0]) and dict(q.uns).keys() == before[1].keys()
    assert ref.obs.equals(before[2])


def test_cli_annotates_against_a_reference_file_through_a_served_model(data, tmp_path, capsys):
    import anndata as ad
    from tests.tl._annotate_backends import ScriptServer

    from sc_cello1.cli import main

    tbg, ref, query = data
    q = query[query.obs["fewer"].notna()].copy()
    q.write_h5ad(tmp_path / "query.h5ad")
    ref.write_h5ad(tmp_path / "ref.h5ad")
    truth = TruthModel(tbg, behaviour="permutation")

    def script(genes, candidates, call):
        return truth._answer([tbg[tuple(g)] for g in genes], candidates)

    with ScriptServer(script) as srv:
        rc = main(
            [
                "annotate", str(tmp_path / "query.h5ad"), "--groupby", "fewer",
                "--reference", str(tmp_path / "ref.h5ad"), "--reference-key", "cell_type",
                "--model", "served", "--backend", "openai", "--base-url", srv.url,
                "--no-ontology", "-o", str(tmp_path / "out.h5ad"),
            ]
        )  # fmt: skip
    assert rc == 0
    out = ad.read_h5ad(tmp_path / "out.h5ad")
    truth_by_cluster = q.obs.groupby("fewer", observed=True)["cell_type"].first().astype(str)
    labels = out.uns["cello1"]["clusters"]["label"].astype(str).reindex(truth_by_cluster.index)
    assert (labels == truth_by_cluster).all()
    assert "cello1_reference" in out.obs.columns
    assert out.uns["cello1"]["params"]["reference"]["label_key"] == "cell_type"
    assert "known-cell score" in capsys.readouterr().out

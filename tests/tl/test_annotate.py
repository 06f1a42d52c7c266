"""Tests of ``cello1.tl.annotate`` (src/sc_cello1/tl/_annotate.py).

Logic with a known right answer (votes, splitting, donors, context) runs on a scripted
test-double backend that names each cell by its marker gene; everything else runs real
models: the tiny random Qwen2 (structure, repair, interrupts, CLI) and SmolLM2-135M on
real data (pbmc68k_reduced and the shared pbmc3k file).
"""

from __future__ import annotations

import inspect
import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from tests.tl._annotate_backends import (
    InterruptingBackend,
    ScriptedBackend,
    marker_oracle,
    permutation_model,
)

import sc_cello1 as cello1
from sc_cello1.data._prompts import parse_user_msg

TYPES = [f"type {chr(65 + i)}" for i in range(26)]


def marker_adata(n_clusters=6, per=8, n_bg=40, seed=0, donors=None, types=None):
    """Clusters whose cells have one marker gene MK{k} far above the background."""
    rng = np.random.default_rng(seed)
    genes = [f"MK{k}" for k in range(n_clusters)] + [f"BG{j}" for j in range(n_bg)]
    n = n_clusters * per
    X = rng.random((n, len(genes))) * 0.5
    cl = np.repeat(np.arange(n_clusters), per)
    X[np.arange(n), cl] = 5 + rng.random(n)
    obs = pd.DataFrame(
        {"leiden": pd.Categorical([str(c) for c in cl])}, index=[f"cell{i}" for i in range(n)]
    )
    if donors is not None:
        obs["donor"] = donors(cl)
    adata = ad.AnnData(
        sparse.csr_matrix(X.astype(np.float32)), obs=obs, var=pd.DataFrame(index=genes)
    )
    types = types or TYPES[:n_clusters]
    markers = {f"MK{k}": types[k] for k in range(n_clusters)}
    return adata, markers


def snapshot(adata):
    return adata.copy()


def assert_unchanged(adata, before):
    assert list(adata.obs.columns) == list(before.obs.columns)
    pd.testing.assert_frame_equal(adata.obs, before.obs)
    assert set(adata.uns) == set(before.uns)
    assert (
        (adata.X != before.X).nnz == 0
        if sparse.issparse(adata.X)
        else np.array_equal(adata.X, before.X)
    )


# ----------------------------------------------------------------------------- logic


def test_one_to_one_oracle_labels_every_cluster_and_records_everything():
    adata, markers = marker_adata(6)
    backend = ScriptedBackend(marker_oracle(markers))
    candidates = TYPES[:6][::-1]
    out = cello1.tl.annotate(
        adata, candidates=candidates, model=backend, n_genes=5, n_samples=3, seed=1, one_to_one=True
    )
    assert out is None
    expected = {str(k): TYPES[k] for k in range(6)}
    assert adata.obs["cello1"].astype(str).tolist() == [expected[c] for c in adata.obs["leiden"]]
    assert isinstance(adata.obs["cello1"].dtype, pd.CategoricalDtype)
    assert adata.obs["cello1_confidence"].tolist() == [1.0] * adata.n_obs
    uns = adata.uns["cello1"]
    assert set(uns) == {
        "params",
        "candidates",
        "clusters",
        "votes",
        "unmatched",
        "reasoning",
        "puzzles",
    }
    assert uns["candidates"]["candidate_source"] == "user"
    assert len(uns["unmatched"]) == 0
    table = uns["clusters"]
    assert table.index.tolist() == [str(k) for k in range(6)]
    assert table["label"].astype(str).tolist() == TYPES[:6]
    assert table["votes"].tolist() == [3] * 6
    assert table["n_asked"].tolist() == [3] * 6
    assert table["n_cells"].tolist() == [8] * 6
    votes = uns["votes"].pivot(index="cluster", columns="candidate", values="votes")
    assert votes.shape == (6, 6)
    assert votes.to_numpy().sum() == 18
    assert all(votes.loc[str(k), TYPES[k]] == 3 for k in range(6))
    # one puzzle per sample, candidates sorted, 6 cells shuffled
    puzzles = uns["puzzles"]
    assert len(puzzles) == 3 and backend.calls == 3
    for msg, clusters in zip(puzzles["user_msg"], puzzles["clusters"], strict=True):
        _context, genes, shown = parse_user_msg(msg)
        assert shown == sorted(candidates)
        assert [g[0] for g in genes] == [f"MK{c}" for c in json.loads(clusters)]
        assert len(genes[0]) == 5
    assert len({p for p in puzzles["clusters"]}) > 1  # cell order differs between samples
    assert puzzles["valid_format"].all() and puzzles["is_permutation"].all()
    # the reasoning of every cluster in every sample
    assert len(uns["reasoning"]) == 18
    assert set(uns["puzzles"]["reasoning"]) == {"scripted"}  # stored once per puzzle
    assert (uns["reasoning"]["answer"] == uns["reasoning"]["matched"]).all()
    params = uns["params"]
    for name in inspect.signature(cello1.tl.annotate).parameters:
        if name not in ("adata", "unique", "cache_dir"):
            assert name in params, name
    assert params["model_name"] == "scripted-oracle"
    assert params["model_revision"] == "test-1"
    assert params["prompt_version"] == cello1.data.PROMPT_VERSION
    assert params["version"] == cello1.__version__
    assert params["candidates"] == candidates
    assert params["assignment"] == "one_to_one"


def test_sample_zero_is_the_cell_nearest_the_centroid():
    adata, markers = marker_adata(3, per=10)
    cello1.tl.annotate(
        adata,
        candidates=TYPES[:3],
        model=ScriptedBackend(marker_oracle(markers)),
        n_genes=3,
        n_samples=2,
    )
    X = adata.X.toarray()
    rows = adata.uns["cello1"]["reasoning"]
    for cluster in "012":
        members = np.flatnonzero(adata.obs["leiden"] == cluster)
        d = ((X[members] - X[members].mean(axis=0)) ** 2).sum(axis=1)
        first = rows[(rows["cluster"] == cluster) & (rows["round"] == 1)]["cell_id"].item()
        assert first == adata.obs_names[members[np.argmin(d)]]
        second = rows[(rows["cluster"] == cluster) & (rows["round"] == 2)]["cell_id"].item()
        assert second != first and second in set(adata.obs_names[members])


def test_more_candidates_than_clusters_leaves_types_unused():
    adata, markers = marker_adata(4)
    cello1.tl.annotate(
        adata,
        candidates=TYPES[:7],
        model=ScriptedBackend(permutation_model(markers)),
        n_genes=5,
        n_samples=2,
        one_to_one=True,
    )
    assert adata.uns["cello1"]["clusters"]["label"].astype(str).tolist() == TYPES[:4]
    assert list(adata.obs["cello1"].cat.categories) == TYPES[:4]
    for msg in adata.uns["cello1"]["puzzles"]["user_msg"]:
        _, genes, shown = parse_user_msg(msg)
        assert len(genes) == 4 and shown == TYPES[:7]
    # the default: the same layout, every cluster in each puzzle (as close to N = 7 as 4 allow)
    cello1.tl.annotate(
        adata,
        candidates=TYPES[:7],
        model=ScriptedBackend(permutation_model(markers)),
        n_genes=5,
        n_samples=2,
    )
    puzzles = adata.uns["cello1"]["puzzles"]
    assert puzzles["n_cells"].tolist() == [4, 4]
    assert adata.uns["cello1"]["clusters"]["label"].astype(str).tolist() == TYPES[:4]


def test_more_clusters_than_candidates_split_and_repeat_types():
    # 8 clusters of 4 types: clusters k and k + 4 share a type
    types = [TYPES[k % 4] for k in range(8)]
    adata, markers = marker_adata(8, types=types)
    cello1.tl.annotate(
        adata,
        candidates=TYPES[:4],
        model=ScriptedBackend(permutation_model(markers)),
        n_genes=5,
        n_samples=3,
    )
    uns = adata.uns["cello1"]
    assert uns["params"]["assignment"] == "plurality"
    assert uns["clusters"]["label"].astype(str).tolist() == types
    assert (uns["clusters"]["confidence"] >= 0.75).all()
    puzzles = uns["puzzles"]
    first = puzzles[puzzles["round"] == 1]
    assert first["n_cells"].tolist() == [4, 4]
    assert sorted(c for cl in first["clusters"] for c in json.loads(cl)) == [
        str(k) for k in range(8)
    ]
    # known cells (decided clusters as anchors) in one puzzle carry distinct labels
    for clusters, known in zip(puzzles["clusters"], puzzles["known"], strict=True):
        assert len(json.loads(clusters)) <= 4
        labels = [k for k in json.loads(known) if k]
        assert len(set(labels)) == len(labels)
    assert uns["params"]["cells_per_cluster"] <= 3 * 3


def test_more_than_15_clusters_are_split_into_trained_sizes():
    adata, markers = marker_adata(18, per=4, n_bg=20)
    cello1.tl.annotate(
        adata,
        candidates=TYPES[:18],
        model=ScriptedBackend(permutation_model(markers)),
        n_genes=3,
        n_samples=2,
    )
    uns = adata.uns["cello1"]
    # two puzzles of 9 clusters each, padded with further clusters to the trained 15
    assert uns["puzzles"]["n_cells"].tolist()[:2] == [15, 15]
    assert (uns["puzzles"]["n_cells"] <= 15).all()
    assert uns["params"]["assignment"] == "plurality"
    table = uns["clusters"]
    assert table["label"].astype(str).tolist() == [TYPES[int(c)] for c in table.index]


def test_donor_key_builds_puzzles_per_donor():
    def donors(cl):
        # donor A has clusters 0-3, donor B clusters 2-5 (clusters 2, 3 in both)
        out = np.where(cl < 2, "A", "B").astype(object)
        out[(cl >= 2) & (cl <= 3)] = np.tile(["A", "B"], int(((cl >= 2) & (cl <= 3)).sum() // 2))
        return pd.Categorical(out)

    adata, markers = marker_adata(6, donors=donors)
    adata.obs["sex"] = np.where(adata.obs["donor"] == "A", "female", "male")
    cello1.tl.annotate(
        adata,
        candidates=TYPES[:6],
        donor_key="donor",
        model=ScriptedBackend(marker_oracle(markers)),
        n_genes=3,
        n_samples=2,
        one_to_one=True,
    )
    uns = adata.uns["cello1"]
    puzzles = uns["puzzles"]
    assert sorted(puzzles["donor"]) == ["A", "A", "B", "B"]
    for _, p in puzzles.iterrows():
        cells = json.loads(p["cell_ids"])
        assert set(adata.obs.loc[cells, "donor"]) == {p["donor"]}
        sex = "female" if p["donor"] == "A" else "male"
        assert p["user_msg"].startswith(f"Context: The cell is from a {sex} \n\n")
    assert sorted(json.loads(puzzles[puzzles["donor"] == "A"]["clusters"].iloc[0])) == [
        "0",
        "1",
        "2",
        "3",
    ]
    # n_samples asks per cluster as a query, pooled over donors: clusters 2 and 3 once in
    # each donor; an anchor's answer (a decided cluster shown as a known cell) is an ask too
    rows = uns["reasoning"]
    anchors = rows[rows["known"] != ""].groupby("cluster").size()
    rows = rows[rows["known"] == ""]
    assert rows.groupby("cluster").size().tolist() == [2] * 6
    expected = [2 + int(anchors.get(c, 0)) for c in uns["clusters"].index]
    assert uns["clusters"]["n_asked"].tolist() == expected
    for c in "23":
        assert sorted(rows[rows["cluster"] == c]["donor"]) == ["A", "B"]
    assert uns["clusters"]["label"].astype(str).tolist() == TYPES[:6]


def test_context_string_callable_and_cellxgene_columns():
    adata, markers = marker_adata(3)
    adata.obs["tissue"] = "lung"
    adata.obs["disease"] = "normal"
    backend = ScriptedBackend(marker_oracle(markers))
    kw = {"candidates": TYPES[:3], "model": backend, "n_genes": 3, "n_samples": 1}
    cello1.tl.annotate(adata, **kw)
    sentence = "The cell is from, originating from the lung. The patient is healthy with no diagnosed disease."
    assert parse_user_msg(adata.uns["cello1"]["puzzles"]["user_msg"].iloc[0])[0] == sentence
    cello1.tl.annotate(adata, context="The cell is from a mouse.", **kw)
    assert (
        parse_user_msg(adata.uns["cello1"]["puzzles"]["user_msg"].iloc[0])[0]
        == "The cell is from a mouse."
    )
    cello1.tl.annotate(adata, context=lambda rows: f"First cell {rows.index[0]}.", **kw)
    msg = adata.uns["cello1"]["puzzles"]["user_msg"].iloc[0]
    first = json.loads(adata.uns["cello1"]["puzzles"]["cell_ids"].iloc[0])[0]
    assert parse_user_msg(msg)[0] == f"First cell {first}."
    assert adata.uns["cello1"]["params"]["context"].endswith("<lambda>")


def test_votes_and_confidence_follow_disagreement():
    adata, markers = marker_adata(5)
    oracle = marker_oracle(markers)

    def script(genes, candidates, call):
        labels = oracle(genes, candidates, call)
        return labels if call != 4 else labels[1:] + labels[:1]  # the 4th puzzle is all wrong

    cello1.tl.annotate(
        adata,
        candidates=TYPES[:5],
        model=ScriptedBackend(script),
        n_genes=3,
        n_samples=4,
        one_to_one=True,
    )
    table = adata.uns["cello1"]["clusters"]
    assert table["label"].astype(str).tolist() == TYPES[:5]
    assert table["confidence"].tolist() == [0.75] * 5
    votes = adata.uns["cello1"]["votes"].pivot(index="cluster", columns="candidate", values="votes")
    assert (votes.to_numpy().sum(axis=1) == 4).all()
    assert (np.diag(votes.loc[[str(k) for k in range(5)], TYPES[:5]].to_numpy()) == 3).all()


def test_short_and_unusable_answers_cast_no_votes(caplog):
    adata, markers = marker_adata(4)
    model = permutation_model(markers)

    def script(genes, candidates, call):
        if call == 1:
            return model(genes, candidates, call)[:2]  # only two cells named
        if call == 2:
            return "<think>type A | type B | type C | type D</think>"  # cut off
        return "I cannot tell."

    with caplog.at_level("WARNING", logger="sc_cello1"):
        cello1.tl.annotate(
            adata, candidates=TYPES[:4], model=ScriptedBackend(script), n_genes=3, n_samples=2
        )
    uns = adata.uns["cello1"]
    table = uns["clusters"]
    assert table["label"].isna().all() and (table["confidence"] == 0).all()
    assert uns["votes"]["votes"].sum() == 0
    assert adata.obs["cello1"].isna().all()
    reasons = uns["puzzles"]["reason"].tolist()
    assert reasons[:2] == ["2 items for 4 cells", "no answer tag"]
    assert not uns["puzzles"]["valid_format"].any() and not uns["puzzles"]["voted"].any()
    # asked again until the budget (3 x n_samples cells per cluster) is spent, or no
    # other cluster is left to share a puzzle with (no 1-cell puzzle)
    assert table["n_asked"].between(5, 6).all() and table["n_asked"].max() == 6
    assert "gave no votes: no answer tag x" in caplog.text


def test_default_lets_clusters_share_a_type_and_one_to_one_does_not():
    adata, _ = marker_adata(3)
    backend = ScriptedBackend(lambda genes, candidates, call: [candidates[0]] * len(genes))
    cello1.tl.annotate(adata, candidates=TYPES[:3], model=backend, n_genes=3, n_samples=3)
    assert set(adata.obs["cello1"].astype(str)) == {TYPES[0]}
    assert adata.uns["cello1"]["params"]["assignment"] == "plurality"
    with pytest.warns(FutureWarning, match="unique"):
        cello1.tl.annotate(
            adata, candidates=TYPES[:3], model=backend, n_genes=3, n_samples=3, unique=True
        )
    # unique=True: each answer is repaired into a permutation, so the labels are distinct
    uns = adata.uns["cello1"]
    assert uns["params"]["assignment"] == "one_to_one"
    for repaired in uns["puzzles"]["repaired"]:
        assert len(set(repaired.split(" | "))) == len(repaired.split(" | "))
    assert uns["clusters"]["label"].dropna().is_unique
    assert not uns["puzzles"]["is_permutation"].any()  # the raw answers were not


def test_old_cache_dir_keyword_warns_and_is_the_answer_dir(tmp_path):
    adata, _ = marker_adata(3)
    backend = ScriptedBackend(lambda genes, candidates, call: [candidates[0]] * len(genes))
    kw = {"candidates": TYPES[:3], "model": backend, "n_genes": 3, "n_samples": 2}
    with pytest.warns(FutureWarning, match=r"cache_dir= -> answer_dir="):
        cello1.tl.annotate(adata, **kw, cache_dir=tmp_path)
    params = adata.uns["cello1"]["params"]
    assert params["answer_dir"] == str(tmp_path) and "cache_dir" not in params
    n_stored = len(list(tmp_path.glob("*.json")))
    assert n_stored > 0
    calls = backend.calls
    cello1.tl.annotate(adata, **kw, answer_dir=tmp_path)  # every puzzle from the cache
    assert backend.calls == calls and len(list(tmp_path.glob("*.json"))) == n_stored
    with pytest.raises(TypeError, match=r"both cache_dir= \(old name\) and answer_dir="):
        cello1.tl.annotate(adata, **kw, cache_dir=tmp_path, answer_dir=tmp_path)


def test_model_name_is_read_from_the_model_key_or_the_old_name_key():
    from sc_cello1.inference._resolve import model_name_of

    assert model_name_of({"backend": "b", "model": "m", "name": "old"}) == "m"
    assert model_name_of({"name": "old"}) == "old"  # earlier releases, a user's backend
    adata, _ = marker_adata(3)

    class NamedByName(ScriptedBackend):
        def provenance(self):
            return {"backend": "own", "name": "by-name", "revision": "r"}

    backend = NamedByName(lambda genes, candidates, call: [candidates[0]] * len(genes))
    cello1.tl.annotate(adata, candidates=TYPES[:3], model=backend, n_genes=3, n_samples=2)
    assert adata.uns["cello1"]["params"]["model_name"] == "by-name"


def test_copy_returns_annotated_copy_and_view_input_works():
    adata, markers = marker_adata(3)
    before = snapshot(adata)
    out = cello1.tl.annotate(
        adata,
        candidates=TYPES[:3],
        model=ScriptedBackend(marker_oracle(markers)),
        n_genes=3,
        n_samples=1,
        copy=True,
        key_added="ct",
    )
    assert_unchanged(adata, before)
    assert "ct" in out.obs and "ct_confidence" in out.obs and "ct" in out.uns
    view = adata[adata.obs["leiden"] != "2"]
    cello1.tl.annotate(
        view,
        candidates=TYPES[:3],
        model=ScriptedBackend(marker_oracle(markers)),
        n_genes=3,
        n_samples=1,
    )
    assert not view.is_view
    assert view.uns["cello1"]["clusters"].index.tolist() == ["0", "1"]


def test_cells_without_cluster_get_no_label():
    adata, markers = marker_adata(3)
    adata.obs.loc[adata.obs_names[:3], "leiden"] = np.nan
    cello1.tl.annotate(
        adata, candidates=TYPES[:3], model=ScriptedBackend(marker_oracle(markers)), n_genes=3
    )
    assert adata.obs["cello1"].iloc[:3].isna().all()
    assert adata.obs["cello1_confidence"].iloc[:3].isna().all()
    assert adata.obs["cello1"].iloc[3:].notna().all()
    assert adata.uns["cello1"]["clusters"]["n_cells"].tolist() == [5, 8, 8]
    assert not set(adata.obs_names[:3]) & {
        c for ids in adata.uns["cello1"]["puzzles"]["cell_ids"] for c in json.loads(ids)
    }


def test_results_survive_h5ad_roundtrip_with_slashes_in_names(tmp_path):
    import warnings

    types = ["CD4+/CD25 T Reg", "CD8+/CD45RA+ Naive", "B/plasma"]
    adata, markers = marker_adata(3, types=types)
    adata.obs["leiden"] = adata.obs["leiden"].cat.rename_categories(["c/0", "c/1", "c/2"])
    cello1.tl.annotate(
        adata,
        candidates=types,
        model=ScriptedBackend(marker_oracle(markers)),
        n_genes=3,
        n_samples=2,
        backend_kwargs={"api_key": "secret-value", "timeout": 5},
    )
    path = tmp_path / "a.h5ad"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adata.write_h5ad(path)
    assert not [w for w in caught if "slash" in str(w.message).lower()]
    back = ad.read_h5ad(path)
    uns, got = adata.uns["cello1"], back.uns["cello1"]
    for part in ("clusters", "votes", "reasoning", "puzzles"):
        pd.testing.assert_frame_equal(
            got[part], uns[part], check_dtype=False, check_categorical=False
        )
    assert got["clusters"]["label"].astype(str).tolist() == types
    assert back.obs["cello1"].astype(str).tolist() == adata.obs["cello1"].astype(str).tolist()
    assert got["params"]["backend_kwargs"] == {"api_key": "<redacted>", "timeout": 5}
    assert "secret-value" not in path.read_bytes().decode("latin-1")
    view = cello1.pl.reasoning(back, "c/1", sample=1)
    assert view.label == types[1] and view.answer == types[1]


def test_string_and_integer_groupby_columns_are_taken_as_categories():
    adata, markers = marker_adata(3)
    adata.obs["as_str"] = adata.obs["leiden"].astype(str)
    adata.obs["as_int"] = adata.obs["leiden"].astype(int)
    for key in ("as_str", "as_int"):
        cello1.tl.annotate(
            adata,
            key,
            candidates=TYPES[:3],
            model=ScriptedBackend(marker_oracle(markers)),
            n_genes=3,
            n_samples=1,
        )
        assert adata.uns["cello1"]["clusters"]["label"].astype(str).tolist() == TYPES[:3]
    assert adata.obs["as_str"].dtype == object  # the caller's column is not converted


# ----------------------------------------------------------------------------- bad input


BAD_INPUTS = [
    (
        {"groupby": "leiden_missing"},
        KeyError,
        r"`obs\['leiden_missing'\]` not found; run `sc.tl.leiden` first",
    ),
    ({"groupby": "score"}, TypeError, "holds floats"),
    ({"candidates": []}, ValueError, "`candidates` is empty"),
    ({"candidates": "type A"}, TypeError, "not one string"),
    ({"candidates": ["type A", "type A"]}, ValueError, "the same name"),
    ({"candidates": ["type A", "Type a"]}, ValueError, "the same name"),
    ({"candidates": ["T cell", "T-cells"]}, ValueError, "the same name"),
    ({"use_rep": "X_scVI"}, KeyError, r"`obsm\['X_scVI'\]` not found"),
    ({"ontology": "yes"}, TypeError, "`ontology` must be"),
    ({"tie_order": "random"}, ValueError, "tie_order='random'"),
    ({"candidates": ["type A", "B | C"]}, ValueError, "contains '\\|'"),
    ({"candidates": ["type A", " "]}, ValueError, "empty"),
    ({"layer": "counts"}, KeyError, "layer 'counts' not found"),
    ({"use_raw": True}, KeyError, "adata.raw is not set"),
    ({"layer": "scaled"}, ValueError, "negative values.*layer="),
    ({"gene_symbols": "symbol"}, KeyError, r"var\['symbol'\] not found"),
    ({"n_genes": 1000}, ValueError, "n_genes=1000 is more than the"),
    ({"n_genes": 0}, ValueError, "at least 1"),
    ({"n_samples": 0}, ValueError, "at least 1"),
    ({"n_samples": 2.5}, TypeError, "integer"),
    ({"donor_key": "patient"}, KeyError, r"`obs\['patient'\]` not found"),
    ({"context": ""}, ValueError, "one line"),
    ({"context": 3}, TypeError, "`context` must be"),
    ({"context_fields": ["smoker"]}, KeyError, "not found in obs"),
    ({"key_added": ""}, ValueError, "key_added"),
    ({"temperature": -1.0}, ValueError, "temperature"),
    ({"max_new_tokens": 0}, ValueError, "max_new_tokens"),
    ({"one_to_one": "yes"}, TypeError, "`one_to_one` must be True or False"),
    ({"backend": "llama"}, ValueError, "backend='llama' is not known"),
    ({"answer_dir": __file__}, ValueError, "is a file; give a folder"),
    ({"backend_kwargs": "device_map=cpu"}, TypeError, "backend_kwargs"),
    ({"model": "/no/such/model-folder"}, (FileNotFoundError, ValueError), "/no/such/model-folder"),
    ({"model": "no-such-registered-model"}, ValueError, "no-such-registered-model"),
    ({"backend": "openai", "model": "served-name"}, ValueError, "base_url"),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"), BAD_INPUTS, ids=[str(b[0]) for b in BAD_INPUTS]
)
def test_bad_input_fails_before_loading_and_leaves_adata_unchanged(
    kwargs, error, match, broken_model
):
    adata, _ = marker_adata(3)
    adata.obs["score"] = np.linspace(0, 1, adata.n_obs)
    adata.layers["scaled"] = adata.X.toarray() - 1.0
    adata.uns["keep"] = {"x": 1}
    before = snapshot(adata)
    args = {
        "groupby": "leiden",
        "candidates": TYPES[:3],
        "model": broken_model,
        "n_genes": 3,
        "n_samples": 1,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        cello1.tl.annotate(adata, args.pop("groupby"), **args)
    assert_unchanged(adata, before)


def test_bad_input_never_calls_a_backend_object():
    adata, markers = marker_adata(3)
    backend = ScriptedBackend(marker_oracle(markers))
    before = snapshot(adata)
    with pytest.raises(KeyError, match="not found"):
        cello1.tl.annotate(adata, "nope", candidates=TYPES[:3], model=backend)
    with pytest.raises(ValueError, match="negative values"):
        scaled = adata.copy()
        scaled.X = scaled.X.toarray() - 1
        cello1.tl.annotate(scaled, candidates=TYPES[:3], model=backend, n_genes=3)
    assert backend.calls == 0
    assert_unchanged(adata, before)


def test_object_column_of_mixed_values_is_rejected():
    adata, _ = marker_adata(3)
    adata.obs["mixed"] = pd.Series(
        [1, "a"] * (adata.n_obs // 2), index=adata.obs_names, dtype=object
    )
    with pytest.raises(TypeError, match="strings or integers"):
        cello1.tl.annotate(
            adata, "mixed", candidates=TYPES[:3], model=ScriptedBackend(marker_oracle({}))
        )


def test_broken_model_folder_fails_when_loaded_not_before(broken_model):
    # guards the bad-input tests above: the broken model does fail once loading starts
    adata, _ = marker_adata(3)
    before = snapshot(adata)
    with pytest.raises(Exception) as info:
        cello1.tl.annotate(
            adata,
            candidates=TYPES[:3],
            model=broken_model,
            backend="transformers",
            n_genes=3,
            n_samples=1,
        )
    assert "not found" not in str(info.value)
    assert_unchanged(adata, before)


# ----------------------------------------------------------------------------- real models


def small_pbmc68k(pbmc68k, types=("CD14+ Monocyte", "CD19+ B", "CD56+ NK", "Dendritic")):
    adata = pbmc68k[pbmc68k.obs["bulk_labels"].isin(types)].copy()
    adata.obs["bulk_labels"] = adata.obs["bulk_labels"].cat.remove_unused_categories()
    return adata, list(types)


@pytest.mark.slow
def test_tiny_qwen2_constrained_structure_and_h5ad_roundtrip(tiny_qwen2, pbmc68k, tmp_path):
    adata, types = small_pbmc68k(pbmc68k)
    cello1.tl.annotate(
        adata,
        "bulk_labels",
        candidates=types,
        model=tiny_qwen2,
        backend="transformers",
        use_raw=True,
        n_genes=8,
        n_samples=2,
        max_new_tokens=60,
        constrained=True,
        one_to_one=True,
    )
    uns = adata.uns["cello1"]
    puzzles = uns["puzzles"]
    assert len(puzzles) >= 2 and (puzzles[puzzles["round"] == 1]["n_cells"] == 4).all()
    assert puzzles["valid_format"].all() and puzzles["is_permutation"].all()  # constrained decoding
    table = uns["clusters"]
    # a random model leaves clusters in doubt: asked again, up to the budget of 3 x 2
    assert table["n_asked"].between(2, 6).all()
    counted = uns["votes"].groupby("cluster")["votes"].sum().reindex(table.index)
    # displaced items (the label went to another cell of that label) are no votes, but
    # they are asks: they count against the label's confidence
    assert (counted == table["n_asked"] - table["n_displaced"] - table["n_conflict"]).all()
    assert np.allclose(table["confidence"], table["votes"] / table["n_asked"])
    labelled = table["label"].dropna().astype(str)
    assert set(labelled) <= set(types) and labelled.is_unique
    assert uns["params"]["backend_used"] == "transformers"
    assert uns["params"]["model"] == str(tiny_qwen2)
    assert uns["params"]["expression"] == "adata.raw.X"
    conf = adata.obs["cello1_confidence"]
    assert ((conf >= 0) & (conf <= 1)).all()
    path = tmp_path / "annotated.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    pd.testing.assert_series_equal(back.obs["cello1"], adata.obs["cello1"])
    pd.testing.assert_series_equal(back.obs["cello1_confidence"], adata.obs["cello1_confidence"])
    for part in ("clusters", "votes", "reasoning", "puzzles"):
        pd.testing.assert_frame_equal(
            back.uns["cello1"][part], uns[part], check_dtype=False, check_categorical=False
        )
    assert back.uns["cello1"]["params"]["candidates"].tolist() == types
    assert back.uns["cello1"]["params"]["model_revision"] == uns["params"]["model_revision"]


@pytest.mark.slow
@pytest.mark.parametrize("error", [KeyboardInterrupt, MemoryError])
def test_interrupt_mid_run_leaves_adata_unchanged_and_resumes(error, tiny_qwen2, pbmc68k, tmp_path):
    adata, types = small_pbmc68k(pbmc68k)
    adata.uns["keep"] = "me"
    before = snapshot(adata)
    inner = cello1.inference.get_backend(tiny_qwen2, "transformers")
    kw = {
        "candidates": types,
        "use_raw": True,
        "n_genes": 8,
        "n_samples": 3,
        "max_new_tokens": 8,
        "batch_size": 1,
        "answer_dir": tmp_path / "cache",
        "one_to_one": True,  # 4 clusters, 4 candidates: one puzzle per round
    }
    wrapper = InterruptingBackend(inner, at=2, error=error)
    with pytest.raises(error):
        cello1.tl.annotate(adata, "bulk_labels", model=wrapper, **kw)
    assert wrapper.calls == 2
    assert_unchanged(adata, before)
    # the finished puzzle was cached: the rerun (the same rounds, as the same answers come
    # back) asks every puzzle but that one (batch_size=1: one call per puzzle)
    counting = InterruptingBackend(inner, at=10**6)
    cello1.tl.annotate(adata, "bulk_labels", model=counting, **kw)
    assert counting.calls == len(adata.uns["cello1"]["puzzles"]) - 1 >= 2


@pytest.mark.slow
def test_cli_annotate_writes_output(tiny_qwen2, pbmc68k, tmp_path, capsys):
    from sc_cello1.cli import main

    adata, types = small_pbmc68k(pbmc68k)
    src = tmp_path / "in.h5ad"
    adata.write_h5ad(src)
    cand_file = tmp_path / "types.txt"
    cand_file.write_text("# candidates\n" + "\n".join(types[2:]) + "\n\n")
    out = tmp_path / "out.h5ad"
    argv = [
        "annotate", str(src), "--groupby", "bulk_labels", "--candidates", *types[:2],
        "--candidates-file", str(cand_file), "--model", str(tiny_qwen2), "--backend", "transformers",
        "--use-raw", "--n-genes", "5", "--n-samples", "1", "--max-new-tokens", "4", "-o", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    result = ad.read_h5ad(out)
    assert "cello1" in result.obs and "cello1_confidence" in result.obs
    assert result.uns["cello1"]["params"]["candidates"].tolist() == types
    assert "wrote" in capsys.readouterr().out
    # a bad input is reported as an error, not a traceback, and writes nothing
    bad = tmp_path / "bad.h5ad"
    assert (
        main(
            [
                "annotate",
                str(src),
                "--groupby",
                "nope",
                "--candidates",
                "a",
                "b",
                "--model",
                str(tiny_qwen2),
                "-o",
                str(bad),
            ]
        )
        == 2
    )
    assert "not found" in capsys.readouterr().err
    assert not bad.exists()
    # scanpy:NAME input and candidates from a reference column (the README's command)
    out2 = tmp_path / "pbmc68k.h5ad"
    argv = [
        "annotate", "scanpy:pbmc68k_reduced", "--groupby", "louvain", "--candidates-from", "bulk_labels",
        "--use-raw", "--model", str(tiny_qwen2), "--backend", "transformers", "--n-genes", "5",
        "--n-samples", "1", "--max-new-tokens", "4", "-o", str(out2),
    ]  # fmt: skip
    assert main(argv) == 0
    params = ad.read_h5ad(out2).uns["cello1"]["params"]
    assert params["groupby"] == "louvain"
    assert params["candidates"].tolist() == list(
        ad.read_h5ad(out2).obs["bulk_labels"].cat.categories
    )
    assert main(["annotate", "scanpy:no_such_set", "--candidates", "a", "-o", str(bad)]) == 2
    assert "scanpy.datasets has no dataset" in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2_end_to_end_pbmc68k(smollm2, pbmc68k):
    candidates = list(pbmc68k.obs["bulk_labels"].cat.categories)
    backend = cello1.inference.get_backend(smollm2, "transformers")
    kw = {
        "candidates": candidates,
        "model": backend,
        "use_raw": True,
        "n_genes": 10,
        "n_samples": 1,
    }
    # bulk_labels: 10 clusters, 10 candidates, constrained: one vote per cluster
    cello1.tl.annotate(
        pbmc68k, "bulk_labels", max_new_tokens=200, constrained=True, one_to_one=True, **kw
    )
    uns = pbmc68k.uns["cello1"]
    assert uns["puzzles"]["valid_format"].all() and uns["puzzles"]["is_permutation"].all()
    assert uns["params"]["model_name"] and uns["params"]["backend_used"] == "transformers"
    labels = uns["clusters"]["label"].astype(str)
    assert labels.is_unique and set(labels) == set(candidates)  # one-to-one, every cluster voted
    assert (uns["clusters"]["confidence"] == 1.0).all()
    # louvain: 11 clusters, 10 candidates -> round 1: two puzzles (6 and 5 clusters),
    # padded to 10 cells; free text, so votes may be missing and clusters asked again
    cello1.tl.annotate(pbmc68k, "louvain", key_added="louvain_cello1", max_new_tokens=16, **kw)
    uns = pbmc68k.uns["louvain_cello1"]
    puzzles = uns["puzzles"]
    assert puzzles[puzzles["round"] == 1]["n_cells"].tolist() == [10, 10]
    assert uns["params"]["assignment"] == "plurality"
    assert uns["clusters"]["n_asked"].between(1, 3).all()
    assert set(pbmc68k.obs["louvain_cello1"].dropna().astype(str)) <= set(candidates)
    assert uns["puzzles"]["text"].str.len().gt(0).all()


@pytest.mark.slow
def test_smollm2_on_shared_pbmc3k_counts_layer(smollm2, shared_data):
    adata = ad.read_h5ad(shared_data / "pbmc3k_clustifyr_9types.h5ad")
    adata = adata[adata.obs.groupby("cell_type", observed=True).cumcount().to_numpy() < 40].copy()
    candidates = sorted(adata.obs["cell_type"].astype(str).unique())
    cello1.tl.annotate(
        adata,
        "cell_type",
        candidates=candidates,
        model=smollm2,
        backend="transformers",
        layer="counts",
        gene_symbols="feature_name",
        n_genes=10,
        n_samples=1,
        max_new_tokens=90,
        constrained=True,
        one_to_one=True,
    )
    uns = adata.uns["cello1"]
    (msg,) = uns["puzzles"]["user_msg"]
    _, genes, shown = parse_user_msg(msg)
    assert shown == candidates and len(genes) == 9
    assert any("CD3" in g or "LYZ" in g or "MS4A1" in g for cell in genes for g in cell)
    assert uns["params"]["expression"] == "adata.layers['counts']"
    assert uns["puzzles"]["text"].str.len().gt(0).all()
    assert (uns["clusters"]["n_cells"] <= 40).all() and (uns["clusters"]["n_asked"] == 1).all()
    assert uns["puzzles"]["is_permutation"].all()  # constrained: one vote per cluster
    assert adata.obs["cello1"].notna().all()
    assert set(adata.obs["cello1"].astype(str)) == set(candidates)
    assert (adata.obs["cello1_confidence"] == 1.0).all()

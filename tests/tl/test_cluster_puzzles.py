import numpy as np
import pandas as pd
from scipy import sparse

from sc_cello1.data._prompts import parse_user_msg
from sc_cello1.tl._cluster_puzzles import (
    FALLBACK_CONTEXT,
    build_cluster_puzzles,
    context_for,
    nearest_to_centroid,
    puzzle_slots,
    representative_cells,
)


def test_nearest_to_centroid_dense_sparse_and_chunked_agree():
    rng = np.random.default_rng(0)
    X = rng.poisson(2.0, size=(50, 8)).astype(np.float32)
    members = np.arange(5, 45)
    centroid = X[members].mean(axis=0)
    expected = members[np.argmin(((X[members] - centroid) ** 2).sum(axis=1))]
    assert nearest_to_centroid(X, members) == expected
    assert nearest_to_centroid(sparse.csr_matrix(X), members) == expected
    assert nearest_to_centroid(X, members, chunk_size=7) == expected
    assert nearest_to_centroid(X, np.array([3])) == 3


def test_representative_cells_are_seeded_and_start_at_the_centroid():
    rng = np.random.default_rng(1)
    X = rng.poisson(1.0, size=(30, 5)).astype(float)
    codes = np.repeat([0, 1, 2], 10)
    codes[-1] = -1  # a cell without cluster is never drawn
    groups = np.zeros(30, dtype=int)
    a = representative_cells(X, codes, groups, n_samples=4, rng=np.random.default_rng(7))
    b = representative_cells(X, codes, groups, n_samples=4, rng=np.random.default_rng(7))
    assert a == b
    assert sorted(a) == [(0, 0), (0, 1), (0, 2)]
    for (_, cluster), rows in a.items():
        members = np.flatnonzero(codes == cluster)
        assert rows[0] == nearest_to_centroid(X, members)
        assert set(rows) <= set(members)
        assert len(set(rows)) == 4  # without replacement while cells remain
    assert 29 not in a[0, 2]


def test_small_clusters_reuse_cells():
    X = np.eye(3)
    reps = representative_cells(
        X, np.array([0, 1, 1]), np.zeros(3, int), n_samples=3, rng=np.random.default_rng(0)
    )
    assert reps[0, 0] == [0, 0, 0]
    assert sorted(set(reps[0, 1])) == [1, 2]


def test_slots_split_clusters_into_balanced_parts():
    reps = {(0, c): [c * 10 + s for s in range(2)] for c in range(20)}
    slots = puzzle_slots(reps, n_groups=1, n_samples=2, max_cells=15, rng=np.random.default_rng(0))
    assert [len(s.clusters) for s in slots] == [10, 10, 10, 10]
    for sample in (0, 1):
        parts = [s for s in slots if s.sample == sample]
        assert sorted(c for s in parts for c in s.clusters) == list(range(20))
        for s in parts:
            assert s.rows == [reps[0, c][sample] for c in s.clusters]
    # clusters meet different neighbours in different samples
    assert {frozenset(s.clusters) for s in slots if s.sample == 0} != {
        frozenset(s.clusters) for s in slots if s.sample == 1
    }


def test_slots_per_donor_only_hold_that_donors_clusters():
    reps = {(0, 0): [1], (0, 1): [2], (1, 1): [3], (1, 2): [4]}
    slots = puzzle_slots(reps, n_groups=2, n_samples=1, max_cells=15, rng=np.random.default_rng(0))
    assert [(s.group, sorted(s.clusters)) for s in slots] == [(0, [0, 1]), (1, [1, 2])]


def test_context_rules():
    obs = pd.DataFrame(
        {"sex": ["female", "male"], "tissue": ["lung", "blood"], "smoker": ["yes", "no"]},
        index=["a", "b"],
    )
    kw = {"context_fields": (), "has_cellxgene": True}
    assert context_for(obs, [1, 0], context=None, **kw) == (
        "The cell is from a male, originating from the blood"
    )
    assert context_for(
        obs, [0], context=None, context_fields=["smoker"], has_cellxgene=True
    ).endswith("Smoker: yes.")
    assert context_for(obs, [0, 1], context="Given.", **kw) == "Given."
    assert (
        context_for(obs, [1, 0], context=lambda rows: f"First {rows.index[0]}.", **kw) == "First b."
    )
    assert (
        context_for(obs, [0], context=None, context_fields=(), has_cellxgene=False)
        == FALLBACK_CONTEXT
    )


def test_build_cluster_puzzles_layout():
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(4)])
    reps = {(0, 0): [0], (0, 1): [3]}
    slots = puzzle_slots(reps, n_groups=1, n_samples=1, max_cells=15, rng=np.random.default_rng(0))
    top = {0: ["G1", "G2"], 3: ["G9", "G8"]}
    (p,) = build_cluster_puzzles(
        slots,
        top_genes=top,
        candidates=["T cell", "B cell", "NK cell"],
        obs=obs,
        cluster_names=["c0", "c1"],
        group_names=[""],
        context=None,
        context_fields=(),
        has_cellxgene=False,
    )
    context, genes, candidates = parse_user_msg(p.user_msg)
    assert candidates == ["B cell", "NK cell", "T cell"]
    assert context == FALLBACK_CONTEXT
    assert genes == [top[r] for r in slots[0].rows]
    assert p.cell_ids == [f"cell{r}" for r in slots[0].rows]
    assert p.meta["clusters"] == [["c0", "c1"][c] for c in slots[0].clusters]

import numpy as np
import pandas as pd
from scipy import sparse

from sc_cello1.tl._cluster_puzzles import (
    FALLBACK_CONTEXT,
    cell_pools,
    context_for,
    nearest_to_centroid,
)
from sc_cello1.tl._layout import Layout, Tally


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


def test_cell_pools_are_seeded_distinct_and_start_at_the_centroid():
    rng = np.random.default_rng(1)
    X = rng.poisson(1.0, size=(30, 5)).astype(float)
    codes = np.repeat([0, 1, 2], 10)
    codes[-1] = -1  # a cell without cluster is never drawn
    groups = np.zeros(30, dtype=int)
    a, cen = cell_pools(X, codes, groups, budget=4, rng=np.random.default_rng(7))
    b, _ = cell_pools(X, codes, groups, budget=4, rng=np.random.default_rng(7))
    assert a == b
    assert sorted(a) == [(0, 0), (0, 1), (0, 2)]
    for (_, cluster), rows in a.items():
        members = np.flatnonzero(codes == cluster)
        assert rows[0] == nearest_to_centroid(X, members)
        assert np.allclose(cen[0, cluster], X[members].mean(axis=0))
        assert set(rows) <= set(members)
        assert len(set(rows)) == len(rows) == 4
    assert 29 not in a[0, 2]


def test_small_clusters_have_short_pools_never_repeats():
    X = np.eye(3)
    pools, _ = cell_pools(
        X, np.array([0, 1, 1]), np.zeros(3, int), budget=3, rng=np.random.default_rng(0)
    )
    assert pools[0, 0] == [0]
    assert sorted(pools[0, 1]) == [1, 2]


def _layout(n_clusters, candidates, *, groups=None, n_samples=3, positions=None):
    groups = groups or {0: list(range(n_clusters))}
    pools = {
        (g, c): [100 * c + 10 * g + i for i in range(9)] for g, cs in groups.items() for c in cs
    }
    pos = positions if positions is not None else np.arange(n_clusters, dtype=float)
    centroids = {(g, c): np.array([pos[c]]) for g, cs in groups.items() for c in cs}
    return Layout(
        pools,
        centroids,
        candidates,
        n_samples=n_samples,
        max_cells=15,
        rng=np.random.default_rng(0),
    )


def test_round_one_is_anti_clustered_and_padded_to_the_number_of_candidates():
    # clusters 0-2, 3-5, 6-8 are neighbours (three types, three subclusters each)
    positions = np.array([0, 0.1, 0.2, 10, 10.1, 10.2, 20, 20.1, 20.2])
    layout = _layout(9, ["a", "b", "c"], positions=positions)
    tally = Tally(9)
    puzzles = layout.next_round(tally)
    assert [p.n_cells for p in puzzles] == [3, 3, 3]
    for p in puzzles:
        assert sorted(int(positions[s.cluster] // 10) for s in p.slots) == [0, 1, 2]
        assert not any(s.is_known for s in p.slots)
    rows = [s.row for p in puzzles for s in p.slots]
    assert len(set(rows)) == len(rows)


def test_few_clusters_give_one_puzzle_of_all_of_them():
    layout = _layout(2, ["a", "b", "c", "d"])
    (p,) = layout.next_round(Tally(2))
    assert p.n_cells == 2 and p.candidates == ["a", "b", "c", "d"]


def test_puzzles_per_donor_only_hold_that_donors_clusters():
    layout = _layout(3, ["a", "b"], groups={0: [0, 1], 1: [1, 2]})
    puzzles = layout.next_round(Tally(3))
    assert [(p.group, sorted(s.cluster for s in p.slots)) for p in puzzles] == [
        (0, [0, 1]),
        (1, [1, 2]),
    ]


def test_later_rounds_put_together_only_distinct_labels_with_known_cells():
    layout = _layout(4, ["a", "b"], n_samples=2)
    tally = Tally(4)
    layout.next_round(tally)
    for c, label in enumerate(["a", "a", "b", "b"]):
        tally.votes[c][label] += 2
        tally.asked[c] = tally.counted[c] = 2
    tally.votes[1]["a"] -= 1  # cluster 1 in doubt: a 1, b 1
    tally.votes[1]["b"] += 1
    puzzles = layout.next_round(tally)
    assert puzzles  # cluster 1 is re-asked
    for p in puzzles:
        labels = [s.known or tally.label(s.cluster) for s in p.slots]
        assert len(set(labels)) == len(labels)
    (p,) = [p for p in puzzles if any(s.cluster == 1 for s in p.slots)]
    # its hypotheses (runner-up "b") are left out where they can be; no 1-cell puzzle:
    # the farthest cluster (3) joins, as a known cell
    assert sorted(s.cluster for s in p.slots) == [1, 3]
    assert [s.known for s in p.slots if s.cluster == 3] == ["b"]


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


def test_a_label_won_against_a_known_cell_is_a_hypothesis_kept_out_of_its_puzzles():
    layout = _layout(8, ["a", "b", "c", "d"], n_samples=2)
    tally = Tally(8)
    layout.next_round(tally)
    for c, label in enumerate(["a", "a", "b", "b", "c", "c", "d", "d"]):
        tally.votes[c][label] += 2
        tally.asked[c] = tally.counted[c] = 2
    # cluster 7 in doubt (c 1, d 1); a conflicted puzzle gave it "a" over a known "a" cell
    tally.votes[7] = type(tally.votes[7])({"c": 1, "d": 1})
    tally.hinted[7]["a"] += 1
    puzzles = layout.next_round(tally)
    (p,) = [p for p in puzzles if any(s.cluster == 7 for s in p.slots)]
    others = [s.known or tally.label(s.cluster) for s in p.slots if s.cluster != 7]
    assert "a" not in others and "d" not in others and "b" in others

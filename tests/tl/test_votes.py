"""Tests of the vote table and label choice (src/sc_cello1/tl/_votes.py)."""

import numpy as np
import pytest

from sc_cello1.tl._votes import assign_labels, vote_table


def test_vote_table_counts_votes_and_asks():
    table, asked = vote_table([(0, 1), (0, 1), (0, None), (1, 0)], n_clusters=3, n_candidates=2)
    assert table.tolist() == [[0, 2], [1, 0], [0, 0]]
    assert asked.tolist() == [3, 1, 0]


def test_plurality_lets_clusters_share_a_type():
    table = np.array([[5, 4, 0], [5, 0, 0]])
    a = assign_labels(table, [10, 10])
    assert a.method == "plurality"
    assert a.labels.tolist() == [0, 0]
    assert a.confidence.tolist() == [0.5, 0.5]
    assert a.runner_up.tolist() == [1, -1]
    assert a.runner_up_votes.tolist() == [4, 0]
    np.testing.assert_allclose(a.margin, [0.1, 0.5])


def test_one_to_one_resolves_a_contested_type():
    # both clusters prefer candidate 0; the assignment gives it to cluster 1 (5 votes)
    # and cluster 0 its second choice, maximising the total votes (4 + 5 > 5 + 0).
    table = np.array([[5, 4, 0], [5, 0, 0]])
    a = assign_labels(table, [10, 10], one_to_one=True)
    assert a.method == "one_to_one"
    assert a.labels.tolist() == [1, 0]
    assert a.votes.tolist() == [4, 5]
    assert a.confidence.tolist() == [0.4, 0.5]
    assert a.runner_up.tolist() == [0, -1]  # the label is behind its runner-up
    assert a.margin[0] < 0


def test_one_to_one_with_more_clusters_than_candidates_falls_back_to_plurality():
    table = np.array([[3, 0], [2, 1], [0, 3]])
    a = assign_labels(table, [3, 3, 3], one_to_one=True)
    assert a.method == "plurality"
    assert a.labels.tolist() == [0, 0, 1]
    np.testing.assert_allclose(a.confidence, [1.0, 2 / 3, 1.0])


def test_cluster_without_votes_for_its_type_gets_no_label():
    table = np.array([[4, 0, 0], [0, 4, 0], [0, 0, 0]])
    free = assign_labels(table, [4, 4, 4])
    assert free.labels.tolist() == [0, 1, -1]
    assert free.confidence.tolist() == [1.0, 1.0, 0.0]
    one = assign_labels(table, [4, 4, 4], one_to_one=True)
    assert one.labels.tolist() == [0, 1, -1]  # the leftover type had no vote
    # a cluster that lost its only-voted type to a stronger cluster gets no label either
    contested = assign_labels(np.array([[3, 0], [1, 0]]), [3, 3], one_to_one=True)
    assert contested.labels.tolist() == [0, -1]


def test_ties_break_by_rank_and_are_marked():
    table = np.array([[2, 2, 1]])
    a = assign_labels(table, [5])
    assert a.labels.tolist() == [0] and a.tied.tolist() == [True] and a.margin.tolist() == [0.0]
    b = assign_labels(table, [5], tie_order=[2, 1, 0])
    assert b.labels.tolist() == [1] and b.runner_up.tolist() == [0]
    # one_to_one: among equal totals the lower rank wins too
    c = assign_labels(np.array([[1, 1], [0, 0]]), [1, 1], one_to_one=True, tie_order=[1, 0])
    assert c.labels.tolist() == [1, -1]


def test_confidence_counts_unusable_answers():
    table, asked = vote_table([(0, 0), (0, 0), (0, None), (0, 1)], n_clusters=1, n_candidates=2)
    a = assign_labels(table, asked)
    assert a.labels.tolist() == [0]
    assert a.confidence.tolist() == [0.5]


def test_bad_tables_are_rejected():
    with pytest.raises(ValueError, match="2-dimensional"):
        assign_labels(np.zeros(3), [1, 1, 1])
    with pytest.raises(ValueError, match="one count per cluster"):
        assign_labels(np.zeros((2, 2)), [1])
    with pytest.raises(ValueError, match="one rank per candidate"):
        assign_labels(np.zeros((2, 2)), [1, 1], tie_order=[0])

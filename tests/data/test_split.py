from __future__ import annotations

from collections import Counter

import pytest

from sc_cello1.data import Puzzle, split_puzzles
from sc_cello1.data._split import _test_quotas
from tests.data import _authors


def _puzzle(n: int, tag: int) -> Puzzle:
    types = [f"type {tag}-{i}" for i in range(n)]
    return Puzzle(
        context=f"Puzzle {tag}.",
        genes=[[f"G{i}"] for i in range(n)],
        candidates=sorted(types),
        answer=types,
    )


def _puzzles(counts: dict[int, int]) -> list[Puzzle]:
    # interleave sizes so that first-appearance order and file order both matter
    out, tag = [], 0
    left = dict(counts)
    while any(left.values()):
        for n in list(left):
            if left[n]:
                out.append(_puzzle(n, tag))
                tag += 1
                left[n] -= 1
    return out


@pytest.mark.parametrize(
    ("counts", "max_test"),
    [
        ({8: 40, 9: 40, 10: 40}, 1100),  # small: 10% per N
        ({8: 3, 12: 25}, 1100),  # at least 1 per N
        ({8: 400, 9: 350, 10: 300, 11: 20, 12: 3}, 100),  # large: 5 per N + shares
        ({8: 50, 9: 50, 10: 50}, 12),  # over max_test even at 5 per N: scaled down
        ({k: 40 for k in range(3, 16)}, 300),
    ],
)
def test_parity_with_authors_split(counts, max_test):
    puzzles = _puzzles(counts)
    train, test = split_puzzles(puzzles, max_test=max_test, seed=42)
    records = [{"answer": p.assistant_msg} for p in puzzles]
    test_idx, quotas = _authors.split_items(records, max_test=max_test, seed=42)
    expected_test = [p for i, p in enumerate(puzzles) if i in test_idx]
    expected_train = [p for i, p in enumerate(puzzles) if i not in test_idx]
    assert test == expected_test
    assert train == expected_train
    assert Counter(p.n_cells for p in test) == {n: min(counts[n], q) for n, q in quotas.items()}


def test_quota_rule_values():
    # small set: 10% of each N, at least 1
    assert _test_quotas({8: 40, 9: 5}, 1100) == {8: 4, 9: 1}
    # large set: 5 per N, the rest in proportion: 90 * 195/390 = 45, 90 * 195/390 = 45
    assert _test_quotas({8: 200, 9: 200}, 100) == {8: 50, 9: 50}
    # the paper's data: 8 sizes, 40 per size per file, many files
    q = _test_quotas({n: 1000 for n in range(8, 16)}, 1100)
    assert sum(q.values()) <= 1100 and min(q.values()) >= 5


def test_split_keeps_order_and_partitions():
    puzzles = _puzzles({8: 30, 9: 30})
    train, test = split_puzzles(puzzles)
    assert len(train) + len(test) == len(puzzles)
    assert {id(p) for p in train} | {id(p) for p in test} == {id(p) for p in puzzles}
    assert train == [p for p in puzzles if any(p is q for q in train)]
    assert Counter(p.n_cells for p in test) == {8: 3, 9: 3}


def test_split_seeded():
    puzzles = _puzzles({8: 30, 9: 30})
    assert split_puzzles(puzzles, seed=1) == split_puzzles(puzzles, seed=1)
    assert split_puzzles(puzzles, seed=1)[1] != split_puzzles(puzzles, seed=2)[1]


def test_split_empty():
    assert split_puzzles([]) == ([], [])


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (["not puzzles"], {}, TypeError, "list of Puzzle"),
        ([[{"user_msg": "x"}]], {}, TypeError, r"puzzles\[0\] is a dict.*read_puzzles"),
        ([[]], {"max_test": 0}, ValueError, "max_test=0"),
        ([[]], {"seed": "42"}, TypeError, "seed="),
    ],
)
def test_split_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        split_puzzles(*args, **kwargs)

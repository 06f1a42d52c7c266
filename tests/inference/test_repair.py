from __future__ import annotations

import pytest

from sc_cello1.inference import repair_items
from sc_cello1.inference._repair import label_similarity

CANDS = ["B cell", "CD14+ Mono", "FCGR3A+ Mono", "NK cell", "T cell"]


def test_exact_answer_unchanged():
    assert repair_items(CANDS[::-1], CANDS) == CANDS[::-1]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("b cell", "B cell"),
        ("  T   cell ", "T cell"),
        ("NK cells", "NK cell"),
        ("T-cell.", "T cell"),
        ("CD14+ monocytes", "CD14+ Mono"),
        ("FCGR3A Mono", "FCGR3A+ Mono"),
    ],
)
def test_near_miss_labels_map_to_candidates(item, expected):
    out = repair_items([item], CANDS, n_items=1)
    assert out == [expected]


def test_duplicates_resolved_by_assignment():
    # "T cell" twice: the closer match keeps it, the other cell gets the unused candidate
    out = repair_items(["B cell", "T cell", "T cells", "NK cell", "CD14+ Mono"], CANDS)
    assert out == ["B cell", "T cell", "FCGR3A+ Mono", "NK cell", "CD14+ Mono"]
    assert sorted(out) == sorted(CANDS)


def test_short_and_long_answers():
    assert sorted(repair_items(["NK cell"], CANDS)) == sorted(CANDS)
    assert repair_items(["NK cell"], CANDS)[0] == "NK cell"
    assert repair_items([*CANDS, "extra"], CANDS) == CANDS
    assert sorted(repair_items([], CANDS)) == sorted(CANDS)


def test_repeats_allowed_without_unique_or_with_more_cells():
    assert repair_items(["T cell", "t cells"], CANDS, n_items=2, unique=False) == [
        "T cell",
        "T cell",
    ]
    out = repair_items(["T cell", "T cell", "B cell"], ["B cell", "T cell"], n_items=3)
    assert out == ["T cell", "T cell", "B cell"]


def test_similarity_order():
    assert label_similarity("T cell", "T cell") == 1.0
    assert 1.0 > label_similarity("t cell", "T cell") > label_similarity("T-cell", "T cell")
    assert label_similarity("T-cell", "T cell") > label_similarity("T cells", "T cell")
    assert label_similarity("T cells", "T cell") > label_similarity("B cell", "T cell")


def test_bad_input():
    with pytest.raises(ValueError, match="candidates"):
        repair_items(["x"], [])
    with pytest.raises(TypeError, match="lists"):
        repair_items("B cell | T cell", CANDS)
    with pytest.raises(ValueError, match="n_items"):
        repair_items(["x"], CANDS, n_items=0)

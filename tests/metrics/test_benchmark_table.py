from __future__ import annotations

import math

import pytest

from sc_cello1 import metrics


def _think(answer: str) -> str:
    return f"<think>r</think>\n<answer>{answer}</answer>"


GOLD = ["A | B | C", "A | B | C", "A | B | C | D", "A | B | C | D"]
PRED = [_think("A | B | C"), _think("A | C | B"), _think("A | B | C | D"), "no tags A | B"]


def test_benchmark_table_full_and_clean_per_n():
    table = metrics.benchmark_table(PRED, GOLD, clean=[True, False, False, True])
    assert list(table.columns) == list(metrics._benchmark.TABLE_COLUMNS)
    assert table[["subset", "n"]].values.tolist() == [
        ["full", "3"],
        ["full", "4"],
        ["full", "all"],
        ["clean", "3"],
        ["clean", "4"],
        ["clean", "all"],
    ]
    t = table.set_index(["subset", "n"])
    assert t.loc[("full", "all"), "batch_accuracy"] == 0.5
    assert t.loc[("full", "all"), "cell_accuracy"] == (3 + 1 + 4 + 0) / 14
    assert t.loc[("full", "3"), "batch_accuracy"] == 0.5
    assert t.loc[("clean", "all"), "n_puzzles"] == 2
    assert t.loc[("clean", "all"), "batch_accuracy"] == 0.5
    assert t.loc[("clean", "4"), "format_rate"] == 0.0
    # the full rows are exactly evaluate_by_size
    by_size = metrics.evaluate_by_size(PRED, GOLD)
    assert t.loc[("full", "all"), "cell_accuracy"] == by_size.loc["all", "cell_accuracy"]


def test_benchmark_table_empty_clean_subset_is_nan_not_zero():
    table = metrics.benchmark_table(PRED, GOLD, clean=[False] * 4).set_index(["subset", "n"])
    assert table.loc[("clean", "all"), "n_puzzles"] == 0
    assert math.isnan(table.loc[("clean", "all"), "batch_accuracy"])
    assert len(metrics.benchmark_table(PRED, GOLD)) == 3  # no clean rows without `clean`


def test_benchmark_table_bad_input():
    with pytest.raises(ValueError, match="one flag per puzzle"):
        metrics.benchmark_table(PRED, GOLD, clean=[True])
    with pytest.raises(ValueError, match="4 predictions for 3 answers"):
        metrics.benchmark_table(PRED, GOLD[:3])


def test_reported_figures_are_labelled_reported():
    table = metrics.reported_figures().set_index("model")
    assert table.loc["OpenAI o1", "value"] == pytest.approx(0.190)
    assert table.loc["Cell-o1 (7B)", "value"] == pytest.approx(0.329)
    assert (table["metric"] == "batch_accuracy").all()
    assert table["source"].str.startswith("reported").all()

from __future__ import annotations

import pytest

from sc_cello1.metrics import cellpuzzles_reward, reward
from tests.metrics._cases import COMPLETIONS, GOLD


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("valid", 1.0),
        ("valid_multiline_think", 1.0),
        ("case_differences", 1.0),
        ("wrong_order", (1 / 3 + 0) / 2),  # only NK cell in place
        ("partly_right", (1 / 3 + 0) / 2),
        ("duplicates", -1.0),
        ("too_few", -1.0),
        ("too_many", -1.0),
        ("extra_spaces_and_empty_items", 1.0),
        ("missing_think", -1.0),
        ("missing_answer_tags", -1.0),
        ("missing_close_answer", -1.0),
        ("text_before", -1.0),
        ("text_after_answer", -1.0),
        ("no_newline_between", -1.0),
        ("two_answers", -1.0),
        ("pipe_fallback_line", -1.0),
        ("empty_answer", -1.0),
        ("no_pipe_single_item", -1.0),
        ("empty", -1.0),
    ],
)
def test_reward_rule(name, expected):
    assert reward(COMPLETIONS[name], GOLD) == pytest.approx(expected)


def test_reward_accepts_label_lists_and_reasoning_gold():
    assert reward(COMPLETIONS["valid"], ["B cell", "T cell", "NK cell"]) == 1.0
    assert (
        reward(COMPLETIONS["valid"], "<think>x</think>\n<answer>B cell | T cell | NK cell</answer>")
        == 1.0
    )


def test_trl_signature():
    completions = [
        COMPLETIONS["valid"],
        [{"role": "assistant", "content": COMPLETIONS["missing_think"]}],
    ]
    assert cellpuzzles_reward(completions, answer=[GOLD, GOLD], prompts=["p", "p"]) == [1.0, -1.0]


def test_trl_signature_bad_input():
    with pytest.raises(ValueError):
        cellpuzzles_reward([COMPLETIONS["valid"]], answer=[GOLD, GOLD])

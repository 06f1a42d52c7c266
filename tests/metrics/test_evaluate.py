from __future__ import annotations

import pytest

from sc_cello1.data import Puzzle
from sc_cello1.metrics import evaluate, evaluate_by_size, score_completion
from tests.data import _authors
from tests.metrics._cases import COMPLETIONS, GOLD

GOLD_4 = "CD14 monocyte | B cell | platelet | NK cell"
MORE = {
    "four_right": "<think>.</think>\n<answer>CD14 monocyte | B cell | platelet | NK cell</answer>",
    "four_half": "<think>.</think>\n<answer>cd14 MONOCYTE | B cell | NK cell | platelet</answer>",
    "four_bad": "<answer>CD14 monocyte | B cell | platelet | NK cell</answer>",
}


def _dataset():
    preds, golds = [], []
    for name in sorted(COMPLETIONS):
        preds.append(COMPLETIONS[name])
        golds.append(GOLD)
    for name in sorted(MORE):
        preds.append(MORE[name])
        golds.append(GOLD_4)
    return preds, golds


def test_evaluate_matches_authors_eval_py():
    preds, golds = _dataset()
    theirs, table = _authors.evaluate_records(
        [{"prediction": p, "answer": g} for p, g in zip(preds, golds, strict=True)]
    )
    ours = evaluate(preds, golds)
    for key in ("cell_accuracy", "batch_accuracy", "format_rate", "uniqueness"):
        assert ours[key] == pytest.approx(theirs[key]), key
    assert ours["n_puzzles"] == len(preds)
    assert ours["n_cells"] == 3 * len(COMPLETIONS) + 4 * len(MORE)

    by_size = evaluate_by_size(preds, golds)
    assert list(by_size.index) == [3, 4, "all"]
    for n, (count, partial, exact) in table.items():
        assert by_size.loc[n, "n_puzzles"] == count
        assert by_size.loc[n, "cell_accuracy"] == pytest.approx(partial)
        assert by_size.loc[n, "batch_accuracy"] == pytest.approx(exact)
    assert by_size.loc["all", "cell_accuracy"] == pytest.approx(ours["cell_accuracy"])


@pytest.mark.parametrize("name", sorted(COMPLETIONS))
def test_score_completion_matches_process_record(name):
    text = COMPLETIONS[name]
    _, exact, correct, total, legit, uniq, _ = _authors.process_record(
        {"prediction": text, "answer": GOLD}
    )
    row = score_completion(text, GOLD)
    assert (row["correct"], row["n_cells"], row["exact"], row["valid"]) == (
        correct,
        total,
        bool(exact),
        bool(legit),
    )
    assert row["uniqueness"] == pytest.approx(uniq)


def test_known_values():
    rows = {name: score_completion(text, GOLD) for name, text in COMPLETIONS.items()}
    assert rows["case_differences"]["exact"] is True
    assert rows["partly_right"]["correct"] == 1
    assert rows["duplicates"]["uniqueness"] == pytest.approx(2 / 3)
    assert rows["duplicates"]["reward"] == -1.0
    # a valid answer of the wrong length is still scored position by position
    assert rows["too_few"]["correct"] == 2 and rows["too_few"]["reward"] == -1.0
    assert rows["too_many"]["correct"] == 3 and rows["too_many"]["exact"] is True
    assert rows["missing_think"]["correct"] == 0  # invalid: scores 0, cells count
    assert rows["missing_think"]["n_cells"] == 3


def test_gold_from_reasoning_target_and_puzzle():
    reasoning_gold = "<think>because</think>\n<answer>B cell | T cell | NK cell</answer>"
    assert score_completion(COMPLETIONS["valid"], reasoning_gold)["exact"] is True
    puzzle = Puzzle(
        context="x",
        genes=[["A"], ["B"], ["C"]],
        candidates=["B cell", "NK cell", "T cell"],
        answer=["B cell", "T cell", "NK cell"],
    )
    assert score_completion(COMPLETIONS["valid"], puzzle)["exact"] is True
    assert score_completion(COMPLETIONS["valid"], ["B cell", "T cell", "NK cell"])["exact"] is True


def test_empty_gold_is_not_counted_as_valid_like_eval_py():
    row = score_completion(COMPLETIONS["valid"], "")
    theirs = _authors.process_record({"prediction": COMPLETIONS["valid"], "answer": ""})
    assert (row["n_cells"], row["correct"], row["valid"]) == (0, 0, False)
    assert theirs[:5] == (0, 0, 0, 0, 0)


def test_evaluate_empty():
    assert evaluate([], [])["n_puzzles"] == 0


@pytest.mark.parametrize(
    ("preds", "golds", "error", "match"),
    [
        (["a"], ["B | T", "T | B"], ValueError, "1 predictions for 2 answers"),
        ("abc", ["B"], TypeError, "not strings"),
        ([None], ["B | T"], TypeError, r"prediction 0 is a NoneType"),
    ],
)
def test_evaluate_bad_input(preds, golds, error, match):
    with pytest.raises(error, match=match):
        evaluate(preds, golds)
    with pytest.raises(error, match=match):
        evaluate_by_size(preds, golds)


def test_puzzle_without_answer_as_gold():
    puzzle = Puzzle(context="x", genes=[["A"], ["B"]], candidates=["a", "b"])
    with pytest.raises(ValueError, match="no `answer`"):
        score_completion("x", puzzle)

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sc_cello1.data import SYSTEM_MSG, Puzzle

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cellpuzzles"


def _fixture_records(split: str) -> list[dict]:
    return pq.read_table(FIXTURES / f"{split}-00000-of-00001.parquet").to_pylist()


def _puzzle() -> Puzzle:
    return Puzzle(
        context="The cell is from a female. The patient is healthy with no diagnosed disease.",
        genes=[["CD3E", "CD2", "IL7R"], ["MS4A1", "CD79A", "CD74"], ["LYZ", "S100A8", "CD14"]],
        candidates=["B cell", "T cell", "monocyte"],
        answer=["T cell", "B cell", "monocyte"],
        cell_ids=["c1", "c2", "c3"],
        group="donor1",
    )


def test_user_msg_byte_exact():
    assert _puzzle().user_msg == (
        "Context: The cell is from a female. The patient is healthy with no diagnosed disease. \n\n"
        "Cell 1: CD3E, CD2, IL7R\nCell 2: MS4A1, CD79A, CD74\nCell 3: LYZ, S100A8, CD14\n\n"
        "Match the cells above to one of the following cell types:\nB cell\nT cell\nmonocyte"
    )


def test_system_and_assistant_msg():
    p = _puzzle()
    assert p.system_msg == SYSTEM_MSG
    assert p.assistant_msg == "T cell | B cell | monocyte"
    assert p.n_cells == 3
    assert p.to_record() == {
        "system_msg": SYSTEM_MSG,
        "user_msg": p.user_msg,
        "assistant_msg": "T cell | B cell | monocyte",
    }


def test_messages_styles():
    p = _puzzle()
    assert p.messages()[0]["content"] == p.user_msg + "\n" + SYSTEM_MSG
    sft = p.messages("sft", with_answer=True)
    assert [m["role"] for m in sft] == ["system", "user", "assistant"]
    assert sft[-1]["content"] == p.assistant_msg


def test_messages_with_answer_needs_answer():
    p = _puzzle()
    p.answer = None
    with pytest.raises(ValueError, match="no answer"):
        p.messages(with_answer=True)


@pytest.mark.parametrize("split", ["test", "reasoning"])
def test_round_trip_public_records(split):
    for record in _fixture_records(split):
        puzzle = Puzzle.from_record(record)
        assert puzzle.to_record() == record


def test_reasoning_record_keeps_trace_and_extracts_answer():
    (record,) = _fixture_records("reasoning")
    p = Puzzle.from_record(record)
    assert p.assistant_text == record["assistant_msg"]
    assert p.answer == [
        "natural killer cell",
        "platelet",
        "conventional dendritic cell",
        "erythrocyte",
    ]
    assert p.candidates == sorted(p.answer)


def test_from_record_accepts_answer_key():
    record = _fixture_records("test")[0]
    alt = {
        "system_msg": record["system_msg"],
        "user_msg": record["user_msg"],
        "answer": record["assistant_msg"],
    }
    p = Puzzle.from_record(alt)
    assert p.answer == ["B cell", "CD4-positive, alpha-beta T cell", "classical monocyte"]
    assert p.to_record() == record


def test_from_record_without_target():
    record = _fixture_records("test")[0]
    p = Puzzle.from_record({"user_msg": record["user_msg"]})
    assert p.answer is None and p.assistant_msg is None
    assert p.system_msg == SYSTEM_MSG


def test_round_trip_of_built_puzzle():
    p = _puzzle()
    q = Puzzle.from_record(p.to_record())
    assert (q.context, q.genes, q.candidates, q.answer) == (
        p.context,
        p.genes,
        p.candidates,
        p.answer,
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"genes": []}, "at least one cell"),
        ({"answer": ["T cell"]}, "1 labels but the puzzle has 3 cells"),
        ({"cell_ids": ["c1"]}, "`cell_ids` has 1 ids"),
        (
            {"candidates": ["B cell", "B cell", "monocyte"]},
            r"Duplicate candidate labels \['B cell'\]",
        ),
    ],
)
def test_puzzle_bad_input(kwargs, match):
    p = _puzzle()
    fields = {
        k: getattr(p, k) for k in ("context", "genes", "candidates", "answer", "cell_ids")
    } | kwargs
    with pytest.raises(ValueError, match=match):
        Puzzle(**fields)


@pytest.mark.parametrize(
    ("record", "error", "match"),
    [
        (["not", "a", "dict"], TypeError, "must be a mapping"),
        ({"system_msg": SYSTEM_MSG}, ValueError, "no string 'user_msg'"),
        ({"user_msg": "Cell 1: A"}, ValueError, "does not start with 'Context: '"),
    ],
)
def test_from_record_bad_input(record, error, match):
    with pytest.raises(error, match=match):
        Puzzle.from_record(record)

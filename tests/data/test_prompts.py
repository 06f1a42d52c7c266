from __future__ import annotations

import pytest

from sc_cello1.data import SYSTEM_MSG, build_messages
from sc_cello1.data._prompts import parse_user_msg, render_user_msg

# The system message of CELLPUZZLES.md, typed out as one literal line.
EXPECTED_SYSTEM = "You are an expert assistant specialized in cell type annotation. You will be given a batch of N cells from the same donor, where each cell represents a unique cell type. For each cell, the top expressed genes are provided in descending order of expression. Using both the gene expression data and donor information, determine the correct cell type for each cell. You will also receive a list of N candidate cell types, and each candidate must be assigned to exactly one cell. Ensure that you consider all cells and candidate types together, rather than annotating each cell individually. Include your detailed reasoning within <think> and </think> tags, and provide your final answer within <answer> and </answer> tags. The final answer should be a single string listing the assigned cell types in order, separated by ' | '."

EXPECTED_USER = (
    "Context: The cell is from a female. \n"
    "\n"
    "Cell 1: CD3E, CD2\n"
    "Cell 2: MS4A1, CD79A\n"
    "\n"
    "Match the cells above to one of the following cell types:\n"
    "B cell\n"
    "T cell"
)


def test_system_msg_byte_exact():
    assert SYSTEM_MSG == EXPECTED_SYSTEM
    assert "\n" not in SYSTEM_MSG


def test_render_user_msg_byte_exact():
    text = render_user_msg(
        "The cell is from a female.", [["CD3E", "CD2"], ["MS4A1", "CD79A"]], ["B cell", "T cell"]
    )
    assert text == EXPECTED_USER
    assert not text.endswith("\n")


def test_parse_user_msg_inverts_render():
    context, genes, candidates = parse_user_msg(EXPECTED_USER)
    assert context == "The cell is from a female."
    assert genes == [["CD3E", "CD2"], ["MS4A1", "CD79A"]]
    assert candidates == ["B cell", "T cell"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "Ctx: x \n\nCell 1: A\n\nMatch the cells above to one of the following cell types:\nB",
            "does not start",
        ),
        ("Context: x \n\nCell 1: A\n\nWhich types?\nB", "Match the cells above"),
        (
            "Context: x\n\nCell 1: A\n\nMatch the cells above to one of the following cell types:\nB",
            "blank line",
        ),
        (
            "Context: x \n\nCell 2: A\n\nMatch the cells above to one of the following cell types:\nB",
            "cell line 1",
        ),
    ],
)
def test_parse_user_msg_bad_layout(text, match):
    with pytest.raises(ValueError, match=match):
        parse_user_msg(text)


def test_build_messages_styles():
    u = EXPECTED_USER
    assert build_messages(u) == [{"role": "user", "content": u + "\n" + EXPECTED_SYSTEM}]
    assert build_messages(u, style="rl") == [{"role": "user", "content": u + " " + EXPECTED_SYSTEM}]
    assert build_messages(u, style="sft", assistant_msg="B cell | T cell") == [
        {"role": "system", "content": EXPECTED_SYSTEM},
        {"role": "user", "content": u},
        {"role": "assistant", "content": "B cell | T cell"},
    ]


def test_build_messages_bad_style():
    with pytest.raises(ValueError, match="prompt style"):
        build_messages(EXPECTED_USER, style="chat")

from __future__ import annotations

import pytest

from sc_cello1.metrics import extract_answer, extract_reasoning, is_valid_format, split_items
from tests.data import _authors
from tests.metrics._cases import COMPLETIONS


@pytest.mark.parametrize("name", sorted(COMPLETIONS))
def test_extract_matches_authors(name):
    text = COMPLETIONS[name]
    candidate, reasoning = _authors.extract_candidate_and_reasoning_simple(text)
    assert extract_answer(text) == candidate
    assert extract_reasoning(text) == reasoning


@pytest.mark.parametrize("name", sorted(COMPLETIONS))
def test_format_matches_authors(name):
    text = COMPLETIONS[name]
    candidate, _ = _authors.extract_candidate_and_reasoning_simple(text)
    assert is_valid_format(text) == _authors.is_legitimate_format(text, candidate, "gold")


@pytest.mark.parametrize(
    ("name", "answer", "valid"),
    [
        ("valid", "B cell | T cell | NK cell", True),
        ("pipe_fallback_line", "B cell | T cell | NK cell", False),
        # the answer line is empty after <answer>: the first line with "|" is used
        ("pipe_in_think_first", "<think>maybe T cell | B cell</think>", True),
        ("empty_answer", "", False),
        ("text_after_answer", "B cell | T cell | NK cell", False),
        ("missing_close_answer", "B cell | T cell | NK cell", False),
        ("no_pipe_single_item", "B cell", False),
        # re's "$" also matches before a final newline, as in the authors' check
        ("trailing_newline", "B cell | T cell | NK cell", True),
    ],
)
def test_known_values(name, answer, valid):
    assert extract_answer(COMPLETIONS[name]) == answer
    assert is_valid_format(COMPLETIONS[name]) is valid


def test_split_items():
    assert split_items(" a |b||  c | ") == ["a", "b", "c"]
    assert split_items("") == []

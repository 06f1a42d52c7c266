"""The answer format's one home: constants, helpers, and unchanged label scores."""

from __future__ import annotations

import difflib
import itertools
import re
import string
from functools import lru_cache

import pytest

from sc_cello1 import _answer
from sc_cello1.data import read_puzzles
from sc_cello1.inference._repair import label_similarity

FIXTURE = "tests/fixtures/cellpuzzles/test-00000-of-00001.parquet"

# -- the implementation of label_similarity before it moved onto _answer.fold_label ---
_PUNCT = re.compile("[" + re.escape("".join(c for c in string.punctuation if c not in "+-")) + "]")
_SPACE = re.compile(r"\s+")
_HYPHEN = re.compile(r"(?<=\w)[-_/](?=\w)")


@lru_cache(maxsize=4096)
def _old_norm(label):
    return _SPACE.sub(" ", _PUNCT.sub(" ", _HYPHEN.sub(" ", label.casefold()))).strip()


@lru_cache(maxsize=4096)
def _old_singular(label):
    words = []
    for w in _old_norm(label).split(" "):
        if len(w) > 3 and w.endswith("ies"):
            w = w[:-3] + "y"
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        words.append(w)
    return " ".join(words)


def _old_similarity(item, candidate):
    if item == candidate:
        return 1.0
    if _SPACE.sub(" ", item.casefold()).strip() == _SPACE.sub(" ", candidate.casefold()).strip():
        return 0.99
    a, b = _old_norm(item), _old_norm(candidate)
    if a == b:
        return 0.98
    if _old_singular(item) == _old_singular(candidate):
        return 0.97
    return 0.9 * difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _old_normalize_label(label):
    text = _HYPHEN.sub(" ", str(label).casefold())
    text = _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()
    words = text.split(" ")
    last = words[-1]
    if len(last) > 3 and last.endswith("s") and not last.endswith("ss"):
        words[-1] = last[:-1]
    return " ".join(words)


def _labels():
    """Real candidate labels of the CellPuzzles fixture plus the near misses models write."""
    real = sorted({c for p in read_puzzles(FIXTURE) for c in p.candidates})
    assert len(real) >= 5
    variants = []
    for lab in real:
        variants += [
            lab.lower(),
            lab.upper(),
            f"  {lab}s. ",
            lab.replace(" ", "-"),
            lab.replace(" ", "_") + "ies",
            lab.replace("+", ""),
            lab + "/" + lab[:3],
        ]
    return real + variants + ["T cells", "T-cell", "NK", "Mono", "", " ", "glass", "B/T", "cd4+"]


def test_label_similarity_scores_unchanged():
    labels = _labels()
    pairs = list(itertools.product(labels[:60], labels[:60])) + list(
        zip(labels, labels[::-1], strict=True)
    )
    for a, b in pairs:
        assert label_similarity(a, b) == _old_similarity(a, b), (a, b)


def test_normalize_label_unchanged():
    for lab in _labels():
        assert _answer.normalize_label(lab) == _old_normalize_label(lab), lab
        assert _answer.fold_label(lab) == _old_norm(lab), lab


def test_tags_and_separator():
    text = _answer.format_completion("why", _answer.join_items(["B cell", "T cell"]))
    assert text == "<think>why</think>\n<answer>B cell | T cell</answer>"
    assert _answer.is_valid_format(text)
    assert _answer.extract_reasoning(text) == "why"
    assert _answer.split_items(_answer.extract_answer(text)) == ["B cell", "T cell"]
    assert _answer.strip_tags(text) == "why"


def test_reexports_are_the_same_objects():
    from sc_cello1 import metrics
    from sc_cello1.metrics import _answer as metrics_answer

    for name in ("extract_answer", "extract_reasoning", "is_valid_format", "split_items"):
        assert getattr(metrics, name) is getattr(_answer, name)
        assert getattr(metrics_answer, name) is getattr(_answer, name)


@pytest.mark.parametrize(
    ("items", "candidates", "expected"),
    [
        (["T cell", "b CELL"], ["B cell", "T cell"], True),
        (["T cell", "T cell"], ["B cell", "T cell"], False),
        (["T cell"], ["B cell", "T cell"], False),
        (["T cells", "B cell"], ["B cell", "T cell"], False),
        ([], [], True),
    ],
)
def test_is_permutation(items, candidates, expected):
    assert _answer.is_permutation(items, candidates) is expected


def test_one_each():
    assert _answer.one_each(True, 5, 5) is True
    assert _answer.one_each(True, 6, 5) is False
    assert _answer.one_each(False, 1, 5) is False


def test_answer_module_imports_nothing_from_the_package():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(_answer.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("sc_cello1")
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("sc_cello1") for a in node.names)

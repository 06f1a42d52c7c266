"""Answer parsing and format checks, as in the authors' ``eval.py``."""

from __future__ import annotations

import re

_FORMAT = re.compile(r"^<think>.*?</think>\n<answer>.*?</answer>$", re.DOTALL)


def extract_answer(text: str) -> str:
    """The answer string of a model completion, by the authors' line-based rule.

    In the first line that contains ``<answer>``, the text after it, stripped, with a
    trailing ``</answer>`` removed. If that is empty or no line has ``<answer>``, the
    first line that contains ``|``, stripped. Otherwise the empty string.

    Parameters
    ----------
    text
        The completion.

    Returns
    -------
    The answer string (items separated by ``|``), possibly empty.

    Examples
    --------
    >>> extract_answer("<think>x</think>\\n<answer>B | T</answer>")
    'B | T'
    """
    lines = text.splitlines()
    candidate = ""
    for line in lines:
        if "<answer>" in line:
            candidate = line.split("<answer>", 1)[1].strip()
            if candidate.endswith("</answer>"):
                candidate = candidate.replace("</answer>", "").strip()
            break
    if not candidate:
        for line in lines:
            if "|" in line:
                candidate = line.strip()
                break
    return candidate


def extract_reasoning(text: str) -> str:
    """The text between the first ``<think>`` and the following ``</think>``, stripped.

    Empty if either tag is missing.
    """
    start = text.find("<think>")
    if start < 0:
        return ""
    start += len("<think>")
    end = text.find("</think>", start)
    if end < 0:
        return ""
    return text[start:end].strip()


def split_items(answer: str) -> list[str]:
    """Split an answer string on ``|``, strip each item and drop empty ones."""
    return [s.strip() for s in answer.split("|") if s.strip()]


def is_valid_format(text: str) -> bool:
    """Whether a completion has the valid Cell-o1 format.

    Exactly one each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>``; the whole
    text is ``<think>...</think>\\n<answer>...</answer>``; the extracted answer has ``|``.

    Examples
    --------
    >>> is_valid_format("<think>x</think>\\n<answer>B | T</answer>")
    True
    >>> is_valid_format("<answer>B | T</answer>")
    False
    """
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        if text.count(tag) != 1:
            return False
    if not _FORMAT.match(text):
        return False
    return "|" in extract_answer(text)

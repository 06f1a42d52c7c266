r"""The Cell-o1 answer format: the one home of its tags, separator and label normalisation.

A completion reads ``<think>REASONING</think>\n<answer>ITEM | ITEM | ...</answer>``.
Everything that reads or writes an answer (``data``, ``metrics``, ``inference``, ``tl``)
uses this module; it imports nothing from the package.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from functools import lru_cache

#: Opening and closing tags of the reasoning and of the answer.
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"
#: The separator between answer items (the system message asks for ``' | '``).
ANSWER_SEP = " | "
#: What :func:`split_items` splits on (items may come without the spaces).
ITEM_SEP = "|"

_FORMAT = re.compile(
    "^"
    + re.escape(THINK_OPEN)
    + ".*?"
    + re.escape(THINK_CLOSE)
    + "\n"
    + re.escape(ANSWER_OPEN)
    + ".*?"
    + re.escape(ANSWER_CLOSE)
    + "$",
    re.DOTALL,
)
_PUNCT = re.compile("[" + re.escape("".join(c for c in string.punctuation if c not in "+-")) + "]")
_SPACE = re.compile(r"\s+")
_JOINER = re.compile(r"(?<=\w)[-_/](?=\w)")


def format_completion(reasoning: str, answer: str) -> str:
    r"""Join a reasoning and an answer string into a completion in the Cell-o1 format.

    Examples
    --------
    >>> format_completion("x", "B | T")
    '<think>x</think>\n<answer>B | T</answer>'
    """
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}\n{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


def join_items(items: Iterable[str]) -> str:
    """Join answer items with :data:`ANSWER_SEP` (``" | "``).

    Examples
    --------
    >>> join_items(["B cell", "T cell"])
    'B cell | T cell'
    """
    return ANSWER_SEP.join(items)


def extract_answer(text: str) -> str:
    r"""Return the answer string of a model completion, by the authors' line-based rule.

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
    >>> extract_answer("<think>x</think>\n<answer>B | T</answer>")
    'B | T'
    """
    lines = text.splitlines()
    candidate = ""
    for line in lines:
        if ANSWER_OPEN in line:
            candidate = line.split(ANSWER_OPEN, 1)[1].strip()
            if candidate.endswith(ANSWER_CLOSE):
                candidate = candidate.replace(ANSWER_CLOSE, "").strip()
            break
    if not candidate:
        for line in lines:
            if ITEM_SEP in line:
                candidate = line.strip()
                break
    return candidate


def strict_answer(text: str) -> str | None:
    r"""Return the text between the last ``<answer>`` and the ``</answer>`` after it.

    The strict reading used for votes: no fallback to other lines, newlines inside the
    tags allowed, the text stripped. ``None`` when there is no ``<answer>`` or it is
    never closed (a cut-off completion). The authors' lenient rule stays in
    :func:`extract_answer` (used by :mod:`sc_cello1.metrics`).

    Examples
    --------
    >>> strict_answer("<think>a | b</think>\n<answer>\nB | T\n</answer>")
    'B | T'
    >>> strict_answer("<think>B | T") is None
    True
    """
    start = text.rfind(ANSWER_OPEN)
    if start < 0:
        return None
    start += len(ANSWER_OPEN)
    end = text.find(ANSWER_CLOSE, start)
    if end < 0:
        return None
    return text[start:end].strip()


def split_slots(answer: str) -> list[str]:
    """Split an answer string on ``|`` by position, keeping empty items as ``""``.

    Each item belongs to the cell at its position, so an empty item keeps its place
    (unlike :func:`split_items`, the authors' rule, which drops it). An empty answer
    has no items.

    Examples
    --------
    >>> split_slots("A |  | C")
    ['A', '', 'C']
    >>> split_slots("")
    []
    """
    if not answer.strip():
        return []
    return [s.strip() for s in answer.split(ITEM_SEP)]


def read_items(text: str, n_cells: int) -> tuple[list[str] | None, str]:
    """Read a completion strictly for votes: the items, or ``None`` and why not.

    The answer is :func:`strict_answer` split by :func:`split_slots`; it can vote only
    when it has exactly one item per cell.

    Parameters
    ----------
    text
        The completion.
    n_cells
        Cells of the puzzle.

    Returns
    -------
    ``(items, "ok")`` or ``(None, reason)`` with reason ``"no answer tag"``,
    ``"empty answer"`` or ``"7 items for 2 cells"``.

    Examples
    --------
    >>> read_items("<answer>A | B | C</answer>", 2)
    (None, '3 items for 2 cells')
    >>> read_items("<answer>A | B</answer>", 2)
    (['A', 'B'], 'ok')
    """
    answer = strict_answer(text)
    if answer is None:
        return None, "no answer tag"
    items = split_slots(answer)
    if not items:
        return None, "empty answer"
    if len(items) != n_cells:
        noun = "item" if len(items) == 1 else "items"
        return None, f"{len(items)} {noun} for {n_cells} cell{'s' if n_cells != 1 else ''}"
    return items, "ok"


def extract_reasoning(text: str) -> str:
    """Return the text between the first ``<think>`` and the following ``</think>``, stripped.

    Empty if either tag is missing.

    Examples
    --------
    >>> extract_reasoning("<think> x </think>")
    'x'
    """
    start = text.find(THINK_OPEN)
    if start < 0:
        return ""
    start += len(THINK_OPEN)
    end = text.find(THINK_CLOSE, start)
    if end < 0:
        return ""
    return text[start:end].strip()


def strip_tags(text: str) -> str:
    r"""Return the reasoning of a completion without tags: the text before ``<answer>``.

    Examples
    --------
    >>> strip_tags("<think>x</think>\n<answer>B | T</answer>")
    'x'
    """
    return text.split(ANSWER_OPEN, 1)[0].replace(THINK_OPEN, "").replace(THINK_CLOSE, "").strip()


def split_items(answer: str) -> list[str]:
    """Split an answer string on ``|``, strip each item and drop empty ones.

    Examples
    --------
    >>> split_items("B cell |  T cell | ")
    ['B cell', 'T cell']
    """
    return [s.strip() for s in answer.split(ITEM_SEP) if s.strip()]


def is_valid_format(text: str) -> bool:
    r"""Check whether a completion has the valid Cell-o1 format.

    Exactly one each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>``; the whole
    text is ``<think>...</think>\n<answer>...</answer>``; the extracted answer has ``|``.

    Examples
    --------
    >>> is_valid_format("<think>x</think>\n<answer>B | T</answer>")
    True
    >>> is_valid_format("<answer>B | T</answer>")
    False
    """
    for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE):
        if text.count(tag) != 1:
            return False
    if not _FORMAT.match(text):
        return False
    return ITEM_SEP in extract_answer(text)


def is_permutation(items: Iterable[str], candidates: Iterable[str]) -> bool:
    """Check whether answer items are exactly the candidates, each once, ignoring case.

    Examples
    --------
    >>> is_permutation(["t cell", "B cell"], ["B cell", "T cell"])
    True
    >>> is_permutation(["T cell", "T cell"], ["B cell", "T cell"])
    False
    """
    return sorted(i.casefold() for i in items) == sorted(c.casefold() for c in candidates)


def one_each(unique: bool, n_items: int, n_candidates: int) -> bool:
    """Decide whether "each candidate at most once" applies to an answer.

    The one rule of sc-cello1 for unique answers: asked for (``unique``) and possible,
    that is no more items (cells, clusters) than candidates. Where it does not apply,
    labels may repeat.

    Parameters
    ----------
    unique
        Whether the caller asked for each candidate at most once.
    n_items
        Items to label: cells of a puzzle, clusters of an annotation.
    n_candidates
        Candidate labels available.

    Examples
    --------
    >>> one_each(True, 3, 5), one_each(True, 6, 5), one_each(False, 3, 5)
    (True, False, False)
    """
    return bool(unique) and n_items <= n_candidates


@lru_cache(maxsize=8192)
def fold_label(label: str) -> str:
    """Fold a label for comparison: case, word joiners, punctuation and spaces.

    Case-folded; ``-``, ``_`` and ``/`` between two word characters become spaces;
    other punctuation except ``+`` and ``-`` becomes a space; runs of whitespace become
    one space; stripped. Plurals are kept (see :func:`normalize_label`).

    Examples
    --------
    >>> fold_label(" T-Cells. ")
    't cells'
    """
    text = _JOINER.sub(" ", str(label).casefold())
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


@lru_cache(maxsize=8192)
def normalize_label(label: str) -> str:
    """Reduce a cell type name to the form two names are compared in.

    Case-folded; ``-``, ``_`` and ``/`` between two word characters become spaces
    (``T-cell`` and ``T cell`` match); other punctuation except ``+`` and ``-`` is dropped
    (so ``CD4+`` and ``CD4-`` stay apart); runs of whitespace become one space; and a
    trailing plural ``s`` of the last word is cut (``T cells`` -> ``t cell``; words of
    at most three letters and words ending in ``ss`` keep theirs).

    Parameters
    ----------
    label
        A candidate name, an answer item or a proposed name.

    Returns
    -------
    The normalised name (possibly empty).

    Examples
    --------
    >>> normalize_label("  CD14+ Monocytes ")
    'cd14+ monocyte'
    >>> normalize_label("T-cells") == normalize_label("t cell")
    True
    """
    words = fold_label(label).split(" ")
    last = words[-1]
    if len(last) > 3 and last.endswith("s") and not last.endswith("ss"):
        words[-1] = last[:-1]
    return " ".join(words)

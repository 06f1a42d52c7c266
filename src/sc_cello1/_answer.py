"""The Cell-o1 answer format: the one home of its tags, separator and label normalisation.

Everything that reads or writes an answer (``data``, ``metrics``, ``inference``, ``tl``)
uses this module; it imports nothing from the package.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache

_PUNCT = re.compile("[" + re.escape("".join(c for c in string.punctuation if c not in "+-")) + "]")
_SPACE = re.compile(r"\s+")
_JOINER = re.compile(r"(?<=\w)[-_/](?=\w)")


@lru_cache(maxsize=8192)
def normalize_label(label: str) -> str:
    """A cell type name reduced to the form two names are compared in.

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
    text = _JOINER.sub(" ", str(label).casefold())
    text = _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()
    words = text.split(" ")
    last = words[-1]
    if len(last) > 3 and last.endswith("s") and not last.endswith("ss"):
        words[-1] = last[:-1]
    return " ".join(words)

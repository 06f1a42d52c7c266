"""Answer parsing and format checks, as in the authors' ``eval.py``.

They live in :mod:`sc_cello1._answer` (the one home of the answer format, below
``data`` and ``metrics``); this module keeps the names ``metrics`` exported before.
"""

from sc_cello1._answer import extract_answer, extract_reasoning, is_valid_format, split_items

__all__ = ["extract_answer", "extract_reasoning", "is_valid_format", "split_items"]

"""CellPuzzles: the :class:`Puzzle` record, its prompts, building, splitting and I/O."""

from ._context import CONTEXT_FIELDS, context_sentence
from ._prompts import PROMPT_VERSION, SYSTEM_MSG, build_messages
from ._puzzle import Puzzle

__all__ = [
    "CONTEXT_FIELDS",
    "PROMPT_VERSION",
    "SYSTEM_MSG",
    "Puzzle",
    "build_messages",
    "context_sentence",
]

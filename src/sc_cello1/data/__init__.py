"""CellPuzzles: the :class:`Puzzle` record, its prompts, building, splitting and I/O."""

from ._build import build_puzzles
from ._context import CONTEXT_FIELDS, context_sentence
from ._io import read_puzzles, write_puzzles
from ._prompts import PROMPT_STYLES, PROMPT_VERSION, SYSTEM_MSG, build_messages
from ._puzzle import Puzzle
from ._split import split_puzzles

__all__ = [
    "CONTEXT_FIELDS",
    "PROMPT_STYLES",
    "PROMPT_VERSION",
    "SYSTEM_MSG",
    "Puzzle",
    "build_messages",
    "build_puzzles",
    "context_sentence",
    "read_puzzles",
    "split_puzzles",
    "write_puzzles",
]

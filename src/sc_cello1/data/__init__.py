"""CellPuzzles: the :class:`Puzzle` record, its prompts, building, splitting and I/O."""

from sc_cello1._hub import DatasetNotCachedError

from ._build import build_puzzles
from ._cellpuzzles import SPLITS, cellpuzzles
from ._context import CONTEXT_FIELDS, context_sentence
from ._files import read_puzzles, write_puzzles
from ._leakage import leakage
from ._prompts import PROMPT_STYLES, PROMPT_VERSION, SYSTEM_MSG, build_messages
from ._puzzle import Puzzle
from ._split import split_puzzles

__all__ = [
    "CONTEXT_FIELDS",
    "PROMPT_STYLES",
    "PROMPT_VERSION",
    "SPLITS",
    "SYSTEM_MSG",
    "DatasetNotCachedError",
    "Puzzle",
    "build_messages",
    "build_puzzles",
    "cellpuzzles",
    "context_sentence",
    "leakage",
    "read_puzzles",
    "split_puzzles",
    "write_puzzles",
]

"""Tools: annotate clusters with Cell-o1, solve CellPuzzles."""

from ._annotate import annotate
from ._solve import SolveResult, solve

__all__: list[str] = ["SolveResult", "annotate", "solve"]

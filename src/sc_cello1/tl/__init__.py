"""Tools: annotate clusters with Cell-o1, solve CellPuzzles, benchmark a model."""

from ._annotate import annotate
from ._benchmark import BenchmarkResult, benchmark
from ._solve import SolveResult, solve
from ._solve_run import SolveError

__all__: list[str] = [
    "BenchmarkResult",
    "SolveError",
    "SolveResult",
    "annotate",
    "benchmark",
    "solve",
]

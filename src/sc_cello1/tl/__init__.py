"""Tools: annotate clusters with Cell-o1, solve CellPuzzles, benchmark a model."""

from ._annotate import annotate
from ._benchmark import BenchmarkResult, benchmark
from ._solve import SolveResult, solve

__all__: list[str] = ["BenchmarkResult", "SolveResult", "annotate", "benchmark", "solve"]

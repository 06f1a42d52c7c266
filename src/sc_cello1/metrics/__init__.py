"""Answer parsing, the authors' GRPO reward and the paper's evaluation metrics."""

from ._answer import extract_answer, extract_reasoning, is_valid_format, split_items
from ._benchmark import REPORTED, benchmark_table, reported_figures
from ._evaluate import evaluate, evaluate_by_size, score_completion
from ._reward import cellpuzzles_reward, reward

__all__ = [
    "REPORTED",
    "benchmark_table",
    "cellpuzzles_reward",
    "evaluate",
    "evaluate_by_size",
    "extract_answer",
    "extract_reasoning",
    "is_valid_format",
    "reported_figures",
    "reward",
    "score_completion",
    "split_items",
]

"""``cello1 benchmark``: a model on the public CellPuzzles split, next to the paper's figures."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark`` subcommand."""
    from sc_cello1._config import add_config_options
    from sc_cello1.inference._cli import add_server_options

    from ._benchmark_config import BenchmarkConfig

    p = subparsers.add_parser(
        "benchmark",
        help="evaluate a model on the public CellPuzzles split (full and clean subset), next to the paper",
        description=(
            "Fetch the public CellPuzzles split (ncbi/CellPuzzles, through the same verified "
            "cache as the weights), run the model with the paper's evaluation prompting (greedy, "
            "up to 3,500 new tokens; resumable: rerun the same command after an interruption), "
            "and write the paper's metrics per puzzle size N and overall, for the full split and "
            "the subset with no cell shared with the train split, next to the reported figures: "
            "OUTPUT_DIR/benchmark.csv, benchmark.json (with provenance), benchmark.png, "
            "predictions.jsonl. Example: cello1 benchmark --model cell-o1 -o bench/"
        ),
    )
    add_config_options(p, BenchmarkConfig)
    p.add_argument(
        "--offline", action="store_true", help="make no request; model and dataset must be cached"
    )
    p.add_argument(
        "--base-url", default=None, help="openai backend: API root, e.g. http://127.0.0.1:8000/v1"
    )
    p.add_argument("--api-key", default=None, help="openai backend: key (default: $OPENAI_API_KEY)")
    add_server_options(p)
    p.set_defaults(func=_benchmark)


def _benchmark(args: argparse.Namespace) -> int:
    from sc_cello1._config import config_from_args
    from sc_cello1.inference._cli import server_kwargs

    from ._benchmark import run_benchmark
    from ._benchmark_config import BenchmarkConfig

    kwargs: dict[str, Any] = server_kwargs(args)
    config = config_from_args(
        args, BenchmarkConfig, download=not args.offline, backend_kwargs=kwargs
    )
    result = run_benchmark(config)
    print(result.summary())
    print()
    for kind, path in result.files.items():
        print(f"{kind:<12}{path}")
    return 0

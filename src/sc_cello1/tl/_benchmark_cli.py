"""``cello1 benchmark``: a model on the public CellPuzzles split, next to the paper's figures."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark`` subcommand."""
    from sc_cello1.data import SPLITS
    from sc_cello1.inference import BACKENDS
    from sc_cello1.inference._cli import add_server_options

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
    p.add_argument(
        "--model",
        required=True,
        help="registered name (NAME@REV for a revision), folder, .gguf or server model name",
    )
    p.add_argument(
        "-o", "--output-dir", required=True, help="folder for the results and the resumable cache"
    )
    p.add_argument(
        "--split",
        default="test",
        choices=list(SPLITS),
        help="dataset split (default: test, the paper's)",
    )
    p.add_argument(
        "--data-revision",
        default="main",
        help="dataset revision: a commit, or 'main' (the default: resolved once to the hub's current commit and recorded)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="run K puzzles, stratified by N (a quick look; not comparable with the paper)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=3500,
        help="cap on new tokens (default: 3500, as in the paper)",
    )
    p.add_argument(
        "--leakage-by",
        default="ranked",
        choices=["ranked", "set"],
        help="clean subset: no identical ranked gene list (default) or gene set in train",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=list(BACKENDS),
        help="inference backend (default: auto)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="prompts per generate call (default: backend's)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit subset (default: 0)")
    p.add_argument(
        "--cache-dir",
        default=None,
        help="cache root for model and dataset (default: $CELLO1_CACHE_DIR)",
    )
    p.add_argument(
        "--mirror",
        default=None,
        help="base URL of a hub mirror (default: $CELLO1_MIRROR or the hub)",
    )
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
    from sc_cello1.inference._cli import server_kwargs
    from sc_cello1.tl import benchmark

    kwargs: dict[str, Any] = server_kwargs(args)
    result = benchmark(
        model=args.model,
        output_dir=args.output_dir,
        split=args.split,
        data_revision=args.data_revision,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        leakage_by=args.leakage_by,
        backend=args.backend,
        batch_size=args.batch_size,
        seed=args.seed,
        cache_dir=args.cache_dir,
        mirror=args.mirror,
        download=not args.offline,
        backend_kwargs=kwargs,
    )
    print(result.summary())
    print()
    for kind, path in result.files.items():
        print(f"{kind:<12}{path}")
    return 0

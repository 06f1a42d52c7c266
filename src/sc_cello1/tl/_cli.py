"""``cello1 solve``: run a CellPuzzles file through a model, write predictions as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``solve`` subcommand."""
    from sc_cello1.inference import BACKENDS

    p = subparsers.add_parser(
        "solve",
        help="solve CellPuzzles with a model; write predictions (.jsonl) for `cello1 evaluate`",
        description=(
            "Run every puzzle of PUZZLES (.parquet/.jsonl/.json CellPuzzles records) through a "
            "model and write one JSON line per puzzle and sample (puzzle, sample, text, answer, "
            "gold, ...). Reproduce the paper's evaluation with: "
            "cello1 solve test.parquet -o preds.jsonl --model cell-o1 && cello1 evaluate preds.jsonl"
        ),
    )
    p.add_argument(
        "puzzles", metavar="PUZZLES", help="CellPuzzles file (.parquet, .jsonl or .json)"
    )
    p.add_argument(
        "-o", "--output", metavar="PREDICTIONS", required=True, help="output .jsonl file"
    )
    p.add_argument(
        "--model",
        default=None,
        help="registered name, model folder, .gguf file, or server model name (default: settings.default_model)",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=list(BACKENDS),
        help="inference backend (default: auto)",
    )
    p.add_argument(
        "--num-generations", type=int, default=1, help="completions per puzzle (default: 1)"
    )
    # the old name, kept for one release (annotate's --n-samples: minimum of cells per cluster)
    p.add_argument("--n-samples", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=3500,
        help="cap on new tokens (default: 3500, as in the paper)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument(
        "--cache-dir", default=None, help="resumable cache folder (default: OUTPUT + '.cache')"
    )
    p.add_argument("--no-cache", action="store_true", help="do not cache finished puzzles")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="prompts per generate call (default: backend's)",
    )
    p.add_argument("--constrained", action="store_true", help="constrain answers to the candidates")
    p.add_argument(
        "--base-url", default=None, help="openai backend: API root, e.g. http://127.0.0.1:8000/v1"
    )
    p.add_argument("--api-key", default=None, help="openai backend: key (default: $OPENAI_API_KEY)")
    p.add_argument(
        "--style",
        default="eval",
        choices=["eval", "sft", "rl"],
        help="prompt layout (default: eval, the paper's)",
    )
    p.set_defaults(func=_solve)

    from ._annotate_cli import add_annotate_parser

    add_annotate_parser(subparsers)


def _write_atomic(path: Path, text: str) -> None:
    from sc_cello1._io import atomic_write

    with atomic_write(path) as f:
        f.write(text)


def _solve(args: argparse.Namespace) -> int:
    from sc_cello1 import settings
    from sc_cello1.data import read_puzzles
    from sc_cello1.tl import solve

    out = Path(args.output)
    if out.suffix != ".jsonl":
        msg = f"output {str(out)!r} must end in .jsonl"
        raise ValueError(msg)
    if not Path(args.puzzles).exists():
        msg = f"puzzles file {args.puzzles!r} does not exist"
        raise FileNotFoundError(msg)
    puzzles = read_puzzles(args.puzzles)
    kwargs: dict[str, Any] = {}
    if args.base_url is not None:
        kwargs["base_url"] = args.base_url
    if args.api_key is not None:
        kwargs["api_key"] = args.api_key
    cache_dir = None if args.no_cache else (args.cache_dir or str(out) + ".cache")
    num_generations = args.num_generations
    if args.n_samples is not None:
        print(
            "cello1 solve: --n-samples is renamed --num-generations and will be removed.",
            file=sys.stderr,
        )
        num_generations = args.n_samples
    records = solve(
        puzzles,
        model=args.model or settings.default_model,
        backend=args.backend,
        num_generations=num_generations,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        style=args.style,
        constrained=args.constrained,
        cache_dir=cache_dir,
        batch_size=args.batch_size,
        backend_kwargs=kwargs,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    meta = out.with_suffix(".provenance.json")
    _write_atomic(meta, json.dumps(records.provenance, indent=2, default=str) + "\n")
    n_valid = sum(r["valid_format"] for r in records)
    print(
        f"wrote {len(records)} predictions ({n_valid} in valid format) to {out}; provenance in {meta}",
        file=sys.stderr,
    )
    return 0

"""``cello1 solve``: run a CellPuzzles file through a model, write predictions as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``solve`` subcommand."""
    from sc_cello1._config import add_config_options
    from sc_cello1.inference._cli import add_server_options

    from ._solve_config import SolveConfig

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
    add_config_options(p, SolveConfig)
    p.add_argument("--no-cache", action="store_true", help="keep no answer cache (no --answer-dir)")
    p.add_argument(
        "--base-url", default=None, help="openai backend: API root, e.g. http://127.0.0.1:8000/v1"
    )
    p.add_argument("--api-key", default=None, help="openai backend: key (default: $OPENAI_API_KEY)")
    add_server_options(p)
    p.set_defaults(func=_solve)

    from ._annotate_cli import add_annotate_parser

    add_annotate_parser(subparsers)


def _write_atomic(path: Path, text: str) -> None:
    from sc_cello1._io import atomic_write

    with atomic_write(path) as f:
        f.write(text)


def _solve(args: argparse.Namespace) -> int:
    from sc_cello1._config import config_kwargs_from_args
    from sc_cello1.data import read_puzzles
    from sc_cello1.inference._cli import server_kwargs

    from ._solve import run_solve
    from ._solve_config import SolveConfig

    out = Path(args.output)
    if out.suffix != ".jsonl":
        msg = f"output {str(out)!r} must end in .jsonl"
        raise ValueError(msg)
    if not Path(args.puzzles).exists():
        msg = f"puzzles file {args.puzzles!r} does not exist"
        raise FileNotFoundError(msg)
    kwargs: dict[str, Any] = server_kwargs(args)
    given = config_kwargs_from_args(args, SolveConfig)  # maps the old --cache-dir
    answer_dir = None if args.no_cache else (given.get("answer_dir") or str(out) + ".cache")
    config = SolveConfig.from_call(**{**given, "answer_dir": answer_dir, "backend_kwargs": kwargs})
    records = run_solve(read_puzzles(args.puzzles), config)
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

"""The ``cello1`` command line: thin wrappers around the public API.

Each area registers its subcommands from a private ``_cli`` module
(``register(subparsers)``), so this file stays a dispatcher.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Modules that provide ``register(subparsers)``; each adds its own subcommands.
_COMMAND_MODULES = (
    "sc_cello1.data._cli",
    "sc_cello1.metrics._cli",
    "sc_cello1.models._cli",
    "sc_cello1.tl._cli",
    "sc_cello1.tl._benchmark_cli",
    "sc_cello1.train._cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``cello1`` argument parser with every registered subcommand."""
    from sc_cello1 import __version__

    parser = argparse.ArgumentParser(
        prog="cello1",
        description="Cell-o1 for single-cell data: build CellPuzzles, annotate, evaluate, train.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cello1``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from sc_cello1 import settings

    settings.verbosity = min(1 + args.verbose, 3)
    if args.verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger("sc_cello1").addHandler(handler)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, TypeError, FileNotFoundError) as e:
        # KeyError's str() quotes its message; show the message itself.
        text = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"cello1 {args.command}: error: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

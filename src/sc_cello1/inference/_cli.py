"""Command-line options of the OpenAI-compatible backend, shared by annotate, solve, benchmark."""

from __future__ import annotations

import argparse
from typing import Any


def add_server_options(p: argparse.ArgumentParser) -> None:
    """Add ``--timeout``, ``--max-retries`` and ``--max-concurrency`` (openai backend)."""
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="openai backend: seconds to wait for one answer before retrying (default: 600)",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=None,
        metavar="N",
        help="openai backend: retries per request after a 429/5xx, dropped connection or timeout (default: 5)",
    )
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="openai backend: requests in flight at once (default: 8)",
    )


def server_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Return the backend keywords given on the command line (only those given)."""
    out: dict[str, Any] = {}
    for name in ("base_url", "api_key", "timeout", "max_retries", "max_concurrency"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    return out

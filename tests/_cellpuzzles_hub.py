"""The stand-in CellPuzzles dataset served on 127.0.0.1 in the hub's layout."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.make_cellpuzzles import write_public_dataset
from tests.models._servers import HubServer

COMMIT = "c0ffee" + "1" * 34


@dataclass
class ServedDataset:
    server: HubServer
    url: str
    commit: str
    folder: Path  # the served revision folder (data/{split}-...parquet inside)

    def gets(self) -> list[str]:
        return [p for (m, p) in self.server.log if m == "GET"]


@contextlib.contextmanager
def served_cellpuzzles(root: Path) -> Iterator[ServedDataset]:
    """Serve ``<root>/datasets/ncbi/CellPuzzles/resolve/<COMMIT>/data/...``; main -> COMMIT."""
    folder = root / "datasets" / "ncbi" / "CellPuzzles" / "resolve" / COMMIT
    write_public_dataset(folder)
    server = HubServer(root, refs={"main": COMMIT})
    try:
        yield ServedDataset(server, server.url, COMMIT, folder)
    finally:
        server.stop()

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.models._servers import MODEL_FILES, StaticServer, lay_out, sha256

_COUNTER = itertools.count()


@dataclass
class ServedModel:
    name: str
    repo: str
    revision: str
    server: StaticServer
    served: Path  # the folder the server serves the files from
    cache: Path
    hashes: dict[str, str]  # true sha256 of every served file

    def get_requests(self) -> list[str]:
        return [r for r in self.server.requests() if "/resolve/" in r]


@pytest.fixture
def served_model(tiny_qwen2, tmp_path) -> ServedModel:
    """The tiny Qwen2 served by `python -m http.server` and registered (hashes unknown)."""
    from sc_cello1 import models

    repo, revision = "lab/tiny-qwen2", "0123456789abcdef0123456789abcdef01234567"
    served = lay_out(tiny_qwen2, tmp_path / "srv", repo, revision)
    server = StaticServer(tmp_path / "srv", tmp_path / "server.log")
    name = f"test-tiny-{next(_COUNTER)}"
    models.register(
        name,
        base_url=server.url,
        repo=repo,
        revision=revision,
        files=dict.fromkeys(MODEL_FILES),
        licence="MIT",
        description="tiny random Qwen2 for tests",
    )
    try:
        yield ServedModel(
            name=name,
            repo=repo,
            revision=revision,
            server=server,
            served=served,
            cache=tmp_path / "cache",
            hashes={f: sha256(served / f) for f in MODEL_FILES},
        )
    finally:
        models.unregister(name)
        server.stop()

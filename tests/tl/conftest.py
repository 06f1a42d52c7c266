from __future__ import annotations

import pytest


@pytest.fixture
def broken_model(tmp_path):
    """A model folder that passes the cheap path check but fails loudly if loaded."""
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "config.json").write_text("{ this is not json")
    return folder

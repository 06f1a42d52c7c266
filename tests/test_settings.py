"""cello1.settings, and settings.override (scoped settings, restored whatever happens)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import sc_cello1 as cello1
from sc_cello1._logging import logger


def test_override_sets_and_restores_every_setting(tmp_path):
    s = cello1.settings
    before = (s.verbosity, s.progress, s._cache_dir, s.mirror, s.default_model, s.default_backend)
    with s.override(
        verbosity="debug",
        progress=not s.progress,
        cache_dir=tmp_path,
        mirror="http://127.0.0.1:9",
        default_model="smollm2-135m",
        default_backend="transformers",
    ) as inside:
        assert inside is s
        assert s.verbosity == "debug" and logger.level == logging.DEBUG
        assert s.cache_dir == Path(tmp_path) and s.mirror == "http://127.0.0.1:9"
        assert (s.default_model, s.default_backend) == ("smollm2-135m", "transformers")
    after = (s.verbosity, s.progress, s._cache_dir, s.mirror, s.default_model, s.default_backend)
    assert after == before
    assert logger.level == logging.getLevelName(before[0].upper())


def test_override_restores_after_an_error_and_keeps_an_unset_cache_dir_unset(tmp_path, monkeypatch):
    s = cello1.settings
    # an unset cache dir (the default follows $CELLO1_CACHE_DIR), whatever earlier tests did
    monkeypatch.setattr(s, "_cache_dir", None)
    verbosity = s.verbosity
    with pytest.raises(RuntimeError), s.override(cache_dir=tmp_path, verbosity="info"):
        raise RuntimeError
    assert s._cache_dir is None and s.verbosity == verbosity


def test_override_checks_values_and_names_before_changing_anything(tmp_path):
    s = cello1.settings
    before = (s._cache_dir, s.verbosity)
    with (
        pytest.raises(ValueError, match="verbosity='loud'"),
        s.override(cache_dir=tmp_path, verbosity="loud"),
    ):
        pass  # pragma: no cover
    assert (s._cache_dir, s.verbosity) == before
    with pytest.raises(TypeError, match=r"no setting\(s\) \['cache'\]"), s.override(cache="x"):
        pass  # pragma: no cover

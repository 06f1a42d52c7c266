"""Messages reach the user by default (scanpy's convention) and progress follows settings."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sc_cello1 as cello1
from sc_cello1 import _logging

SRC = Path(__file__).resolve().parents[1] / "src"


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "CELLO1_PROGRESS"}
    environ.update(PYTHONPATH=str(SRC), **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
        check=True,
    )


def test_warning_of_a_library_call_is_shown_by_default():
    # build_puzzles on data without the CELLxGENE context columns warns that every
    # prompt will read "The cell is from" (the first surprise of issue 11).
    code = """
        import scanpy as sc
        import sc_cello1 as cello1
        adata = sc.datasets.pbmc68k_reduced()
        adata.obs["donor"] = "d1"
        cello1.data.build_puzzles(adata, cell_type_key="bulk_labels", donor_key="donor",
                                  use_raw=True, n_cells=(3, 4), per_size=2)
    """
    res = _python(code)
    assert "WARNING: none of the CELLxGENE context columns" in res.stderr
    assert "pass context=" in res.stderr
    assert res.stderr.count("none of the CELLxGENE") == 1


def test_info_only_with_verbosity_info():
    code = """
        import sc_cello1 as cello1
        cello1.logger.info("milestone one")
        cello1.settings.verbosity = "info"
        cello1.logger.info("milestone two")
        cello1.settings.verbosity = "error"
        cello1.logger.warning("silenced")
        cello1.logger.error("shown error")
    """
    err = _python(code).stderr
    assert "milestone one" not in err
    assert "milestone two\n" in err and "INFO" not in err
    assert "silenced" not in err
    assert "ERROR: shown error" in err


def test_an_application_logging_setup_prints_each_message_once():
    code = """
        import logging
        import sc_cello1 as cello1
        logging.basicConfig(format="app|%(name)s|%(levelname)s|%(message)s")
        cello1.logger.warning("once")
    """
    err = _python(code).stderr
    assert err.count("once") == 1
    assert "app|sc_cello1|WARNING|once" in err


def test_one_handler_after_reimport_and_reload():
    def ours():
        return [h for h in cello1.logger.handlers if type(h).__name__ == "_PackageHandler"]

    assert len(ours()) == 1
    importlib.reload(_logging)
    importlib.import_module("sc_cello1._logging")
    assert len(ours()) == 1
    assert not any(type(h) is logging.StreamHandler for h in logging.getLogger().handlers)


def test_caplog_sees_package_warnings(caplog):
    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        cello1.logger.warning("for caplog")
    assert [r.getMessage() for r in caplog.records] == ["for caplog"]


def test_handler_writes_to_the_current_stderr(capsys, monkeypatch):
    # Without application handlers on the root logger, the package handler prints to
    # whatever sys.stderr is now (Jupyter and pytest replace it).
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    cello1.logger.warning("to stderr %d", 7)
    assert capsys.readouterr().err == "WARNING: to stderr 7\n"


def test_progress_setting(capsys, monkeypatch):
    assert cello1.settings.progress is True
    with _logging.progress_bar(range(3), desc="work-a", mininterval=0) as bar:
        for _ in bar:
            pass
    assert "work-a" in capsys.readouterr().err
    monkeypatch.setattr(cello1.settings, "progress", False)
    with _logging.progress_bar(range(3), desc="work-b") as bar:
        for _ in bar:
            pass
    assert "work-b" not in capsys.readouterr().err
    with pytest.raises(TypeError, match="True or False"):
        cello1.settings.progress = "no"


def test_progress_off_from_the_environment():
    code = "import sc_cello1 as c; print(c.settings.progress)"
    assert _python(code, CELLO1_PROGRESS="0").stdout.strip() == "False"
    assert _python(code, CELLO1_PROGRESS="1").stdout.strip() == "True"


def test_progress_outside_a_terminal_refreshes_rarely():
    bar = _logging.progress_bar(total=10, disable=False)
    try:
        # pytest captures stderr: not a terminal
        assert bar.mininterval == _logging.NON_TTY_MININTERVAL
    finally:
        bar.close()


def test_progress_bars_write_plain_lines_outside_a_terminal(monkeypatch):
    """Nested bars in a CI log: whole lines, no carriage returns or cursor-up codes."""
    import io

    from sc_cello1 import settings
    from sc_cello1._logging import progress_bar

    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr(settings, "progress", True)
    outer = progress_bar(total=2, desc="solving", mininterval=0)
    for _ in range(2):
        inner = progress_bar(total=3, desc="generate", leave=False, mininterval=0)
        for _ in range(3):
            inner.update()
        inner.close()
        outer.update()
    outer.close()
    text = err.getvalue()
    assert "\r" not in text and "\x1b[" not in text
    lines = text.splitlines()
    assert lines[-1].startswith("solving: 100%") and "2/2" in lines[-1]
    assert sum(line.startswith("generate: 100%") for line in lines) == 2

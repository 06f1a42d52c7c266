from __future__ import annotations

import pytest
from tests.models._servers import closed_port_url

from sc_cello1.cli import main


@pytest.mark.slow
def test_cli_fetch_prints_folder_and_reuses_cache(served_model, capsys):
    m = served_model
    assert main(["fetch", m.name, "--cache-dir", str(m.cache)]) == 0
    out, err = capsys.readouterr()
    path = out.strip().splitlines()[-1]
    assert path == str(m.cache / "models" / m.repo / m.revision)
    assert "model.safetensors" in err  # the progress bar
    n = len(m.get_requests())
    assert main(["fetch", m.name, "--cache-dir", str(m.cache), "--offline", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == path
    assert len(m.get_requests()) == n

    assert main(["models", "--cache-dir", str(m.cache)]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.strip().startswith(m.name))
    assert "True" in line and m.revision in line
    assert "ncbi/Cell-o1" in out


def test_cli_fetch_bad_input(tmp_path, capsys):
    assert main(["fetch", "no-such-model", "--cache-dir", str(tmp_path)]) == 2
    assert "Registered models" in capsys.readouterr().err
    assert main(["fetch", "cell-o1", "--cache-dir", str(tmp_path), "--offline"]) == 1
    assert "CELLO1_MIRROR" in capsys.readouterr().err
    assert (
        main(["fetch", "cell-o1", "--cache-dir", str(tmp_path), "--mirror", closed_port_url()]) == 1
    )
    err = capsys.readouterr().err
    assert "CELLO1_MIRROR" in err and "config.json" in err

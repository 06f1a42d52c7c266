"""Atomic writes honour the umask (``sc_cello1._io``) and every output goes through them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sc_cello1._io import atomic_dir, atomic_path, atomic_write, staged_into
from sc_cello1.data import Puzzle, read_puzzles, write_puzzles


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_text_has_umask_mode(tmp_path, umask):
    path = tmp_path / "out.jsonl"
    with atomic_write(path) as f:
        f.write("é\n")
    assert path.read_text(encoding="utf-8") == "é\n"
    assert _mode(path) == 0o666 & ~umask
    assert _leftovers(tmp_path) == []


def test_atomic_write_bytes_and_path(tmp_path, umask):
    with atomic_write(tmp_path / "b.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    with atomic_path(tmp_path / "p.txt", fsync=True) as tmp:
        assert tmp.parent == tmp_path and tmp.exists()
        tmp.write_text("x")
    assert (tmp_path / "p.txt").read_text() == "x"
    assert _mode(tmp_path / "b.bin") == _mode(tmp_path / "p.txt") == 0o666 & ~umask


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(path) as f:
        f.write("partial")
        raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert _leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="use 'w' or 'wb'"), atomic_write(path, "a"):
        pass


def test_atomic_write_replaces_a_0600_file_with_umask_mode(tmp_path, umask):
    path = tmp_path / "out.txt"
    path.write_text("old")
    path.chmod(0o600)
    with atomic_write(path) as f:
        f.write("new")
    assert path.read_text() == "new" and _mode(path) == 0o666 & ~umask


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".json"])
def test_write_puzzles_file_mode(tmp_path, suffix):
    old = os.umask(0o022)
    try:
        p = Puzzle(context="c", genes=[["A"], ["B"]], candidates=["x", "y"], answer=["x", "y"])
        path = write_puzzles([p], tmp_path / "sub" / f"p{suffix}")
    finally:
        os.umask(old)
    assert _mode(path) == 0o644
    assert read_puzzles(path)[0].candidates == ["x", "y"]
    assert _leftovers(path.parent) == []


def test_no_atomic_write_written_out_by_hand_in_src():
    """Every output of the package goes through ``sc_cello1._io`` (no mkstemp, mkdtemp, replace)."""
    src = Path(__file__).resolve().parents[1] / "src" / "sc_cello1"
    offenders = []
    for p in src.rglob("*.py"):
        if p.name == "_io.py":
            continue
        text = p.read_text()
        for needle in ("mkstemp(", "mkdtemp(", "os.replace(", "os.rename(", "NamedTemporaryFile("):
            if needle in text:
                offenders.append(f"{p.relative_to(src)}: {needle}")
    assert sorted(offenders) == [
        # the resumable .part (kept on failure to resume) handed to pooch, which moves it
        "_hub/_http.py: os.replace(",
        # the writability probe of train.check_output_dir: created and deleted at once
        "train/_data.py: NamedTemporaryFile(",
    ]


def test_atomic_dir_has_umask_mode_and_replaces_the_old_folder(tmp_path, umask):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert _mode(target) == 0o777 & ~umask and (target / "a.txt").read_text() == "1"
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_dir_failure_keeps_the_old_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("new")
        raise RuntimeError
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_staged_into_moves_the_marker_last_and_removes_stale_files(tmp_path, umask):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("keep.txt", "stale.bin", "done.json"):
        (out / name).write_text("old")
    (out / "sub").mkdir()
    (out / "sub" / "old.txt").write_text("old")
    seen = []
    with staged_into(out, last="done.json", remove=("stale.bin",)) as tmp:
        assert tmp.parent == out
        (tmp / "sub").mkdir()
        (tmp / "sub" / "new.txt").write_text("new")
        (tmp / "w.txt").write_text("new")
        (tmp / "done.json").write_text("new")
        seen.append(_mode(tmp))
    assert seen == [0o777 & ~umask]
    assert sorted(p.name for p in out.iterdir()) == ["done.json", "keep.txt", "sub", "w.txt"]
    assert [p.name for p in (out / "sub").iterdir()] == ["new.txt"]
    assert (out / "done.json").read_text() == "new"


def test_staged_into_failure_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "done.json").write_text("old")
    with pytest.raises(OSError), staged_into(out, last="done.json", remove=("done.json",)) as tmp:
        (tmp / "w.txt").write_text("new")
        raise OSError("disk full")
    assert sorted(p.name for p in out.iterdir()) == ["done.json"]


def test_solve_cache_and_cli_outputs_file_mode(tmp_path):
    from sc_cello1.cli import main
    from tests.inference._scripted import scripted_qwen2_dir

    p = Puzzle(context="c", genes=[["A"], ["B"]], candidates=["B cell", "T cell"])
    puzzles = write_puzzles([p], tmp_path / "p.jsonl")
    out = tmp_path / "preds.jsonl"
    old = os.umask(0o022)
    try:
        argv = [
            "solve", str(puzzles), "-o", str(out), "--model", str(scripted_qwen2_dir()),
            "--backend", "transformers", "--max-new-tokens", "20",
        ]  # fmt: skip
        assert main(argv) == 0
    finally:
        os.umask(old)
    cache = Path(str(out) + ".cache")
    entries = list(cache.glob("*.json"))
    assert len(entries) == 1 and json.loads(entries[0].read_text())["complete"]
    for path in [out, out.with_suffix(".provenance.json"), *entries]:
        assert _mode(path) == 0o644, path

"""Verified files are not hashed again in a new session while their size and mtime hold."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sc_cello1 import models
from sc_cello1._hub import _cache
from sc_cello1.models import _download

SRC = Path(__file__).resolve().parents[2] / "src"
BIG = 200 * 1024 * 1024
REVISION = "f" * 40

# A new Python session: registers the same model, counts every sha256 object created
# anywhere, and times the load (fetch without any request).
SESSION = """
import hashlib, json, sys, time
calls = []
real = hashlib.sha256
def counting(*a, **k):
    calls.append(1)
    return real(*a, **k)
hashlib.sha256 = counting
from sc_cello1 import models
spec = json.loads(sys.argv[1])
models.register(spec["name"], revision=spec["revision"], files=spec["files"], base_url="http://127.0.0.1:9")
start = time.perf_counter()
try:
    models.fetch(spec["name"], cache_dir=spec["cache"], download=False, verify=spec["verify"])
    error = None
except Exception as e:
    error = type(e).__name__
print(json.dumps({"seconds": time.perf_counter() - start, "hashes": len(calls), "error": error}))
"""


def _new_session(spec: dict, *, verify: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", SESSION, json.dumps({**spec, "verify": verify})],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def big_cache(tmp_path):
    """A cached model with a 200 MB (sparse) weights file whose hashes the registry knows."""
    name = "test-big"
    cache = tmp_path / "cache"
    folder = cache / "models" / name / REVISION
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}\n')
    weights = folder / "model.safetensors"
    with open(weights, "wb") as fh:
        fh.write(b"header")
        fh.truncate(BIG)  # sparse: no disk space, still 200 MB to read and hash
    start = time.perf_counter()
    files = {
        f: hashlib.sha256((folder / f).read_bytes()).hexdigest()
        for f in ("config.json", "model.safetensors")
    }
    hash_seconds = time.perf_counter() - start
    models.register(name, revision=REVISION, files=files, base_url="http://127.0.0.1:9")
    spec = {"name": name, "revision": REVISION, "files": files, "cache": str(cache)}
    try:
        yield spec, folder, hash_seconds
    finally:
        models.unregister(name)


@pytest.mark.slow  # hashes 200 MB a few times, starts Python subprocesses
def test_second_session_loads_a_large_verified_file_without_hashing(big_cache):
    spec, folder, hash_seconds = big_cache
    _download._VERIFIED.clear()

    first = _new_session(spec)  # first verification: hashes, records size and mtime
    assert first["error"] is None and first["hashes"] == 2
    manifest = json.loads((folder.parent / f"{REVISION}.manifest.json").read_text())
    entry = manifest["files"]["model.safetensors"]
    st = (folder / "model.safetensors").stat()
    assert entry["size"] == BIG and entry["mtime_ns"] == st.st_mtime_ns
    assert entry["sha256"] == spec["files"]["model.safetensors"]

    second = _new_session(spec)
    assert second["error"] is None
    assert second["hashes"] == 0  # nothing hashed at all
    assert second["seconds"] < 0.5, second  # well under a second
    assert second["seconds"] < hash_seconds / 2, (second, hash_seconds)

    forced = _new_session(spec, verify=True)  # `cello1 fetch --verify`
    assert forced["error"] is None and forced["hashes"] == 2

    # a touched file (new mtime, same bytes) is hashed once more, then trusted again
    os.utime(folder / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = _new_session(spec)
    assert touched["error"] is None and touched["hashes"] == 1
    assert _new_session(spec)["hashes"] == 0


@pytest.mark.slow  # hashes 200 MB, starts Python subprocesses
def test_a_modified_file_is_detected_in_a_new_session(big_cache, caplog):
    spec, folder, _ = big_cache
    assert _new_session(spec)["hashes"] == 2
    weights = folder / "model.safetensors"
    st = weights.stat()
    with open(weights, "r+b") as fh:  # same size, one byte changed
        fh.seek(BIG // 2)
        fh.write(b"\x01")
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    changed = _new_session(spec)
    assert changed["hashes"] == 1
    assert changed["error"] == "ModelNotCachedError"  # corrupted: removed, and no download allowed
    assert not weights.exists()


@pytest.mark.slow  # hashes 200 MB
def test_same_mtime_but_other_size_is_hashed(big_cache):
    spec, folder, _ = big_cache
    assert _new_session(spec)["hashes"] == 2
    weights = folder / "model.safetensors"
    st = weights.stat()
    with open(weights, "r+b") as fh:
        fh.truncate(BIG - 1)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored, size differs
    changed = _new_session(spec)
    assert changed["hashes"] == 1 and changed["error"] == "ModelNotCachedError"
    assert not weights.exists()


@pytest.mark.slow  # hashes 200 MB
def test_cli_fetch_verify_hashes_again(big_cache, monkeypatch, capsys):
    from sc_cello1.cli import main

    spec, folder, _ = big_cache
    assert _new_session(spec)["hashes"] == 2  # verified and recorded by another session
    hashed = []
    real = _download.sha256_file

    def counting(path, **kw):
        hashed.append(Path(path).name)
        return real(path, **kw)

    monkeypatch.setattr(_cache, "sha256_file", counting)  # the hub client hashes
    argv = ["fetch", spec["name"], "--cache-dir", spec["cache"], "--offline", "--no-progress"]
    assert main(argv) == 0 and hashed == []
    assert capsys.readouterr().out.strip() == str(folder)
    assert main([*argv, "--verify"]) == 0
    assert sorted(hashed) == ["config.json", "model.safetensors"]

"""Throughput of ``cello1.models.fetch``: download over loopback, and the verification
every later load does (sha256 of every file against the manifest).

Serves a synthetic model (config.json + one random weights file of ``--size-mb``) with
``python -m http.server`` on 127.0.0.1 and times:

1. the first fetch (stream to .part, hash on the fly, pooch check, manifest write);
2. a later load in a new session (every file hashed against the manifest, no request);
3. a repeated load in the same session (files unchanged since verified: no hashing).

Run: ``.venv/bin/python benchmarks/models_fetch.py --size-mb 1024``
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the weights file")
    args = parser.parse_args()

    from sc_cello1 import models
    from sc_cello1.models import _download

    repo, revision = "bench/model", "0" * 40
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        served = tmp / "srv" / repo / "resolve" / revision
        served.mkdir(parents=True)
        (served / "config.json").write_text('{"model_type": "qwen2"}\n')
        with open(served / "model.safetensors", "wb") as fh:
            for _ in range(args.size_mb):
                fh.write(os.urandom(1 << 20))
        port = _free_port()
        log = open(tmp / "server.log", "w")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                str(port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(tmp / "srv"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for _ in range(200):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            models.register(
                "bench-model",
                base_url=f"http://127.0.0.1:{port}",
                repo=repo,
                revision=revision,
                files={"config.json": None, "model.safetensors": None},
            )
            cache = tmp / "cache"
            t0 = time.perf_counter()
            models.fetch("bench-model", cache_dir=cache, progress=False)
            t_download = time.perf_counter() - t0
            _download._VERIFIED.clear()  # as in a new Python session
            t0 = time.perf_counter()
            models.fetch("bench-model", cache_dir=cache, progress=False)
            t_verify = time.perf_counter() - t0
            t0 = time.perf_counter()
            models.fetch("bench-model", cache_dir=cache, progress=False)
            t_memo = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait()
            log.close()
    mb = args.size_mb
    print(f"weights file: {mb} MB")
    print(f"first fetch (download + verify): {t_download:6.2f} s  {mb / t_download:7.0f} MB/s")
    print(f"load in a new session (verify):  {t_verify:6.2f} s  {mb / t_verify:7.0f} MB/s")
    print(f"load again in the same session:  {t_memo * 1000:6.1f} ms")


if __name__ == "__main__":
    main()

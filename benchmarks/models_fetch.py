"""Throughput of ``cello1.models.fetch``: download over loopback, and the verification
later loads do.

Serves a synthetic model (config.json + one random weights file of ``--size-mb``) with
``python -m http.server`` on 127.0.0.1 and times:

1. the first fetch (stream to .part, hash on the fly, pooch check, manifest write);
2. a load in a new Python session (a subprocess) with the files unchanged since they
   were verified (same size and mtime as in the manifest: no hashing, no request);
3. a load in a new session with ``verify=True`` (``cello1 fetch --verify``: every file
   hashed against the manifest, as every new session did before the manifest recorded
   sizes and times);
4. a repeated load in the same session.

Run: ``.venv/bin/python benchmarks/models_fetch.py --size-mb 1024``
"""

from __future__ import annotations

import argparse
import json
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


_SESSION = """
import json, sys, time
t0 = time.perf_counter()
from sc_cello1 import models
models.register("bench-model", base_url=sys.argv[1], repo="bench/model", revision="0" * 40,
                files={"config.json": None, "model.safetensors": None})
t1 = time.perf_counter()
models.fetch("bench-model", cache_dir=sys.argv[2], progress=False, download=False,
             verify=sys.argv[3] == "1")
print(json.dumps({"import": t1 - t0, "fetch": time.perf_counter() - t1}))
"""


def _new_session(url: str, cache: Path, verify: bool) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _SESSION, url, str(cache), "1" if verify else "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the weights file")
    args = parser.parse_args()

    from sc_cello1 import models

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
            url = f"http://127.0.0.1:{port}"
            unchanged = _new_session(url, cache, verify=False)
            verified = _new_session(url, cache, verify=True)
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
    t_new, t_verify = unchanged["fetch"], verified["fetch"]
    print(f"new session, files unchanged:    {t_new * 1000:6.1f} ms (no hashing, no request)")
    print(f"new session, --verify (hash all): {t_verify:6.2f} s  {mb / t_verify:7.0f} MB/s")
    print(f"load again in the same session:  {t_memo * 1000:6.1f} ms")


if __name__ == "__main__":
    main()

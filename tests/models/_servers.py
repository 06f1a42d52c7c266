"""Real HTTP servers on 127.0.0.1 for the model download tests.

``StaticServer`` is ``python -m http.server`` in a subprocess with its request log in a
file. ``CuttingServer`` is a small threaded server (a test double) that announces the
full Content-Length but closes the connection half-way through chosen files, and
honours ``Range`` requests, so interrupted and resumed downloads can be exercised.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    return f"http://127.0.0.1:{free_port()}"


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    msg = f"server on port {port} did not start"
    raise RuntimeError(msg)


def lay_out(model_dir: Path, root: Path, repo: str, revision: str) -> Path:
    """Copy a model folder to ``root/<repo>/resolve/<revision>/`` as the hub lays it out."""
    target = root / repo / "resolve" / revision
    target.mkdir(parents=True)
    for name in MODEL_FILES:
        shutil.copyfile(model_dir / name, target / name)
    return target


class StaticServer:
    """``python -m http.server`` on 127.0.0.1 serving ``root``; requests logged to a file."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._fh = open(log, "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-u",
                "-m",
                "http.server",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(root),
            ],
            stdout=self._fh,
            stderr=subprocess.STDOUT,
        )
        wait_listening(self.port)

    def requests(self) -> list[str]:
        """Paths of the GET requests served so far."""
        self._fh.flush()
        return re.findall(r'"GET (\S+) HTTP', self.log.read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self._fh.close()


class _CuttingHandler(http.server.BaseHTTPRequestHandler):
    server: _CuttingHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.log.append((self.command, self.path, self.headers.get("Range")))
        path = self.server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and self.server.ranges:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path.name in self.server.cut_once:
            self.server.cut_once.discard(path.name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


class _CuttingHTTPServer(http.server.ThreadingHTTPServer):
    root: Path
    cut_once: set[str]
    ranges: bool
    log: list[tuple[str, str, str | None]]


class CuttingServer:
    """Serves ``root``; the first request for each file in ``cut_once`` is cut half-way."""

    def __init__(self, root: Path, *, cut_once: set[str], ranges: bool = True) -> None:
        self.httpd = _CuttingHTTPServer(("127.0.0.1", 0), _CuttingHandler)
        self.httpd.root = root
        self.httpd.cut_once = set(cut_once)
        self.httpd.ranges = ranges
        self.httpd.log = []
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def log(self) -> list[tuple[str, str, str | None]]:
        return self.httpd.log

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def sha256(path: os.PathLike) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

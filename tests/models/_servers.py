"""Real HTTP servers on 127.0.0.1 for the model download tests.

``StaticServer`` is ``python -m http.server`` in a subprocess with its request log in a
file. ``CuttingServer`` is a small threaded server (a test double) that announces the
full Content-Length but closes the connection half-way through chosen files, and
honours ``Range`` requests, so interrupted and resumed downloads can be exercised.
``HubServer`` (a test double) answers as the hub does about revisions: it resolves
branch names to commits, sends ``X-Repo-Commit``, answers 404 with ``X-Error-Code:
RevisionNotFound`` for a revision it does not hold (``EntryNotFound`` for a missing
file), and can redirect chosen files to a file store as the hub does for LFS files.
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


class _HubHandler(http.server.BaseHTTPRequestHandler):
    server: _HubHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _error(self, code: str, commit: str | None = None) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _answer(self, body: bool) -> None:
        self.server.log.append((self.command, self.path))
        if self.path.startswith("/cdn/"):
            path = self.server.root / self.path.removeprefix("/cdn/")
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)
            return
        m = re.match(r"^/(.+?)/resolve/([^/]+)/(.+)$", self.path)
        if m is None or not (self.server.root / m.group(1) / "resolve").is_dir():
            self._error("RepoNotFound")
            return
        repo_path, revision, file = m.groups()
        commit = self.server.refs.get(revision, revision)
        folder = self.server.root / repo_path / "resolve" / commit
        if not folder.is_dir():
            self._error("RevisionNotFound")
            return
        path = folder / file
        if not path.is_file():
            self._error("EntryNotFound", commit)
            return
        if file in self.server.redirect:
            self.send_response(302)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("Location", f"/cdn/{repo_path}/resolve/{commit}/{file}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)


class _HubHTTPServer(http.server.ThreadingHTTPServer):
    root: Path
    refs: dict[str, str]
    redirect: set[str]
    log: list[tuple[str, str]]


class HubServer:
    """Serves ``root/<repo>/resolve/<commit>/<file>`` (``root/datasets/<repo>/...`` for
    datasets) with the hub's revision semantics; ``refs`` maps branch names to commits."""

    def __init__(
        self, root: Path, *, refs: dict[str, str], redirect: set[str] | None = None
    ) -> None:
        self.httpd = _HubHTTPServer(("127.0.0.1", 0), _HubHandler)
        self.httpd.root = root
        self.httpd.refs = dict(refs)
        self.httpd.redirect = set(redirect or ())
        self.httpd.log = []
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def refs(self) -> dict[str, str]:
        return self.httpd.refs

    @property
    def log(self) -> list[tuple[str, str]]:
        return self.httpd.log

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

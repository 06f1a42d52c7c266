"""Real HTTP servers on 127.0.0.1 for the openai backend tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FlakyChatServer:
    """A chat-completions endpoint that fails the first ``fail_first`` requests.

    It answers ``status`` (503 by default) for those, with a ``Retry-After`` header when
    ``retry_after`` is given, then a canned completion with ``reasoning_content``.
    Every request body is recorded in ``requests``.
    """

    def __init__(
        self,
        *,
        fail_first: int = 0,
        status: int = 503,
        reasoning: str | None = "think hard",
        content: str = "\n<answer>B cell | T cell</answer>",
        retry_after: str | None = None,
    ) -> None:
        self.fail_first = fail_first
        self.status = status
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # silence
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(
                        {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                    )
                    k = len(outer.requests)
                if k <= outer.fail_first:
                    data = b'{"error": "busy"}'
                    self.send_response(outer.status)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                else:
                    message = {"role": "assistant", "content": content}
                    if reasoning is not None:
                        message["reasoning_content"] = reasoning
                    data = json.dumps(
                        {
                            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                            "usage": {"completion_tokens": 7},
                        }
                    ).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class TransformersServe:
    """``transformers serve MODEL`` on a free loopback port, stopped on exit."""

    def __init__(self, model: Path, timeout: float = 120) -> None:
        self.model = str(model)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> TransformersServe:
        exe = Path(sys.executable).with_name("transformers")
        self.log = open(os.devnull, "w")
        self.proc = subprocess.Popen(
            [
                str(exe),
                "serve",
                self.model,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--device",
                "cpu",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError("transformers serve did not start in time")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

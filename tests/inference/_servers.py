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


#: The faults :class:`FaultyChatServer` injects.
FAULT_KINDS = ("503", "429", "drop", "stall")


def first_candidates_answer(body: dict) -> str:
    """A CellPuzzles-trained model's answer: the listed candidates, in the listed order."""
    from tests.tl._annotate_backends import puzzle_of

    _, genes, candidates = puzzle_of(body["messages"])
    labels = [candidates[k % len(candidates)] for k in range(len(genes))]
    return "<think>scripted</think>\n<answer>" + " | ".join(labels) + "</answer>"


class FaultyChatServer:
    """A chat-completions endpoint on 127.0.0.1 that fails a share of requests.

    Each request fails with probability ``rate`` (seeded, so a run is reproducible), as
    one of ``kinds``: ``"503"`` and ``"429"`` (both with ``Retry-After: retry_after``
    seconds, so runs stay fast; the client's own back-off is tested apart), ``"drop"`` (the
    connection closed without an answer) or ``"stall"`` (no answer for ``stall``
    seconds, longer than the client's timeout). A request whose last message contains
    ``always_fail`` answers 503 every time. ``delay`` seconds pass before every answer
    after the first ``delay_after`` requests.
    Otherwise it answers ``answer(body)`` (default: :func:`first_candidates_answer`).
    ``requests`` counts requests, ``answered`` the 200 answers.
    """

    def __init__(
        self,
        *,
        rate: float = 0.0,
        seed: int = 0,
        kinds: tuple[str, ...] = FAULT_KINDS,
        always_fail: str | None = None,
        stall: float = 1.0,
        delay: float = 0.0,
        answer=first_candidates_answer,
        raw_body: bytes | None = None,
        retry_after: str = "0.01",
        delay_after: int = 0,
    ) -> None:
        import random

        self.rng = random.Random(seed)
        self.requests = 0
        self.answered = 0
        self.auth: list[str | None] = []
        self.prompts: list[str] = []  # the last message of every request
        self.faults: dict[str, int] = dict.fromkeys(kinds, 0)
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # silence
                pass

            def _send(self, status: int, data: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests += 1
                    number = outer.requests
                    outer.auth.append(self.headers.get("Authorization"))
                    outer.prompts.append(body["messages"][-1]["content"])
                    fault = None
                    if rate and outer.rng.random() < rate:
                        fault = outer.rng.choice(kinds)
                        outer.faults[fault] += 1
                if always_fail and always_fail in body["messages"][-1]["content"]:
                    fault = "503"
                if delay and number > delay_after:
                    time.sleep(delay)
                if fault == "503":
                    self._send(503, b'{"error": "busy"}', {"Retry-After": retry_after})
                elif fault == "429":
                    self._send(429, b'{"error": "slow down"}', {"Retry-After": retry_after})
                elif fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif fault == "stall":
                    time.sleep(stall)
                    self.close_connection = True
                else:
                    if raw_body is not None:
                        data = raw_body
                    else:
                        message = {"role": "assistant", "content": answer(body)}
                        data = json.dumps(
                            {
                                "choices": [
                                    {"index": 0, "message": message, "finish_reason": "stop"}
                                ],
                                "usage": {"completion_tokens": 9},
                            }
                        ).encode()
                    with outer.lock:
                        outer.answered += 1
                    self._send(200, data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

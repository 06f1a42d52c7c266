"""Test doubles for ``tl.annotate``: models that answer as a trained Cell-o1 does.

All implement the :class:`sc_cello1.inference.Backend` protocol (``generate`` and
``provenance``). :class:`ScriptedBackend` answers with a script; the scripts below behave
as a model trained on CellPuzzles: :func:`permutation_model` gives each cell a distinct
candidate (a cell whose type it knows, with probability ``p``, gets that type if still
free, any other cell a random unused candidate), :func:`n_items_model` lists every
candidate once (as trained, for N cells and N candidates), the first items for the
cells. :class:`ScriptServer` serves a script as a real OpenAI-compatible chat endpoint
on 127.0.0.1 (for ``backend="openai"``). :class:`InterruptingBackend` runs a real
backend and raises mid-run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from sc_cello1.data import SYSTEM_MSG
from sc_cello1.data._prompts import parse_user_msg
from sc_cello1.inference import Generation


def puzzle_of(messages: list[dict[str, str]]) -> tuple[str, list[list[str]], list[str]]:
    """Context, per-cell genes and candidates of an eval-style conversation."""
    content = messages[-1]["content"]
    user_msg = content.removesuffix("\n" + SYSTEM_MSG)
    return parse_user_msg(user_msg)


def answer_text(labels: list[str]) -> str:
    return "<think>scripted</think>\n<answer>" + " | ".join(labels) + "</answer>"


class ScriptedBackend:
    """Answers each puzzle with ``script(genes, candidates, call)`` (a list of labels or a text).

    A proposal-stage question (one cell, free text) calls ``script([genes], [], call)``,
    which returns the completion text.
    """

    name = "scripted"

    def __init__(self, script: Callable[[list[list[str]], list[str], int], list[str] | str]):
        self.script = script
        self.calls = 0
        self.prompts: list[str] = []

    def generate(
        self, messages, *, n=1, temperature=0.0, max_new_tokens=3500, seed=None, constraints=None
    ):
        out = []
        for conv in messages:
            self.calls += 1
            self.prompts.append(conv[-1]["content"])
            content = conv[-1]["content"]
            if "Match the cells above" not in content:  # the proposal stage: one cell
                genes = [content.split("Cell 1: ", 1)[1].split("\n", 1)[0].split(", ")]
                text = self.script(genes, [], self.calls)
                out.append([Generation(text=str(text), finish_reason="stop", n_tokens=3)])
                continue
            _, genes, candidates = puzzle_of(conv)
            answer = self.script(genes, candidates, self.calls)
            text = answer if isinstance(answer, str) else answer_text(answer)
            out.append(
                [
                    Generation(text=text, finish_reason="stop", n_tokens=len(text.split()))
                    for _ in range(n)
                ]
            )
        return out

    def provenance(self):
        return {"backend": "scripted", "model": "scripted-oracle", "revision": "test-1"}


class ScriptServer:
    """A chat-completions endpoint on 127.0.0.1 that answers each puzzle with a script.

    Use as a context manager; ``url`` is the ``base_url`` for ``backend="openai"``.
    """

    def __init__(self, script: Callable[[list[list[str]], list[str], int], list[str] | str]):
        backend = ScriptedBackend(script)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # silence
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    (gens,) = backend.generate([body["messages"]])
                message = {"role": "assistant", "content": gens[0].text}
                data = json.dumps(
                    {
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                        "usage": {"completion_tokens": gens[0].n_tokens},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.backend = backend
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class InterruptingBackend:
    """Runs a real backend and raises ``error`` at generate call number ``at``."""

    def __init__(self, inner, *, at: int = 2, error: type[BaseException] = KeyboardInterrupt):
        self.inner = inner
        self.at = at
        self.error = error
        self.calls = 0

    @property
    def name(self):
        return getattr(self.inner, "name", "wrapped")

    def generate(self, messages, **kwargs):
        self.calls += 1
        if self.calls >= self.at:
            raise self.error()
        return self.inner.generate(messages, **kwargs)

    def provenance(self):
        return self.inner.provenance()


def _types_of(genes, markers):
    return [next((markers[g] for g in cell if g in markers), None) for cell in genes]


def permutation_model(
    markers: dict[str, str], *, p: float = 1.0, seed: int = 0, n_items: bool = False
) -> Callable[[list[list[str]], list[str], int], list[str]]:
    """A trained-model script: distinct candidates per puzzle, each cell's type known with ``p``.

    ``markers`` maps a gene to the type of cells that show it among their top genes. The
    cells are visited in random order; a cell whose type is known (chance ``p``) gets it
    if no earlier cell took it; every other cell gets a random candidate not yet used.
    With ``n_items=True`` the answer lists every candidate once (the cells' items first,
    then the unused candidates in random order), as a model trained on N cells and N
    candidates does.
    """
    rng = np.random.default_rng(seed)

    def script(genes, candidates, call):
        truth = _types_of(genes, markers)
        out: list[str | None] = [None] * len(genes)
        used: set[str] = set()
        for i in rng.permutation(len(genes)):
            t = truth[i]
            if t in candidates and t not in used and rng.random() < p:
                out[i] = t
                used.add(t)
        for i in range(len(genes)):
            if out[i] is None:
                free = [c for c in candidates if c not in used]
                if not free:  # more cells than candidates: a trained model repeats
                    free = list(candidates)
                out[i] = str(free[rng.integers(len(free))])
                used.add(out[i])
        items = [str(o) for o in out]
        if n_items:
            rest = [c for c in candidates if c not in used]
            items += [rest[i] for i in rng.permutation(len(rest))]
        return items

    return script


def n_items_model(markers: dict[str, str], *, p: float = 1.0, seed: int = 0):
    """:func:`permutation_model` that lists every candidate once (N items for N candidates)."""
    return permutation_model(markers, p=p, seed=seed, n_items=True)


def marker_oracle(
    markers: dict[str, str],
) -> Callable[[list[list[str]], list[str], int], list[str]]:
    """A per-cell script: each cell named by the first of its top genes found in ``markers``.

    It labels each cell on its own (labels may repeat within a puzzle), which a model
    trained on CellPuzzles does not do; tests of the trained behaviour use
    :func:`permutation_model`.
    """

    def script(genes, candidates, call):
        labels = []
        for cell in genes:
            label = next((markers[g] for g in cell if g in markers), candidates[0])
            labels.append(label)
        return labels

    return script

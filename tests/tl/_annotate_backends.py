"""Test doubles for ``tl.annotate``: a scripted backend and an interrupting wrapper.

Both implement the :class:`sc_cello1.inference.Backend` protocol (``generate`` and
``provenance``). The scripted one is for logic tests where a real model cannot give a
known answer; the wrapper runs a real backend and raises mid-run.
"""

from __future__ import annotations

from collections.abc import Callable

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
    """Answers each puzzle with ``script(genes, candidates, call)`` (a list of labels or a text)."""

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


def marker_oracle(
    markers: dict[str, str],
) -> Callable[[list[list[str]], list[str], int], list[str]]:
    """A script naming each cell by the first of its top genes found in ``markers`` (gene -> type)."""

    def script(genes, candidates, call):
        labels = []
        for cell in genes:
            label = next((markers[g] for g in cell if g in markers), candidates[0])
            labels.append(label)
        return labels

    return script

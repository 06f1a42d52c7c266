from __future__ import annotations

import time

import pytest
from tests.inference._servers import FlakyChatServer, TransformersServe

from sc_cello1.inference import Generation, OpenAIBackend, get_backend

MSG = [[{"role": "user", "content": "Which cell?"}]]


def test_reads_reasoning_content_and_sends_settings():
    with FlakyChatServer() as srv:
        b = OpenAIBackend("cell-o1", base_url=srv.url, api_key="sk-test", max_concurrency=2)
        out = b.generate(MSG * 3, n=2, temperature=0.7, max_new_tokens=123, seed=5)
    assert len(out) == 3 and all(len(g) == 2 for g in out)
    g = out[0][0]
    assert g == Generation(
        text="\n<answer>B cell | T cell</answer>",
        reasoning="think hard",
        finish_reason="stop",
        n_tokens=7,
    )
    assert len(srv.requests) == 6
    bodies = [r["body"] for r in srv.requests]
    assert {b["max_tokens"] for b in bodies} == {123}
    assert {b["temperature"] for b in bodies} == {0.7}
    assert sorted(b["seed"] for b in bodies) == [5, 5, 5, 6, 6, 6]
    assert {r["auth"] for r in srv.requests} == {"Bearer sk-test"}
    assert srv.requests[0]["path"] == "/v1/chat/completions"
    assert b.provenance() == {
        "backend": "openai",
        "model": "cell-o1",
        "revision": "",
        "base_url": srv.url,
        "extra_body": {},
    }


def test_api_key_from_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    with FlakyChatServer() as srv:
        OpenAIBackend("m", base_url=srv.url).generate(MSG)
    assert srv.requests[0]["auth"] == "Bearer sk-env"


@pytest.mark.parametrize("status", [503, 429, 500])
def test_retries_then_succeeds_honouring_retry_after(status):
    # Retry-After 0.05 s: without it the client's back-off would wait >= 2.6 s in total
    with FlakyChatServer(fail_first=3, status=status, retry_after="0.05") as srv:
        b = OpenAIBackend("m", base_url=srv.url, max_retries=4, max_concurrency=1)
        start = time.perf_counter()
        out = b.generate(MSG)
        elapsed = time.perf_counter() - start
    assert out[0][0].reasoning == "think hard"
    assert len(srv.requests) == 4
    assert b.n_retries == 3 and b.n_requests == 4
    assert 3 * 0.05 <= elapsed < 2.0


def test_backs_off_without_retry_after(caplog):
    with FlakyChatServer(fail_first=1, status=503) as srv:
        b = OpenAIBackend("m", base_url=srv.url, max_retries=1)
        start = time.perf_counter()
        with caplog.at_level("INFO", logger="sc_cello1"):
            b.generate(MSG)
        elapsed = time.perf_counter() - start
    assert len(srv.requests) == 2 and b.n_retries == 1
    assert elapsed >= 0.5 * 0.75  # the first back-off: 0.5 s less at most 25 % jitter
    assert "HTTP 503" in caplog.text and "retry 1/1" in caplog.text
    assert {r.levelname for r in caplog.records if "retry" in r.getMessage()} == {"INFO"}


def test_gives_up_after_max_retries():
    with FlakyChatServer(fail_first=10, retry_after="0.01") as srv:
        b = OpenAIBackend("m", base_url=srv.url, max_retries=2)
        with pytest.raises(RuntimeError, match=r"after 3 attempts.*HTTP 503"):
            b.generate(MSG)
    assert len(srv.requests) == 3


def test_client_error_is_not_retried():
    with FlakyChatServer(fail_first=1, status=400) as srv:
        b = OpenAIBackend("m", base_url=srv.url, max_retries=5)
        with pytest.raises(RuntimeError, match="HTTP 400"):
            b.generate(MSG)
    assert len(srv.requests) == 1


def test_no_key_sends_no_authorization(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FlakyChatServer() as srv:
        OpenAIBackend("m", base_url=srv.url).generate(MSG)
    assert srv.requests[0]["auth"] is None


def test_extra_body_is_sent():
    with FlakyChatServer() as srv:
        OpenAIBackend("m", base_url=srv.url, extra_body={"top_p": 0.5}).generate(MSG)
    assert srv.requests[0]["body"]["top_p"] == 0.5


def test_backoff_keyword_warns():
    with pytest.warns(FutureWarning, match="backoff"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", backoff=0.01)


def test_connection_refused_is_retried_then_fails():
    from tests.inference._servers import free_port

    b = OpenAIBackend("m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=2)
    with pytest.raises(RuntimeError, match="ConnectError"):
        b.generate(MSG)
    assert b.n_requests == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"base_url": None}, ValueError, "base_url"),
        ({"base_url": "127.0.0.1:8000"}, ValueError, "http://"),
        ({"base_url": "http://x/v1", "max_concurrency": 0}, ValueError, "max_concurrency"),
        ({"base_url": "http://x/v1", "timeout": 0}, ValueError, "timeout"),
    ],
)
def test_bad_arguments(kwargs, error, match, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(error, match=match):
        OpenAIBackend("m", **kwargs)


def test_bad_generate_arguments():
    b = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="temperature"):
        b.generate(MSG, temperature=-1)
    with pytest.raises(ValueError, match="samples"):
        b.generate(MSG, n=0)
    with pytest.raises(TypeError, match="messages"):
        b.generate("hello")


@pytest.mark.slow
def test_transformers_serve_matches_in_process(tiny_qwen2):
    """The same greedy completion from a real `transformers serve` and in-process."""
    from sc_cello1.data import Puzzle

    p = Puzzle(
        context="The cell is from a male.",
        genes=[["CD3E", "CD2"], ["MS4A1", "CD79A"]],
        candidates=["B cell", "T cell"],
    )
    msgs = [p.messages("eval")]
    local = get_backend(str(tiny_qwen2), backend="transformers").generate(msgs, max_new_tokens=24)[
        0
    ][0]
    with TransformersServe(tiny_qwen2) as srv:
        remote = get_backend(str(tiny_qwen2), backend="openai", base_url=srv.url).generate(
            msgs, max_new_tokens=24
        )[0][0]
    assert remote.n_tokens == local.n_tokens == 24
    assert remote.finish_reason == local.finish_reason == "length"
    assert remote.text.strip() == local.text.strip()


@pytest.mark.slow
def test_transformers_serve_returns_reasoning_content():
    """A Qwen2 model writing <think>..</think>: the server splits the reasoning off and
    solve() puts it back together so the paper's metrics see the whole completion."""
    from tests.inference._scripted import expected_text, scripted_qwen2_dir

    from sc_cello1.data import Puzzle
    from sc_cello1.tl import solve

    path = scripted_qwen2_dir()
    p = Puzzle(
        context="The cell is from a male.",
        genes=[["MS4A1"], ["CD3E"]],
        candidates=["B cell", "T cell"],
        answer=["B cell", "T cell"],
    )
    with TransformersServe(path) as srv:
        out = get_backend(str(path), backend="openai", base_url=srv.url).generate(
            [p.messages()], max_new_tokens=20
        )
        records = solve(
            [p],
            model=str(path),
            backend="openai",
            backend_kwargs={"base_url": srv.url},
            max_new_tokens=20,
        )
    g = out[0][0]
    assert g.reasoning == "cells look like lymphocytes"
    assert "<think>" not in g.text and "<answer>B cell | T cell</answer>" in g.text
    r = records[0]
    assert r["text"] == expected_text()
    assert r["reasoning"] == "cells look like lymphocytes"
    assert r["valid_format"] and r["is_permutation"]
    assert r["answer"] == r["gold"] == "B cell | T cell"

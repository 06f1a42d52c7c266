"""``solve`` through a real loopback server that fails: answers kept, one clear error, resume."""

from __future__ import annotations

import json
import logging

import pytest
from tests.inference._servers import FaultyChatServer

from sc_cello1.data import Puzzle
from sc_cello1.tl import solve
from sc_cello1.tl._solve_run import SolveError

CANDIDATES = ["B cell", "T cell", "NK cell"]


def puzzles(k: int = 20) -> list[Puzzle]:
    genes = [["MS4A1", "CD79A"], ["CD3E", "IL7R"], ["NKG7", "GNLY"]]
    return [
        Puzzle(context=f"The cell is from donor {i}.", genes=genes, candidates=CANDIDATES)
        for i in range(k)
    ]


def run(url: str, items, tmp_path, **kwargs):
    backend_kwargs = {"base_url": url, "max_retries": 8, "timeout": 0.5, "max_concurrency": 4}
    backend_kwargs.update(kwargs.pop("backend_kwargs", {}))
    return solve(
        items,
        model="served",
        backend="openai",
        answer_dir=tmp_path / "cache",
        backend_kwargs=backend_kwargs,
        max_new_tokens=50,
        **kwargs,
    )


def cached(tmp_path) -> int:
    return len(list((tmp_path / "cache").glob("*.json")))


def test_one_failing_puzzle_costs_only_that_puzzle(tmp_path):
    items = puzzles(20)
    with FaultyChatServer(always_fail="donor 3.") as srv:
        with pytest.raises(SolveError) as info:
            run(srv.url, items, tmp_path, backend_kwargs={"max_retries": 1})
        first_run = srv.requests
    error = info.value
    assert error.failed.keys() == {3} and error.n_done == 19
    text = str(error)
    assert "1 of 20 puzzles failed" in text and "puzzles 3;" in text
    assert "kept in answer_dir" in text and "max_retries" in text and "timeout" in text
    assert first_run == 19 + 2  # 19 answers, 2 attempts of the failing one
    assert cached(tmp_path) == 19
    # the rerun, against the same server now healthy, asks only the missing puzzle
    with FaultyChatServer() as srv:
        res = run(srv.url, items, tmp_path)
    assert srv.requests == 1
    assert len(res) == 20 and res.provenance["n_from_cache"] == 19


def test_skip_failed_returns_the_others_with_a_warning(tmp_path, caplog):
    items = puzzles(5)
    with FaultyChatServer(always_fail="donor 3.") as srv, caplog.at_level("WARNING"):
        res = run(srv.url, items, tmp_path, backend_kwargs={"max_retries": 0}, skip_failed=True)
    assert [r["puzzle"] for r in res] == [0, 1, 2, 4]
    assert list(res.provenance["failed"]) == ["3"]
    assert "1 of 5 puzzles failed" in caplog.text and "skip_failed" in caplog.text


@pytest.mark.parametrize("seed", [1, 2])
def test_at_60_percent_faults_labels_match_a_clean_run(tmp_path, seed, caplog):
    items = puzzles(12)
    with FaultyChatServer() as srv:
        clean = [r["answer"] for r in run(srv.url, items, tmp_path / "clean")]
    with (
        FaultyChatServer(rate=0.6, seed=seed, stall=1.0) as srv,
        caplog.at_level(logging.INFO, logger="sc_cello1"),
    ):
        try:
            res = run(srv.url, items, tmp_path)
        except SolveError as e:  # the documented way out: the rest is kept
            assert cached(tmp_path) == 12 - len(e.failed)
            res = run(srv.url, items, tmp_path, backend_kwargs={"max_retries": 20})
    assert [r["answer"] for r in res] == clean
    assert sum(srv.faults.values()) > 0
    # each retry is logged at info with its cause
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert retries and {r.levelname for r in retries} == {"INFO"}
    causes = " ".join(r.getMessage() for r in retries)
    assert "HTTP 503" in causes or "HTTP 429" in causes


def test_drops_and_stalls_are_retried_and_logged(tmp_path, caplog):
    items = puzzles(4)
    with (
        FaultyChatServer(rate=0.5, seed=3, kinds=("drop", "stall"), stall=1.0) as srv,
        caplog.at_level(logging.INFO, logger="sc_cello1"),
    ):
        res = run(srv.url, items, tmp_path, backend_kwargs={"timeout": 0.3, "max_retries": 10})
    assert len(res) == 4 and srv.faults["drop"] + srv.faults["stall"] > 0
    causes = " ".join(r.getMessage() for r in caplog.records if "retry" in r.getMessage())
    if srv.faults["stall"]:
        assert "Timeout" in causes
    if srv.faults["drop"]:
        assert "RemoteProtocolError" in causes or "ReadError" in causes


def test_cache_key_ignores_where_the_server_lives(tmp_path):
    items = puzzles(3)
    with FaultyChatServer() as srv:
        run(srv.url, items, tmp_path)
    with FaultyChatServer() as srv:  # another port, and "localhost" for 127.0.0.1
        res = run(srv.url.replace("127.0.0.1", "localhost"), items, tmp_path)
    assert srv.requests == 0 and res.provenance["n_from_cache"] == 3


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"<html>gateway</html>", "not JSON"),
        (b'{"choices": []}', "without a chat completion"),
        (b"[1, 2]", "not an object"),
    ],
)
def test_a_200_that_is_no_completion_is_a_clear_error(tmp_path, raw, match):
    with FaultyChatServer(raw_body=raw) as srv:
        with pytest.raises(SolveError, match=match) as info:
            run(srv.url, puzzles(2), tmp_path)
    assert "2 of 2 puzzles failed" in str(info.value)
    assert not isinstance(info.value.__cause__, ValueError | IndexError)


def test_credentials_never_stored_or_printed(tmp_path, caplog, monkeypatch):
    import base64

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    items = puzzles(2)
    with FaultyChatServer(always_fail="donor 1.") as srv:
        url = srv.url.replace("http://", "http://user:PW-secret@")
        extra = {"top_p": 0.9, "headers": {"X-Api-Key": "sk-nested-secret"}}
        with pytest.raises(SolveError) as info, caplog.at_level(logging.INFO):
            run(
                url,
                items,
                tmp_path,
                backend_kwargs={"max_retries": 0, "api_key": "sk-top", "extra_body": extra},
            )
        res = run(url, [items[0]], tmp_path / "2", backend_kwargs={"extra_body": extra})
    # the URL's credentials still reach the server, as HTTP basic auth
    assert srv.auth[-1] == "Basic " + base64.b64encode(b"user:PW-secret").decode()
    shown = str(info.value) + caplog.text + json.dumps(res.provenance)
    shown += "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    for secret in ("PW-secret", "sk-nested-secret", "sk-top"):
        assert secret not in shown
    assert res.provenance["base_url"] == srv.url
    assert res.provenance["extra_body"]["headers"]["X-Api-Key"] == "<redacted>"


def test_half_written_and_corrupt_cache_entries_are_not_read(tmp_path):
    items = puzzles(2)
    with FaultyChatServer() as srv:
        run(srv.url, items, tmp_path)
        entries = sorted((tmp_path / "cache").glob("*.json"))
        entries[0].write_text('{"key": "x", "complete": tr')  # cut mid-write
        (tmp_path / "cache" / f".{entries[1].name}.1234.tmp").write_text("{}")
        res = run(srv.url, items, tmp_path)
    assert srv.requests == 3 and res.provenance["n_from_cache"] == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"backend_kwargs": {"max_retry": 3}}, TypeError, r"\['max_retry'\].*max_retries"),
        ({"cache_under_file": True}, ValueError, "is under the file"),
    ],
)
def test_bad_settings_make_no_request(tmp_path, kwargs, error, match):
    items = puzzles(2)
    if kwargs.pop("cache_under_file", False):
        (tmp_path / "file").write_text("x")
        kwargs["answer_dir"] = tmp_path / "file" / "cache"
    with FaultyChatServer() as srv:
        with pytest.raises(error, match=match):
            solve(
                items,
                model="served",
                backend="openai",
                backend_kwargs={"base_url": srv.url, **kwargs.pop("backend_kwargs", {})},
                **kwargs,
            )
    assert srv.requests == 0


def test_an_in_process_error_stops_the_run_and_keeps_the_finished_batches(tmp_path, caplog):
    from tests.tl._annotate_backends import InterruptingBackend, ScriptedBackend

    items = puzzles(6)
    oracle = ScriptedBackend(lambda genes, candidates, call: list(candidates))
    broken = InterruptingBackend(oracle, at=2, error=MemoryError)
    with pytest.raises(MemoryError), caplog.at_level("WARNING"):
        solve(items, model=broken, answer_dir=tmp_path / "cache", batch_size=2)
    assert cached(tmp_path) == 2
    assert "stopped by MemoryError: 2 of 6 puzzles answered" in caplog.text
    again = ScriptedBackend(lambda genes, candidates, call: list(candidates))
    res = solve(items, model=again, answer_dir=tmp_path / "cache", batch_size=2)
    assert again.calls == 4 and len(res) == 6

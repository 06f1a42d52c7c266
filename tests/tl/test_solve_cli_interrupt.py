"""``cello1 solve`` through a slow loopback server: Ctrl-C exits 130 at once, the rerun resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.inference._servers import FaultyChatServer

from sc_cello1.data import Puzzle, write_puzzles

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = ["B cell", "T cell", "NK cell"]


def _puzzle_file(tmp_path: Path, k: int) -> Path:
    genes = [["MS4A1"], ["CD3E"], ["NKG7"]]
    items = [
        Puzzle(
            context=f"The cell is from donor {i}.",
            genes=genes,
            candidates=CANDIDATES,
            answer=CANDIDATES,
        )
        for i in range(k)
    ]
    return write_puzzles(items, tmp_path / "puzzles.jsonl")


def _cmd(puzzles: Path, out: Path, url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sc_cello1.cli",
        "solve",
        str(puzzles),
        "-o",
        str(out),
        "--backend",
        "openai",
        "--model",
        "served",
        "--base-url",
        url,
        "--max-concurrency",
        "2",
        "--timeout",
        "120",
        "--max-retries",
        "0",
    ]


def test_ctrl_c_exits_130_within_2_s_and_the_rerun_resumes(tmp_path):
    puzzles = _puzzle_file(tmp_path, 8)
    out = tmp_path / "preds.jsonl"
    cache = Path(str(out) + ".cache")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    # three answers at once, then 30 s per answer (a long reasoning on a busy server)
    with FaultyChatServer(delay=30.0, delay_after=3) as srv:
        proc = subprocess.Popen(
            _cmd(puzzles, out, srv.url),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while len(list(cache.glob("*.json"))) < 3 and time.monotonic() < deadline:
                assert proc.poll() is None, proc.communicate()[1][-2000:]
                time.sleep(0.05)
            time.sleep(0.3)  # requests 4 and 5 are in flight, waiting on the server
            assert srv.requests == 5
            start = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=10)
            elapsed = time.monotonic() - start
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, stderr[-2000:]
    assert elapsed < 2.0, elapsed
    assert "interrupted" in stderr and "3 of 8 puzzles answered" in stderr
    assert not out.exists()
    assert not list(cache.glob(".*.tmp"))  # nothing half-written left behind
    # the rerun (the server now on another port) asks only the 5 missing puzzles
    with FaultyChatServer() as srv:
        run = subprocess.run(
            _cmd(puzzles, out, srv.url), env=env, capture_output=True, text=True, timeout=120
        )
    assert run.returncode == 0, run.stderr[-2000:]
    assert srv.requests == 5
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["puzzle"] for r in lines] == list(range(8))
    assert all(r["answer"] == " | ".join(CANDIDATES) for r in lines)

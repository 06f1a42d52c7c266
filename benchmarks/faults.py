"""A long run through a flaky server: answers kept, one clear error, the rerun asks only what is missing.

Runs ``cello1.tl.solve`` and ``cello1.tl.annotate`` through a real OpenAI-compatible
server on 127.0.0.1 (``tests/inference/_servers.py:FaultyChatServer``, scripted
answers) that fails a share of requests with the four faults seen in practice: HTTP 503,
HTTP 429 with Retry-After, a dropped connection and a stall past the client's timeout.
Also: one puzzle that always fails, and ``cello1 solve`` interrupted with SIGINT.

For each run it reports whether the labels equal those of a clean run, or the call
ended with the documented ``SolveError`` with every other answer kept; then it reruns
with the same ``answer_dir`` (the server still flaky) until done, and checks that each
rerun asked exactly the missing puzzles.

    .venv/bin/python benchmarks/faults.py            # the table of docs/long_runs.md
    .venv/bin/python benchmarks/faults.py --seeds 3  # quicker

The client's back-off is scaled by ``--backoff-scale`` (default 0.05: 25 ms doubling up
to 0.4 s instead of 0.5 s up to 8 s) so the script takes minutes, not an hour; the
back-off itself is tested in tests/inference/test_openai.py. The client's timeout is
0.5 s and a stall lasts 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

CANDIDATES = ["B cell", "T cell", "NK cell", "monocyte"]


def puzzles(k: int):
    from sc_cello1.data import Puzzle

    genes = [["MS4A1"], ["CD3E"], ["NKG7"], ["CD14"]]
    return [
        Puzzle(
            context=f"The cell is from donor {i}.",
            genes=genes,
            candidates=CANDIDATES,
            answer=CANDIDATES,
        )
        for i in range(k)
    ]


def backend_kwargs(url: str, max_retries: int) -> dict:
    return {"base_url": url, "max_retries": max_retries, "timeout": 0.5, "max_concurrency": 8}


def until_done(call, server_factory, cache: Path, n_total: int):
    """Run ``call(url)``; on SolveError, rerun (same cache) until it completes.

    Returns (result, first outcome, reruns, whether each rerun asked only the missing).
    """
    from sc_cello1.tl._solve_run import SolveError

    first, reruns, only_missing = "complete", 0, True
    while True:
        with server_factory(reruns) as srv:
            kept_before = {p.name for p in cache.glob("*.json")} if cache.exists() else set()
            try:
                result = call(srv.url)
            except SolveError as e:
                kept = len(list(cache.glob("*.json")))
                ok = kept == e.n_total - len(e.failed)
                if reruns == 0:
                    first = f"SolveError: {len(e.failed)} failed, {kept} kept" + (
                        "" if ok else " (NOT ALL KEPT)"
                    )
                only_missing &= ok
                reruns += 1
                if reruns > 20:
                    raise
                continue
            finally:
                asked = len(set(srv.prompts))
            if reruns:
                only_missing &= asked == n_total - len(kept_before)
            return result, first, reruns, only_missing


def solve_runs(rate: float, seeds: int, n: int, tmp: Path, max_retries: int) -> list[dict]:
    from tests.inference._servers import FaultyChatServer

    from sc_cello1.tl import solve

    items = puzzles(n)

    def call(url, cache):
        return solve(
            items,
            model="served",
            backend="openai",
            answer_dir=cache,
            backend_kwargs=backend_kwargs(url, max_retries),
            max_new_tokens=64,
        )

    with FaultyChatServer() as srv:
        clean = [r["answer"] for r in call(srv.url, None)]
    rows = []
    for seed in range(seeds):
        cache = tmp / f"solve-{rate}-{seed}"
        start = time.perf_counter()
        res, first, reruns, only_missing = until_done(
            lambda url, cache=cache: call(url, cache),
            lambda k, seed=seed: FaultyChatServer(rate=rate, seed=1000 * seed + k, stall=1.0),
            cache,
            n,
        )
        rows.append(
            {
                "what": "solve",
                "rate": rate,
                "seed": seed,
                "first run": first,
                "reruns": reruns,
                "identical": [r["answer"] for r in res] == clean,
                "reruns asked only the missing": only_missing,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    return rows


def annotate_runs(rate: float, seeds: int, tmp: Path, max_retries: int) -> list[dict]:
    from tests.inference._servers import FaultyChatServer
    from tests.tl.test_annotate import TYPES, marker_adata

    import sc_cello1 as cello1

    adata, _ = marker_adata(n_clusters=8)

    def call(url, cache):
        return cello1.tl.annotate(
            adata,
            "leiden",
            candidates=TYPES[:8],
            model="served",
            backend="openai",
            backend_kwargs=backend_kwargs(url, max_retries),
            n_samples=3,
            n_genes=5,
            max_cells_per_puzzle=4,
            ontology=False,
            answer_dir=cache,
            copy=True,
        )

    with FaultyChatServer() as srv:
        clean = call(srv.url, None).obs["cello1"].tolist()
        n_puzzles = len(set(srv.prompts))
    rows = []
    for seed in range(seeds):
        cache = tmp / f"annotate-{rate}-{seed}"
        start = time.perf_counter()
        res, first, reruns, only_missing = until_done(
            lambda url, cache=cache: call(url, cache),
            lambda k, seed=seed: FaultyChatServer(rate=rate, seed=1000 * seed + k, stall=1.0),
            cache,
            n_puzzles,
        )
        rows.append(
            {
                "what": f"annotate ({n_puzzles} puzzles)",
                "rate": rate,
                "seed": seed,
                "first run": first,
                "reruns": reruns,
                "identical": res.obs["cello1"].tolist() == clean,
                "reruns asked only the missing": only_missing,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    return rows


def one_always_failing(n: int, tmp: Path) -> dict:
    from tests.inference._servers import FaultyChatServer

    from sc_cello1.tl import solve
    from sc_cello1.tl._solve_run import SolveError

    items = puzzles(n)
    cache = tmp / "always"
    kwargs = {"model": "served", "backend": "openai", "answer_dir": cache, "max_new_tokens": 64}
    with FaultyChatServer(always_fail="donor 3.") as srv:
        try:
            solve(items, backend_kwargs=backend_kwargs(srv.url, 2), **kwargs)
            first = "complete (unexpected)"
        except SolveError as e:
            first = f"SolveError: {len(e.failed)} failed ({sorted(e.failed)}), {len(list(cache.glob('*.json')))} kept"
    with FaultyChatServer() as srv:
        solve(items, backend_kwargs=backend_kwargs(srv.url, 2), **kwargs)
    return {
        "what": "solve, one puzzle always 503",
        "first run": first,
        "rerun requests": srv.requests,
    }


def interrupted_cli(n: int, tmp: Path) -> dict:
    from tests.inference._servers import FaultyChatServer

    from sc_cello1.data import write_puzzles

    path = write_puzzles(puzzles(n), tmp / "cli" / "puzzles.jsonl")
    out = tmp / "cli" / "preds.jsonl"
    cache = Path(str(out) + ".cache")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}

    def cmd(url):
        return [
            sys.executable, "-m", "sc_cello1.cli", "solve", str(path), "-o", str(out),
            "--backend", "openai", "--model", "served", "--base-url", url,
            "--max-concurrency", "4", "--timeout", "600",
        ]  # fmt: skip

    with FaultyChatServer(delay=25.0, delay_after=n // 2) as srv:
        proc = subprocess.Popen(cmd(srv.url), env=env, stderr=subprocess.PIPE, text=True)
        while len(list(cache.glob("*.json"))) < n // 2:
            time.sleep(0.05)
        time.sleep(0.5)
        in_flight = srv.requests - srv.answered
        start = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        seconds = time.perf_counter() - start
    kept = len(list(cache.glob("*.json")))
    with FaultyChatServer() as srv:
        rerun = subprocess.run(cmd(srv.url), env=env, capture_output=True, text=True, timeout=120)
    return {
        "what": "cello1 solve, SIGINT with requests in flight (server: 25 s per answer)",
        "in flight at SIGINT": in_flight,
        "exit code": proc.returncode,
        "seconds to exit": round(seconds, 2),
        "kept": f"{kept} of {n}",
        "rerun exit code": rerun.returncode,
        "rerun requests": srv.requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="runs per fault rate")
    parser.add_argument("--puzzles", type=int, default=20, help="puzzles per solve run")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.2, 0.4, 0.6])
    parser.add_argument("--max-retries", type=int, default=5, help="client retries (default 5)")
    parser.add_argument("--backoff-scale", type=float, default=0.05)
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/faults.json"))
    args = parser.parse_args()

    import openai._base_client as base

    base.INITIAL_RETRY_DELAY *= args.backoff_scale
    base.MAX_RETRY_DELAY *= args.backoff_scale
    from sc_cello1 import settings

    settings.progress = False
    import logging

    logging.getLogger("sc_cello1").setLevel(logging.ERROR)

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for rate in args.rates:
            rows += solve_runs(rate, args.seeds, args.puzzles, tmp, args.max_retries)
            rows += annotate_runs(rate, args.seeds, tmp, args.max_retries)
        extra = [one_always_failing(args.puzzles, tmp), interrupted_cli(args.puzzles, tmp)]

    print(
        "| run | fault rate | runs | identical labels | first run complete | first run: documented error, rest kept | reruns asked only the missing | reruns (max) | seconds (median) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["what"], r["rate"]), []).append(r)
    for (what, rate), rs in groups.items():
        secs = sorted(r["seconds"] for r in rs)
        print(
            f"| {what} | {rate:.0%} | {len(rs)} | {sum(r['identical'] for r in rs)}/{len(rs)} "
            f"| {sum(r['first run'] == 'complete' for r in rs)} "
            f"| {sum(r['first run'].startswith('SolveError') and 'NOT' not in r['first run'] for r in rs)} "
            f"| {sum(r['reruns asked only the missing'] for r in rs)}/{len(rs)} "
            f"| {max(r['reruns'] for r in rs)} | {secs[len(secs) // 2]} |"
        )
    for e in extra:
        print()
        print(json.dumps(e))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps({"args": vars(args), "runs": rows, "extra": extra}, indent=1)
    )


if __name__ == "__main__":
    main()

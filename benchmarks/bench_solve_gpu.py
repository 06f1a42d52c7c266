"""GPU throughput of ``cello1.tl.solve`` (transformers backend, batched) vs the authors' loop.

A Qwen2.5-7B-shaped model (hidden 3584, 28 layers, 28 heads, 4 KV heads, intermediate
18944, vocabulary 152064; about 7.6 B parameters) with random bf16 weights, built from its
config and saved once to a temporary folder, answers CellPuzzles of real cells (the top 50
genes of 10 ``pbmc68k_reduced`` cells, one per ``bulk_labels`` type; the cells ship in
``benchmarks/data/pbmc68k_top50.json``) at a fixed output length (end of sequence
suppressed, ``min_new_tokens == max_new_tokens``), greedy, in two ways:

- the authors' ``src/verl/scripts/test.py`` loop, one ``transformers.pipeline`` call per
  puzzle (a faithful copy, as in ``benchmarks/bench_solve.py``), on the first
  ``--authors-puzzles`` puzzles: a sequential loop's rate does not depend on how many
  puzzles it is given, and all 64 would take most of the time budget;
- :func:`sc_cello1.tl.solve` with :class:`~sc_cello1.inference.TransformersBackend`, all
  ``--n-puzzles`` puzzles in batches of ``--batch-size``.

Each side also runs once at ``--short-tokens`` new tokens; the difference of the two times
is the decoding time alone (prefill excluded). Figures: generated tokens per second end
to end and decoding only, and the share of the GPU's memory-bandwidth bound reached while
decoding: every decoding step reads all weights once (bf16; the input embedding only for
the rows used, the untied output layer in full) and the KV cache of every sequence
(2 x layers x KV heads x head dim x 2 bytes per token of context, real tokens only, not
padding); activations and logits are not counted, so the true share is a little higher.
Peak bandwidth: from the GPU's name (H100 SXM 3.35 TB/s, H100 PCIe 2.0, H100 NVL 3.9,
H200 4.8, A100 80GB 2.04, A100 40GB 1.56) or ``--bandwidth-tbs``.

The tokenizer is a byte-level BPE trained here on the puzzles' own text (no model hub):
its vocabulary is smaller than the model's, which changes nothing in the model's work.
``--vocab`` sets its size and the printed ``mean_prompt_tokens`` says what the prompts came
to: with the default (512), about 2,670 tokens per 10-cell puzzle, as many as SmolLM2's
49k-token English BPE tokenizer gives for the same prompts (2,691, measured here).
Completions are not repaired (``repair=False``: post-processing, not generation, and the
authors' loop has none).

vLLM is not measured: it is not installed on the GPU machine and its wheel does not fit
the 64 MiB that can be carried there. Needs only torch, transformers, accelerate and the
package's ``src`` on ``PYTHONPATH`` (no anndata/scanpy: pandas and scipy, which
``import sc_cello1`` loads, are replaced by empty stand-ins when missing, see
:func:`import_without`).

    PYTHONPATH=src python benchmarks/bench_solve_gpu.py              # H100: sized for < 5 min
    PYTHONPATH=src python benchmarks/bench_solve_gpu.py --tiny       # CPU smoke test, ~1 min
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import random
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELLS = ROOT / "benchmarks" / "data" / "pbmc68k_top50.json"

#: Qwen2.5-7B-Instruct's config.json (shapes only).
QWEN25_7B = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
#: Peak memory bandwidth, TB/s, by a substring of torch.cuda.get_device_name().
BANDWIDTH_TBS = [
    ("H200", 4.8),
    ("H100 NVL", 3.9),
    ("H100 PCIe", 2.0),
    ("H100", 3.35),
    ("A100-SXM4-80GB", 2.039),
    ("A100 80GB PCIe", 1.935),
    ("A100", 1.555),
]


def import_without(names: tuple[str, ...] = ("pandas", "scipy")) -> list[str]:
    """Import ``sc_cello1`` where some of its AnnData-side dependencies are missing.

    ``import sc_cello1`` loads pandas and scipy (AnnData helpers) that ``tl.solve`` on
    :class:`~sc_cello1.data.Puzzle` objects never calls. A missing one is replaced by a
    stand-in during the import (using it raises ``ImportError``, so a code path that
    did need it fails loudly) and taken out of ``sys.modules`` afterwards, so that other
    libraries still see it as missing. Returns the names replaced.
    """

    class _Missing(types.ModuleType):
        def __getattr__(self, attr: str):
            if attr.startswith("__"):
                raise AttributeError(attr)
            msg = f"{self.__name__} is not installed (stand-in of bench_solve_gpu.py)"
            raise ImportError(msg)

    stubbed = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = _Missing(name)
            stubbed.append(name)
    if "scipy" in stubbed:
        sys.modules["scipy.sparse"] = _Missing("scipy.sparse")
        object.__setattr__(sys.modules["scipy"], "sparse", sys.modules["scipy.sparse"])
        stubbed.append("scipy.sparse")
    sys.path.insert(0, str(ROOT / "src"))
    try:
        import sc_cello1.inference
        import sc_cello1.tl  # noqa: F401
    finally:
        for name in stubbed:
            del sys.modules[name]
    return stubbed


def write_cells(path: Path = CELLS, per_type: int = 8) -> None:
    """Regenerate the cells file from scanpy's pbmc68k_reduced (needs scanpy)."""
    import numpy as np
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    raw = adata.raw
    X = raw.X.toarray() if hasattr(raw.X, "toarray") else np.asarray(raw.X)
    names = np.asarray(raw.var_names)
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    cells = []
    for t in sorted(set(labels)):
        for c in np.flatnonzero(labels == t)[:per_type]:
            top = names[np.argsort(-X[c], kind="stable")[:50]]
            cells.append(
                {"id": str(adata.obs_names[c]), "cell_type": t, "genes": [str(g) for g in top]}
            )
    head = {
        "source": "scanpy.datasets.pbmc68k_reduced(), .raw (log1p), top 50 genes per cell",
        "written_by": "benchmarks/bench_solve_gpu.py --write-cells",
    }
    lines = [json.dumps(head)[:-1] + ', "cells": [']
    lines += [json.dumps(c) + ("," if i < len(cells) - 1 else "") for i, c in enumerate(cells)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*lines, "]}"]) + "\n")


def build_puzzles(n_puzzles: int, seed: int = 0):
    """Puzzles of one random cell per type (10 cells, shuffled), candidates sorted."""
    from sc_cello1.data import Puzzle

    cells = json.loads(CELLS.read_text())["cells"]
    by_type: dict[str, list[list[str]]] = {}
    for c in cells:
        by_type.setdefault(c["cell_type"], []).append(c["genes"])
    types_ = sorted(by_type)
    rng = random.Random(seed)
    out = []
    for _ in range(n_puzzles):
        order = rng.sample(types_, len(types_))
        out.append(
            Puzzle(
                context="The cell is from a human donor, originating from the blood.",
                genes=[rng.choice(by_type[t]) for t in order],
                candidates=sorted(order),
                answer=order,
            )
        )
    return out


def train_tokenizer(puzzles, directory: Path, vocab: int):
    """Byte-level BPE trained on the puzzles' prompts, with Qwen's chat tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    sys.path.insert(0, str(ROOT))
    from tests._models import QWEN25_CHAT_TEMPLATE

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([m["content"] for p in puzzles for m in p.messages()], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = QWEN25_CHAT_TEMPLATE
    fast.save_pretrained(directory)
    return fast


def build_model(directory: Path, shape: dict, *, dtype, device: str, tokenizer) -> dict:
    """A random-weight Qwen2ForCausalLM of the given shape, saved to ``directory``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Qwen2Config(
        **shape, bos_token_id=None, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id
    )
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.generation_config = GenerationConfig(
        eos_token_id=eos, pad_token_id=tokenizer.pad_token_id
    )
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(directory, max_shard_size="5GB")
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    head_dim = shape["hidden_size"] // shape["num_attention_heads"]
    embed = shape["vocab_size"] * shape["hidden_size"]
    # bytes read per decoding step: every weight once, except the input embedding
    # (one row per sequence; counted in full when tied to the output layer)
    read = n_params - (0 if shape["tie_word_embeddings"] else embed)
    return {
        "n_params": n_params,
        "weight_bytes_per_step": read * dtype.itemsize,
        "kv_bytes_per_token": 2
        * shape["num_hidden_layers"]
        * shape["num_key_value_heads"]
        * head_dim
        * dtype.itemsize,
    }


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def authors_pipeline(model_dir: str, dtype):
    """The authors' test.py model loading (their LLMEngine.__init__), bf16 on GPU."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, device_map="auto", dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pipe = transformers.pipeline("text-generation", model=model, tokenizer=tokenizer)
    pipe.model.generation_config.temperature = None
    pipe.model.generation_config.top_p = None
    return pipe


def authors_loop(pipe, puzzles, max_new_tokens: int) -> tuple[list[str], float]:
    """The authors' test.py loop: one pipeline call per puzzle (their LLMEngine.generate)."""
    outputs = []
    _sync()
    start = time.perf_counter()
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
    _sync()
    return outputs, time.perf_counter() - start


def _release() -> None:
    """Return freed GPU memory after the caller dropped its references."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_authors(model_dir: str, puzzles, lengths: tuple[int, int], dtype) -> dict:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    pipe = authors_pipeline(model_dir, dtype)
    authors_loop(pipe, puzzles[:1], 2)  # warm-up (CUDA kernels, allocator)
    _, short_s = authors_loop(pipe, puzzles, lengths[0])
    texts, long_s = authors_loop(pipe, puzzles, lengths[1])
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    del pipe
    _release()
    return {"texts": texts, "short_s": short_s, "long_s": long_s, "peak_gib": peak}


def run_ours(
    model_dir: str, puzzles, lengths: tuple[int, int], batch_size: int, dtype_name: str
) -> dict:
    import torch

    from sc_cello1.inference import TransformersBackend
    from sc_cello1.tl import solve

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    backend = TransformersBackend(model_dir, dtype=dtype_name, batch_size=batch_size)

    def once(max_new_tokens: int, subset=None):
        backend.generation_kwargs = {"min_new_tokens": max_new_tokens}  # fixed output length
        _sync()
        start = time.perf_counter()
        res = solve(
            puzzles if subset is None else subset,
            model=backend,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            repair=False,  # post-processing (scipy), not generation; the authors have none
        )
        _sync()
        return res, time.perf_counter() - start

    while True:
        try:
            once(2, puzzles[:batch_size])  # warm-up at the batch size
            _, short_s = once(lengths[0])
            res, long_s = once(lengths[1])
            break
        except torch.cuda.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size //= 2
            backend.batch_size = batch_size
            print(f"out of GPU memory: tl.solve batch size lowered to {batch_size}", flush=True)
            _release()
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    out = {
        "texts": [r["text"] for r in res],
        "n_tokens": [r["n_tokens"] for r in res],
        "short_s": short_s,
        "long_s": long_s,
        "peak_gib": peak,
        "batch_size": batch_size,
    }
    backend = res = None  # drop the model before the next one loads
    _release()
    return out


def figures(
    side: dict, prompt_tokens: list[int], lengths: tuple[int, int], sizes: dict, bw: float | None
) -> dict:
    """Tokens/s end to end and decoding only, and the share of the bandwidth bound."""
    short, long = lengths
    n = len(prompt_tokens)
    decode_s = side["long_s"] - side["short_s"]
    steps = long - short
    # bytes of all decoding steps between `short` and `long` new tokens; a sequential loop
    # runs one sequence per step, a batch all of its sequences per step
    kv = sizes["kv_bytes_per_token"]
    mean_ctx = [p + (short + long) / 2 for p in prompt_tokens]
    calls = -(-n // side["batch_size"]) if side["batched"] else n  # generate calls
    weight_reads = calls * steps
    bytes_total = weight_reads * sizes["weight_bytes_per_step"] + steps * kv * sum(mean_ctx)
    out = {
        "puzzles": n,
        "wall_s": round(side["long_s"], 2),
        "tokens_per_s": round(n * long / side["long_s"], 1),
        "puzzles_per_min": round(60 * n / side["long_s"], 2),
        "decode_s": round(decode_s, 2),
        "decode_tokens_per_s": round(n * steps / decode_s, 1) if decode_s > 0 else None,
        "decode_bytes_per_s": bytes_total / decode_s if decode_s > 0 else None,
        "peak_gpu_memory_gib": None if side["peak_gib"] is None else round(side["peak_gib"], 1),
    }
    if bw and decode_s > 0:
        out["share_of_bandwidth_bound"] = round(bytes_total / decode_s / (bw * 1e12), 3)
        # the decoding rate if those bytes moved at the peak bandwidth
        out["decode_tokens_per_s_bound"] = round(n * steps / (bytes_total / (bw * 1e12)), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tiny", action="store_true", help="tiny model on the CPU (smoke test)")
    ap.add_argument("--n-puzzles", type=int, default=None, help="tl.solve puzzles (64; tiny: 4)")
    ap.add_argument(
        "--authors-puzzles", type=int, default=None, help="authors' loop puzzles (8; tiny: 2)"
    )
    ap.add_argument("--batch-size", type=int, default=None, help="tl.solve batch (64; tiny: 4)")
    ap.add_argument(
        "--max-new-tokens", type=int, default=None, help="fixed output length (256; tiny: 8)"
    )
    ap.add_argument(
        "--short-tokens",
        type=int,
        default=None,
        help="short run for the decode-only rate (32; tiny: 2)",
    )
    ap.add_argument("--vocab", type=int, default=512, help="size of the trained tokenizer")
    ap.add_argument("--bandwidth-tbs", type=float, default=None, help="peak memory bandwidth, TB/s")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--write-cells", action="store_true", help="regenerate the cells file (scanpy)")
    args = ap.parse_args()
    if args.write_cells:
        write_cells()
        print(f"wrote {CELLS}")
        return

    import torch

    stubbed = import_without()

    tiny = args.tiny
    n_puzzles = args.n_puzzles or (4 if tiny else 64)
    n_authors = min(args.authors_puzzles or (2 if tiny else 8), n_puzzles)
    batch_size = args.batch_size or (4 if tiny else 64)
    long = args.max_new_tokens or (8 if tiny else 256)
    short = args.short_tokens or (2 if tiny else 32)
    if not 0 < short < long:
        sys.exit("--short-tokens must be between 0 and --max-new-tokens")
    cuda = torch.cuda.is_available()
    if not cuda and not tiny:
        sys.exit("no CUDA device: run with --tiny for the CPU smoke test")
    device = "cuda" if cuda else "cpu"
    dtype_name = "bfloat16" if cuda else "float32"
    dtype = getattr(torch, dtype_name)
    gpu = torch.cuda.get_device_name(0) if cuda else None
    bw = args.bandwidth_tbs
    if bw is None and gpu:
        bw = next((v for k, v in BANDWIDTH_TBS if k in gpu), None)
    shape = TINY if tiny else QWEN25_7B

    t0 = time.perf_counter()
    puzzles = build_puzzles(n_puzzles)
    # the weights (15 GB) go to RAM (/dev/shm) where there is room: faster than disk
    shm = Path("/dev/shm")
    ram = shm.is_dir() and shutil.disk_usage(shm).free > 40 * 2**30
    tmp = Path(tempfile.mkdtemp(prefix="bench_solve_gpu-", dir=shm if ram else None))
    try:
        tok = train_tokenizer(puzzles, tmp, args.vocab)
        prompt_tokens = [
            len(
                tok(
                    tok.apply_chat_template(
                        p.messages(), tokenize=False, add_generation_prompt=True
                    ),
                    add_special_tokens=False,
                )["input_ids"]
            )
            for p in puzzles
        ]
        sizes = build_model(tmp, shape, dtype=dtype, device=device, tokenizer=tok)
        setup_s = time.perf_counter() - t0
        print(
            f"model built and saved in {setup_s:.0f} s ({sizes['n_params'] / 1e9:.2f} B parameters)",
            flush=True,
        )
        a = run_authors(str(tmp), puzzles[:n_authors], (short, long), dtype)
        a.update(batched=False)
        print(f"authors' loop done after {time.perf_counter() - t0:.0f} s", flush=True)
        o = run_ours(str(tmp), puzzles, (short, long), batch_size, dtype_name)
        o.update(batched=True)
        print(f"tl.solve done after {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    fa = figures(a, prompt_tokens[:n_authors], (short, long), sizes, bw)
    fo = figures(o, prompt_tokens, (short, long), sizes, bw)
    same = sum(
        x.strip() == y.strip() for x, y in zip(a["texts"], o["texts"][:n_authors], strict=True)
    )
    result = {
        "device": gpu or "cpu",
        "model": "Qwen2.5-7B shape, random weights"
        if not tiny
        else "tiny Qwen2 shape (smoke test)",
        "dtype": dtype_name,
        "n_params": sizes["n_params"],
        "weight_bytes_per_decode_step": sizes["weight_bytes_per_step"],
        "kv_bytes_per_context_token": sizes["kv_bytes_per_token"],
        "peak_bandwidth_tbs": bw,
        "tokenizer_vocab": len(tok),
        "mean_prompt_tokens": round(sum(prompt_tokens) / len(prompt_tokens), 1),
        "cells_per_puzzle": puzzles[0].n_cells,
        "new_tokens_per_puzzle": long,
        "short_run_new_tokens": short,
        "solve_batch_size": o["batch_size"],
        "all_solve_completions_full_length": all(t == long for t in o["n_tokens"]),
        "identical_completions_on_shared_puzzles": f"{same}/{n_authors}",
        "authors_loop": fa,
        "tl_solve": fo,
        "speedup_tokens_per_s": round(fo["tokens_per_s"] / fa["tokens_per_s"], 2),
        "stand_ins_for_missing_modules": stubbed,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "total_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

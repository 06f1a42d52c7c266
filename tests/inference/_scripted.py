"""A real (tiny) Qwen2 checkpoint whose greedy output is a fixed script.

Each piece of the script is an added token; attention and MLP outputs are zeroed, so the
hidden state is the embedding of the last token, and the untied LM head maps each
script token to the next one. Served by ``transformers serve`` it behaves like a
Cell-o1 model that always writes ``<think>...</think>\\n<answer>...</answer>``.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
from pathlib import Path

from tests import _models

SCRIPT = [
    "<think>",
    "cells look like lymphocytes",
    "</think>\n",
    "<answer>",
    "B cell",
    " | ",
    "T cell",
    "</answer>",
]
VERSION = "1"


def scripted_qwen2_dir(script: list[str] = SCRIPT) -> Path:
    key = hashlib.sha256("\x00".join(script).encode()).hexdigest()[:10]
    target = _models.cache_root() / f"scripted-qwen2-{VERSION}-{key}"

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

        base = _models.tiny_qwen2_dir()
        tok = AutoTokenizer.from_pretrained(base)
        tok.add_tokens(list(script))
        tok.save_pretrained(tmp)
        ids = [tok.convert_tokens_to_ids(s) for s in script]
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
        )
        last = tok.encode(prompt, add_special_tokens=False)[-1]
        eos = tok.convert_tokens_to_ids("<|im_end|>")
        chain = [last, *ids, eos]
        if len(set(chain[:-1])) != len(chain) - 1:
            raise ValueError("script tokens must be distinct")
        config = Qwen2Config(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            tie_word_embeddings=False,
            bos_token_id=None,
            eos_token_id=eos,
            pad_token_id=tok.pad_token_id,
        )
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
            emb = model.model.embed_tokens.weight
            head = model.lm_head.weight
            head.zero_()
            for t, s in itertools.pairwise(chain):
                head[s] = 10 * emb[t] / emb[t].norm()
        model.generation_config = GenerationConfig(
            eos_token_id=eos, pad_token_id=config.pad_token_id
        )
        model.save_pretrained(tmp)

    return _models._atomic_build(target, build)


def expected_text(script: list[str] = SCRIPT) -> str:
    return "".join(script)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

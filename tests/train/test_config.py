from __future__ import annotations

import dataclasses

import pytest

import sc_cello1 as cello1
from sc_cello1.train import GRPOConfig, SFTConfig


def test_sft_defaults_are_the_authors():
    cfg = SFTConfig()
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.use_dora) == (256, 512, 0.05, True)
    assert cfg.lora_target_modules == "all-linear"
    assert cfg.learning_rate == 5e-5 and cfg.max_length == 4096 and cfg.completion_only_loss
    assert (cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps) == (6, 16)
    assert cfg.prompt_style == "sft"


def test_grpo_defaults_are_the_authors():
    cfg = GRPOConfig()
    assert cfg.num_generations == 5 and cfg.clip_epsilon == 0.2 and cfg.kl_coef == 0.001
    assert cfg.learning_rate == 1e-6 and cfg.max_grad_norm == 1.0
    assert cfg.prompt_style == "rl" and cfg.max_new_tokens == 3000
    # 64 puzzles per optimizer step on one device, as the authors' train_batch_size.
    assert cfg.puzzles_per_step * cfg.accumulate_grad_batches == 64


@pytest.mark.parametrize("cls", [SFTConfig, GRPOConfig])
def test_every_field_has_help(cls):
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help"), f.name


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (GRPOConfig, {"num_generations": 4, "batch_size": 6}, "multiple of num_generations"),
        (GRPOConfig, {"num_generations": 1, "batch_size": 4}, "num_generations must be >= 2"),
        (GRPOConfig, {"clip_epsilon": 1.5}, "clip_epsilon"),
        (GRPOConfig, {"kl_coef": -1.0}, "kl_coef"),
        (GRPOConfig, {"top_p": 0.0}, "top_p"),
        (GRPOConfig, {"max_steps": -1, "max_epochs": 0}, "Nothing to train"),
        (GRPOConfig, {"prompt_style": "chat"}, "prompt_style"),
        (SFTConfig, {"lora_dropout": 1.0}, "lora_dropout"),
        (SFTConfig, {"lora_r": 0}, "lora_r"),
        (SFTConfig, {"max_steps": -1, "num_train_epochs": 0}, "Nothing to train"),
        (SFTConfig, {"eval_ratio": 1.0}, "eval_ratio"),
        (SFTConfig, {"dtype": "int8"}, "dtype"),
        (SFTConfig, {"trainer_args": {"learning_rate": 1.0}}, "SFTConfig owns"),
    ],
)
def test_impossible_configs_are_rejected(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_full_fine_tuning_ignores_lora_fields():
    cfg = SFTConfig(use_peft=False, lora_r=0)
    assert not cfg.use_peft


def test_replace_validates_and_rejects_unknown_fields():
    cfg = GRPOConfig().replace(num_generations=4, batch_size=8)
    assert cfg.puzzles_per_step == 2
    with pytest.raises(TypeError, match="no field"):
        cfg.replace(lora_rank=8)
    with pytest.raises(ValueError, match="multiple"):
        cfg.replace(batch_size=6)


def test_train_namespace_is_lazy():
    import subprocess
    import sys

    code = (
        "import sys, sc_cello1 as c; c.train.SFTConfig(); c.train.GRPOConfig();"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'lightning') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "GRPOModule" in cello1.train.__all__

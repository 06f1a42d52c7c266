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
    assert cfg.num_generations == 5 and cfg.epsilon == 0.2 and cfg.beta == 0.001
    assert cfg.learning_rate == 1e-6 and cfg.max_grad_norm == 1.0
    assert (
        cfg.prompt_style == "rl" and cfg.max_completion_length == 3000 and cfg.num_iterations == 1
    )
    # 64 puzzles per optimizer step on one device, as the authors' train_batch_size.
    assert cfg.puzzles_per_step * cfg.gradient_accumulation_steps == 64


@pytest.mark.parametrize("cls", [SFTConfig, GRPOConfig])
def test_every_field_has_help(cls):
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help"), f.name


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (
            GRPOConfig,
            {"num_generations": 4, "per_device_train_batch_size": 6},
            "multiple of num_generations",
        ),
        (
            GRPOConfig,
            {"num_generations": 1, "per_device_train_batch_size": 4},
            "num_generations must be >= 2",
        ),
        (GRPOConfig, {"epsilon": 1.5}, "epsilon"),
        (GRPOConfig, {"beta": -1.0}, "beta"),
        (GRPOConfig, {"num_iterations": 0}, "num_iterations"),
        (GRPOConfig, {"rollout": "sglang"}, "rollout"),
        (GRPOConfig, {"vllm_gpu_memory_utilization": 1.5}, "vllm_gpu_memory_utilization"),
        (GRPOConfig, {"top_p": 0.0}, "top_p"),
        (GRPOConfig, {"max_steps": -1, "num_train_epochs": 0}, "Nothing to train"),
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
    cfg = GRPOConfig().replace(num_generations=4, per_device_train_batch_size=8)
    assert cfg.puzzles_per_step == 2
    with pytest.raises(TypeError, match="no field"):
        cfg.replace(lora_rank=8)
    with pytest.raises(ValueError, match="multiple"):
        cfg.replace(per_device_train_batch_size=6)


OLD_TO_NEW = {
    "batch_size": ("per_device_train_batch_size", 20),
    "accumulate_grad_batches": ("gradient_accumulation_steps", 3),
    "clip_epsilon": ("epsilon", 0.3),
    "kl_coef": ("beta", 0.04),
    "max_new_tokens": ("max_completion_length", 17),
    "max_epochs": ("num_train_epochs", 2),
    "val_check_interval": ("eval_steps", 5),
    "val_max_new_tokens": ("eval_max_completion_length", 9),
    "log_every_n_steps": ("logging_steps", 4),
    "save_every_n_steps": ("save_steps", 7),
}


@pytest.mark.parametrize("old", sorted(OLD_TO_NEW))
def test_old_grpo_names_still_work_with_a_future_warning(old):
    new, value = OLD_TO_NEW[old]
    with pytest.warns(FutureWarning, match=f"{old} -> {new}"):
        cfg = GRPOConfig(**{old: value})
    assert getattr(cfg, new) == value
    assert old not in cfg.to_dict() and cfg.to_dict()[new] == value
    with pytest.warns(FutureWarning, match=f"{old} -> {new}"):
        assert getattr(GRPOConfig().replace(**{old: value}), new) == value
    with pytest.warns(FutureWarning, match=f"use .{new}"):
        assert getattr(cfg, old) == value


def test_old_sft_name_still_works():
    with pytest.warns(FutureWarning, match="warmup_ratio -> warmup_steps"):
        assert SFTConfig(warmup_ratio=0.1).warmup_steps == 0.1


def test_old_and_new_name_together_is_an_error():
    with pytest.raises(TypeError, match="both 'kl_coef'"):
        GRPOConfig(kl_coef=0.1, beta=0.2)


def test_new_names_are_trls():
    trl = pytest.importorskip("trl")
    ours = {f.name for f in dataclasses.fields(GRPOConfig)}
    theirs = {f.name for f in dataclasses.fields(trl.GRPOConfig)}
    shared = {
        "num_generations",
        "beta",
        "epsilon",
        "num_iterations",
        "max_completion_length",
        "learning_rate",
        "gradient_accumulation_steps",
        "num_train_epochs",
        "save_steps",
        "logging_steps",
        "eval_steps",
        "per_device_train_batch_size",
        "max_grad_norm",
        "temperature",
        "top_p",
        "vllm_gpu_memory_utilization",
    }
    assert shared <= ours and shared <= theirs
    sft_shared = {f.name for f in dataclasses.fields(SFTConfig)} - {
        "use_peft",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "use_dora",
        "lora_target_modules",
        "merge",
        "dtype",
        "prompt_style",
        "eval_ratio",
        "resume",
        "trainer_args",
    }
    assert sft_shared <= {f.name for f in dataclasses.fields(trl.SFTConfig)}


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

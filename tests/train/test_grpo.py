from __future__ import annotations

import csv
import json

import pytest

import sc_cello1 as cello1

from .conftest import length_reward

FAST = {
    "max_steps": 2,
    "num_generations": 2,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "max_completion_length": 8,
    "learning_rate": 1e-2,
    "lora_r": 4,
    "lora_alpha": 8,
}


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.slow
def test_grpo_lora_trains_logs_and_reloads(tiny_qwen2, train_puzzles, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = cello1.train.grpo(
        tiny_qwen2,
        train_puzzles,
        output_dir=tmp_path / "g",
        eval_puzzles=train_puzzles[:2],
        reward_fn=length_reward,
        eval_steps=1,
        merge=False,
        **FAST,
    )
    info = json.loads((out / "cello1_train.json").read_text())
    assert info["trainer"] == "grpo" and info["global_step"] == 2
    assert len(info["history"]) == 2 and len(info["val_history"]) == 2
    assert set(info["val_history"][0]) >= {"cell_accuracy", "batch_accuracy", "format_rate"}
    # LoRA B matrices start at zero: non-zero after training means the adapter learned.
    adapter = _weights(out / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)
    # Lightning's CSV log has the per-step metrics.
    rows = list(csv.DictReader((out / "logs" / "version_0" / "metrics.csv").open()))
    logged = {k for r in rows for k, v in r.items() if v}
    assert {
        "train/reward",
        "train/batch_accuracy",
        "train/cell_accuracy",
        "train/format_rate",
        "train/response_length",
        "train/kl",
        "val/cell_accuracy",
    } <= logged
    # The adapter folder loads as a model.
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    ids = tok("Cell 1: CD3E", return_tensors="pt")
    with torch.no_grad():
        assert (
            model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1]
            > ids["input_ids"].shape[1]
        )


@pytest.mark.slow
def test_grpo_full_parameters_and_resume(tiny_qwen2, train_puzzles, tmp_path):
    out = tmp_path / "full"
    cello1.train.grpo(
        tiny_qwen2, train_puzzles, output_dir=out, reward_fn=length_reward, use_peft=False, **FAST
    )
    base, trained = _weights(tiny_qwen2 / "model.safetensors"), _weights(out / "model.safetensors")
    changed = [k for k in base if not base[k].equal(trained[k])]
    assert len(changed) > len(base) // 2
    assert (out / "checkpoints" / "last.ckpt").is_file()
    first = json.loads((out / "cello1_train.json").read_text())["history"]
    # Asking for one more step resumes from last.ckpt: one new step, the history kept.
    cello1.train.grpo(
        tiny_qwen2,
        train_puzzles,
        output_dir=out,
        reward_fn=length_reward,
        use_peft=False,
        **{**FAST, "max_steps": 3},
    )
    info = json.loads((out / "cello1_train.json").read_text())
    assert info["global_step"] == 3
    assert len(info["history"]) == 3 and info["history"][:2] == first


@pytest.mark.slow
def test_grpo_on_sft_output_with_the_authors_reward(tiny_qwen2, train_puzzles, tmp_path):
    sft = cello1.train.sft(
        tiny_qwen2,
        train_puzzles,
        output_dir=tmp_path / "sft",
        max_steps=1,
        lora_r=4,
        lora_alpha=8,
        use_dora=False,
        merge=False,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
    )
    out = cello1.train.grpo(
        sft, train_puzzles[:2], output_dir=tmp_path / "grpo", **{**FAST, "max_steps": 1}
    )
    info = json.loads((out / "cello1_train.json").read_text())
    # The SFT output was an adapter, so the GRPO output is a merged full model.
    assert (out / "model.safetensors").is_file() and (
        out / "adapter" / "adapter_config.json"
    ).is_file()
    assert info["base_model"]["adapter"] is True
    # An untrained model: every completion breaks the format and gets the reward -1.
    assert info["history"][0]["train/reward"] == -1.0


@pytest.mark.slow
def test_grpo_module_reference_is_the_model_without_adapters(tiny_qwen2):
    import torch
    from peft import get_peft_model

    from sc_cello1.models import resolve as resolve_model
    from sc_cello1.train._data import load_model, lora_config

    model, tok = load_model(resolve_model(tiny_qwen2))
    cfg = cello1.train.GRPOConfig(lora_r=4, lora_alpha=8, use_dora=False)
    policy = get_peft_model(model, lora_config(cfg))
    for name, p in policy.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    module = cello1.train.GRPOModule(policy, tok, cfg)
    assert module._ref_model is None  # no second copy with LoRA
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    mask = torch.ones_like(ids)
    ref = module.reference_log_probs(ids, mask, 3)
    with torch.no_grad(), policy.disable_adapter():
        base = torch.log_softmax(policy(ids).logits[:, -4:-1].float(), -1).gather(
            2, ids[:, -3:, None]
        )[..., 0]
    with torch.no_grad():
        now = cello1.train._grpo.token_log_probs(policy, ids, mask, 3)
    assert torch.allclose(ref, base, atol=1e-5)
    assert not torch.allclose(now, ref, atol=1e-3)
    with pytest.raises(TypeError, match="GRPOConfig"):
        cello1.train.GRPOModule(policy, tok, {"beta": 0.0})


@pytest.mark.slow
def test_token_log_probs_ignore_left_padding(tiny_qwen2):
    import torch

    from sc_cello1.models import resolve as resolve_model
    from sc_cello1.train._data import load_model
    from sc_cello1.train._grpo import token_log_probs

    model, _ = load_model(resolve_model(tiny_qwen2))
    model.eval()
    row = torch.tensor([[11, 12, 13, 14, 15, 16]])
    padded = torch.tensor([[0, 0, 11, 12, 13, 14, 15, 16]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        a = token_log_probs(model, row, torch.ones_like(row), 3)
        b = token_log_probs(model, padded, mask, 3)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_grpo_several_updates_per_rollout_clip(tiny_qwen2, train_puzzles, tmp_path):
    # One rollout batch, three optimizer steps on it: the ratio moves away from 1 and the
    # clip binds on some tokens (with num_iterations=1 it never can: the ratio is exactly 1).
    out = cello1.train.grpo(
        tiny_qwen2,
        train_puzzles,
        output_dir=tmp_path / "g",
        reward_fn=length_reward,
        **{**FAST, "max_steps": 3, "num_iterations": 3, "learning_rate": 5e-2},
        lora_dropout=0.0,
        use_dora=False,
        merge=False,
    )
    info = json.loads((out / "cello1_train.json").read_text())
    assert info["global_step"] == 3 and len(info["history"]) == 1
    assert info["history"][0]["train/clip_fraction"] > 0


@pytest.mark.slow
def test_grpo_progress_bar_counts_the_batches_it_runs(tiny_qwen2, train_puzzles, tmp_path, capfd):
    """max_steps=2 with 2 batches per step: the bar runs to 4/4, "Epoch 0" (not 0/-2, 4/2)."""
    import re

    cello1.train.grpo(
        tiny_qwen2,
        train_puzzles,
        output_dir=tmp_path / "g",
        reward_fn=length_reward,
        merge=False,
        **{**FAST, "gradient_accumulation_steps": 2, "per_device_train_batch_size": 2},
    )
    captured = capfd.readouterr()
    err = captured.out + captured.err  # Lightning's bars write to stdout
    counts = re.findall(r"Epoch (-?\d+)(/-?\d+)?: [^|]*\|[^|]*\| (\d+)/(\d+)", err)
    assert counts, err[-2000:]
    assert all(epoch == "0" and not slash for epoch, slash, _, _ in counts)
    assert {(int(n), int(total)) for _, _, n, total in counts} >= {(4, 4)}
    assert all(int(n) <= int(total) for _, _, n, total in counts)

from __future__ import annotations

import json

import pytest

import sc_cello1 as cello1
from sc_cello1.train import _sft

FAST = {
    "max_steps": 2,
    "lora_r": 4,
    "lora_alpha": 8,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "learning_rate": 1e-2,
    "max_length": 512,
}


def _state(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _generate(path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path))
    tok = AutoTokenizer.from_pretrained(str(path))
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Cell 1: CD3E"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    return out.shape[1] - ids["input_ids"].shape[1]


def test_sft_records_use_the_authors_sft_layout(train_puzzles):
    rec = _sft.sft_records(train_puzzles[:1])[0]
    p = train_puzzles[0]
    assert rec["prompt"] == [
        {"role": "system", "content": p.system_msg},
        {"role": "user", "content": p.user_msg},
    ]
    assert rec["completion"] == [{"role": "assistant", "content": " | ".join(p.answer)}]


@pytest.mark.slow
def test_sft_lora_trains_merges_and_reloads(tiny_qwen2, train_puzzles, tmp_path):
    out = cello1.train.sft(tiny_qwen2, train_puzzles, output_dir=tmp_path / "sft", **FAST)
    assert out == tmp_path / "sft"
    info = json.loads((out / "cello1_train.json").read_text())
    assert info["trainer"] == "sft" and info["global_step"] == 2
    assert info["config"]["use_dora"] is True and info["base_model"]["path"] == str(tiny_qwen2)
    # merge=True (default): a plain model at the top, the adapter under adapter/.
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not (out / "adapter_config.json").exists()
    base, trained = _state(tiny_qwen2), _state(out)
    changed = [k for k in base if not base[k].equal(trained[k])]
    assert any("proj" in k for k in changed)
    assert _generate(out) > 0


@pytest.mark.slow
def test_sft_full_fine_tuning_changes_all_weights(tiny_qwen2, train_puzzles, tmp_path):
    out = cello1.train.sft(
        tiny_qwen2, train_puzzles, output_dir=tmp_path / "full", use_peft=False, **FAST
    )
    base, trained = _state(tiny_qwen2), _state(out)
    assert not (out / "adapter").exists()
    assert not base["model.embed_tokens.weight"].equal(trained["model.embed_tokens.weight"])
    assert _generate(out) > 0


@pytest.mark.slow
def test_sft_adapter_output_resumes_and_merges(tiny_qwen2, train_puzzles, tmp_path):
    import torch
    from peft import AutoPeftModelForCausalLM

    out = tmp_path / "lora"
    cfg = cello1.train.SFTConfig(use_dora=False, merge=False, save_steps=1, **FAST)
    cello1.train.sft(tiny_qwen2, train_puzzles, output_dir=out, config=cfg)
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    # A second call with more steps continues from the checkpoint of step 2.
    cello1.train.sft(tiny_qwen2, train_puzzles, output_dir=out, config=cfg.replace(max_steps=3))
    info = json.loads((out / "cello1_train.json").read_text())
    assert info["global_step"] == 3
    assert [h["step"] for h in info["log_history"] if "loss" in h] == [1, 2, 3]

    merged = cello1.train.merge_lora(out, tmp_path / "merged")
    from transformers import AutoModelForCausalLM

    x = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(str(merged)).eval()(x).logits
        b = AutoPeftModelForCausalLM.from_pretrained(str(out)).eval()(x).logits
    assert torch.allclose(a, b, atol=1e-5)
    assert _generate(merged) > 0


def test_merge_lora_rejects_a_folder_without_adapter(tiny_qwen2, tmp_path):
    with pytest.raises(ValueError, match=r"adapter_config\.json"):
        cello1.train.merge_lora(tiny_qwen2, tmp_path / "m")

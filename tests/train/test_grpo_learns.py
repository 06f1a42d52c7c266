"""GRPO improves a held-out reward: the tiny model learns to name the marker's cell type."""

from __future__ import annotations

import json
import random

import pytest

import sc_cello1 as cello1

MARKERS = {"T cell": ["CD3E", "CD2"], "B cell": ["MS4A1", "CD79A"]}
N_SAMPLES = 8


def _puzzles(n, seed):
    """2-cell puzzles: each cell's top genes are the markers of its type."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        answer = ["T cell", "B cell"]
        rng.shuffle(answer)
        out.append(
            cello1.data.Puzzle(
                context=f"The cells are from donor {rng.randint(0, 999)}.",
                genes=[MARKERS[answer[0]] + ["ACTB"], MARKERS[answer[1]] + ["B2M"]],
                candidates=["B cell", "T cell"],
                answer=answer,
            )
        )
    return out


class MarkerReward:
    """Share of a completion's tokens that spell the first cell's type (with or without a space).

    A shaped reward with variance on an untrained tiny model (a random 12-token completion
    hits one of these 3 tokens of 512 now and then), unlike the paper's reward, which is -1
    for every completion that breaks the answer format.
    """

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.target = {k: set(self._ids(k)) | set(self._ids(" " + k)) for k in MARKERS}

    def _ids(self, text):
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def __call__(self, completions, answer, **kwargs):
        rewards = []
        for text, gold in zip(completions, answer, strict=True):
            ids = self._ids(text)
            rewards.append(sum(i in self.target[gold[0]] for i in ids) / max(len(ids), 1))
        return rewards


def _held_out_reward(model_dir, tok, puzzles, reward):
    """Mean reward of 8 sampled completions (fixed seed) per held-out puzzle."""
    import torch
    from transformers import AutoModelForCausalLM

    from sc_cello1.train._generate import generate
    from sc_cello1.train._grpo import rl_records

    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    records = rl_records(puzzles, tok, "rl")
    torch.manual_seed(0)
    texts = generate(
        model,
        tok,
        [r["prompt"] for r in records],
        max_new_tokens=12,
        do_sample=True,
        num_return_sequences=N_SAMPLES,
    )[4]
    gold = [r["answer"] for r in records for _ in range(N_SAMPLES)]
    return sum(reward(texts, gold)) / len(texts)


@pytest.mark.slow
def test_grpo_raises_the_held_out_reward(tiny_qwen2, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_qwen2))
    reward = MarkerReward(tok)
    train, held_out = _puzzles(16, seed=0), _puzzles(8, seed=1)
    before = _held_out_reward(tiny_qwen2, tok, held_out, reward)
    out = cello1.train.grpo(
        tiny_qwen2,
        train,
        output_dir=tmp_path / "g",
        reward_fn=reward,
        use_peft=False,
        num_generations=8,
        per_device_train_batch_size=32,  # 4 puzzles x 8 samples per step
        gradient_accumulation_steps=1,
        max_completion_length=12,
        max_steps=10,
        learning_rate=3e-2,
        beta=0.0,
        trainer_kwargs={"accelerator": "cpu", "enable_progress_bar": False, "logger": False},
    )
    after = _held_out_reward(out, tok, held_out, reward)
    history = json.loads((out / "cello1_train.json").read_text())["history"]
    assert before < 0.05
    assert after > before + 0.2, (before, after, [h["train/reward"] for h in history])

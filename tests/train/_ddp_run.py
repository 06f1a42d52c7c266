"""Run cello1.train.grpo with fixed rollouts, in one process or under Lightning DDP on CPU.

Usage: ``python _ddp_run.py MODEL_DIR OUTPUT_DIR DEVICES [MICRO_BATCH_SIZE]``. Lightning's DDP launcher
starts the other ranks by running this script again. The rollouts are a test double
(fixed completions per prompt, so that one process with the doubled batch sees the same
data as the two processes together); the optimisation is the real one: GRPOModule.update
with two iterations per rollout batch, AdamW, gradient clipping and DDP's all-reduce.
"""

from __future__ import annotations

import sys
import zlib


def fixed_rollout(self, prompts):
    """``num_generations`` completions of 6 tokens per prompt, a function of the prompt only."""
    import torch

    from sc_cello1.train._generate import encode_prompts

    G = self.config.num_generations
    prompt_ids, prompt_mask = encode_prompts(self.tokenizer, prompts, self.device)
    rows = []
    for p in prompts:
        gen = torch.Generator().manual_seed(zlib.crc32(p.encode()))
        rows.append(torch.randint(3, 500, (G, 6), generator=gen))  # no special tokens
    comp = torch.cat(rows).to(self.device)
    texts = [self.tokenizer.decode(r, skip_special_tokens=True) for r in comp]
    return (
        prompt_ids.repeat_interleave(G, dim=0),
        prompt_mask.repeat_interleave(G, dim=0),
        comp,
        torch.ones_like(comp),
        texts,
    )


def text_reward(completions, answer, **kwargs):
    """A deterministic reward with variance within each group."""
    return [float(zlib.crc32(c.encode()) % 5) for c in completions]


def main() -> None:
    model_dir, out_dir, devices = sys.argv[1], sys.argv[2], int(sys.argv[3])
    micro = int(sys.argv[4]) if len(sys.argv) > 4 else None
    import sc_cello1 as cello1
    from sc_cello1.train._grpo import grpo_module_class

    grpo_module_class().rollout = fixed_rollout
    puzzles = [
        cello1.data.Puzzle(
            context=f"The cell is from donor {i}.",
            genes=[["CD3E", "CD2", "IL7R"][: 1 + i % 3], ["MS4A1", "CD79A"]],
            candidates=["B cell", "T cell"],
            answer=["T cell", "B cell"],
        )
        for i in range(4)
    ]
    cello1.train.grpo(
        model_dir,
        puzzles,
        output_dir=out_dir,
        reward_fn=text_reward,
        # 4 puzzles: one step of 2 per device on 2 devices, or of 4 on one.
        per_device_train_batch_size=2 * 4 // devices,
        num_generations=2,
        gradient_accumulation_steps=1,
        num_iterations=2,
        micro_batch_size=micro,
        max_steps=2,
        learning_rate=2e-2,
        beta=0.04,
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        use_dora=False,
        merge=False,
        resume=False,
        trainer_kwargs={
            "accelerator": "cpu",
            "devices": devices,
            "strategy": "ddp" if devices > 1 else "auto",
            "enable_progress_bar": False,
        },
    )


if __name__ == "__main__":
    main()

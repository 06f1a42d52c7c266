"""Bad input is rejected before any model is loaded."""

from __future__ import annotations

import pytest

import sc_cello1 as cello1
from sc_cello1.train import _grpo, _sft


@pytest.fixture
def no_loading(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was validated")

    monkeypatch.setattr(_sft, "load_model", fail)
    monkeypatch.setattr(_grpo, "load_model", fail)
    monkeypatch.setattr(_grpo, "load_chat_tokenizer", fail)


TRAINERS = [cello1.train.sft, cello1.train.grpo]


@pytest.mark.parametrize("train", TRAINERS)
def test_empty_puzzles(train, tiny_qwen2, tmp_path, no_loading):
    with pytest.raises(ValueError, match="empty"):
        train(tiny_qwen2, [], output_dir=tmp_path)


@pytest.mark.parametrize("train", TRAINERS)
def test_puzzles_without_answers(train, tiny_qwen2, train_puzzles, tmp_path, no_loading):
    from dataclasses import replace

    unlabelled = [replace(p, answer=None, assistant_text=None) for p in train_puzzles]
    with pytest.raises(ValueError, match="no answer"):
        train(tiny_qwen2, unlabelled, output_dir=tmp_path)
    with pytest.raises(TypeError, match=r"list of cello1\.data\.Puzzle"):
        train(tiny_qwen2, "puzzles.parquet", output_dir=tmp_path)


@pytest.mark.parametrize("train", TRAINERS)
def test_output_dir_not_writable(train, tiny_qwen2, train_puzzles, tmp_path, no_loading):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        train(tiny_qwen2, train_puzzles, output_dir=blocker)
    with pytest.raises(ValueError, match="not writable"):
        train(tiny_qwen2, train_puzzles, output_dir=blocker / "sub")


@pytest.mark.parametrize("train", TRAINERS)
def test_unknown_model(train, train_puzzles, tmp_path, no_loading):
    with pytest.raises(ValueError, match=r"(?i)unknown model"):
        train("no-such-model-xyz", train_puzzles, output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"config\.json"):
        train(tmp_path, train_puzzles, output_dir=tmp_path / "o")


@pytest.mark.parametrize("train", TRAINERS)
def test_unknown_config_field(train, tiny_qwen2, train_puzzles, tmp_path, no_loading):
    with pytest.raises(TypeError, match="no field"):
        train(tiny_qwen2, train_puzzles, output_dir=tmp_path, lora_rank=8)
    with pytest.raises(TypeError, match="config must be"):
        train(tiny_qwen2, train_puzzles, output_dir=tmp_path, config={"lora_r": 8})


def test_grpo_batch_not_divisible(tiny_qwen2, train_puzzles, tmp_path, no_loading):
    with pytest.raises(ValueError, match="multiple of num_generations"):
        cello1.train.grpo(
            tiny_qwen2,
            train_puzzles,
            output_dir=tmp_path,
            num_generations=3,
            per_device_train_batch_size=4,
        )


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed_stage_2", "FSDPStrategy"])
def test_grpo_sharded_strategies_are_not_offered(
    strategy, tiny_qwen2, train_puzzles, tmp_path, no_loading
):
    if strategy == "FSDPStrategy":
        from lightning.pytorch.strategies import FSDPStrategy

        strategy = FSDPStrategy()
    with pytest.raises(ValueError, match="use strategy='ddp'"):
        cello1.train.grpo(
            tiny_qwen2, train_puzzles, output_dir=tmp_path, trainer_kwargs={"strategy": strategy}
        )


def test_grpo_trainer_kwargs_owned_by_config(tiny_qwen2, train_puzzles, tmp_path, no_loading):
    with pytest.raises(ValueError, match="GRPOConfig owns"):
        cello1.train.grpo(
            tiny_qwen2, train_puzzles, output_dir=tmp_path, trainer_kwargs={"max_steps": 3}
        )
    with pytest.raises(TypeError, match="trainer_kwargs must be a dict"):
        cello1.train.grpo(tiny_qwen2, train_puzzles, output_dir=tmp_path, trainer_kwargs=["cpu"])


def test_grpo_eval_puzzles_need_answers(tiny_qwen2, train_puzzles, tmp_path, no_loading):
    from dataclasses import replace

    with pytest.raises(ValueError, match="eval_puzzles"):
        cello1.train.grpo(
            tiny_qwen2,
            train_puzzles,
            output_dir=tmp_path,
            eval_puzzles=[replace(train_puzzles[0], answer=None)],
        )


@pytest.mark.parametrize("train", TRAINERS)
def test_adapter_input_needs_merge(train, tiny_qwen2, train_puzzles, tmp_path, no_loading):
    import json

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(tiny_qwen2)})
    )
    with pytest.raises(ValueError, match="merge=True"):
        train(adapter, train_puzzles, output_dir=tmp_path / "o", merge=False)


def test_grpo_missing_checkpoint_and_bad_reward(tiny_qwen2, train_puzzles, tmp_path, no_loading):
    with pytest.raises(ValueError, match="ckpt_path"):
        cello1.train.grpo(
            tiny_qwen2, train_puzzles, output_dir=tmp_path, ckpt_path=tmp_path / "x.ckpt"
        )
    with pytest.raises(TypeError, match="reward_fn must be callable"):
        cello1.train.grpo(tiny_qwen2, train_puzzles, output_dir=tmp_path, reward_fn="reward")

from __future__ import annotations

import json

import pytest

import sc_cello1 as cello1
from sc_cello1.cli import main


def test_train_help_lists_config_fields(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "grpo", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--num-generations",
        "--beta",
        "--epsilon",
        "--num-iterations",
        "--max-completion-length",
        "--rollout",
        "--no-use-peft",
        "--strategy",
    ):
        assert flag in text
    assert "--kl-coef" not in text  # old names are accepted but not advertised


def test_train_cli_old_flags_map_to_new_names_with_a_warning():
    import argparse

    from sc_cello1.train._cli import _add_config_options, _overrides

    parser = argparse.ArgumentParser()
    _add_config_options(parser, cello1.train.GRPOConfig)
    args = parser.parse_args(["--kl-coef", "0.5", "--max-new-tokens", "12", "--epsilon", "0.1"])
    with pytest.warns(FutureWarning, match="--kl-coef is deprecated.*use --beta"):
        over = _overrides(args, cello1.train.GRPOConfig)
    assert over == {"beta": 0.5, "max_completion_length": 12, "epsilon": 0.1}
    args = parser.parse_args(["--kl-coef", "0.5", "--beta", "0.1"])
    with pytest.raises(ValueError, match="pass only --beta"):
        _overrides(args, cello1.train.GRPOConfig)


def test_train_cli_rejects_bad_config(tiny_qwen2, train_puzzles, tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    cello1.data.write_puzzles(train_puzzles, path)
    code = main(
        [
            "train",
            "grpo",
            str(tiny_qwen2),
            str(path),
            "-o",
            str(tmp_path / "o"),
            "--num-generations",
            "3",
            "--per-device-train-batch-size",
            "4",
        ]
    )
    assert code == 2
    assert "multiple of --num-generations" in capsys.readouterr().err


@pytest.mark.slow
def test_train_cli_sft_then_merge(tiny_qwen2, train_puzzles, tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    cello1.data.write_puzzles(train_puzzles, path)
    out = tmp_path / "sft"
    code = main(
        [
            "train",
            "sft",
            str(tiny_qwen2),
            str(path),
            "-o",
            str(out),
            "--max-steps",
            "1",
            "--lora-r",
            "4",
            "--lora-alpha",
            "8",
            "--no-use-dora",
            "--no-merge",
            "--per-device-train-batch-size",
            "2",
            "--gradient-accumulation-steps",
            "1",
        ]
    )
    assert code == 0
    info = json.loads((out / "cello1_train.json").read_text())
    assert info["config"]["lora_r"] == 4 and info["config"]["use_dora"] is False
    assert main(["train", "merge", str(out), "-o", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "model.safetensors").is_file()


def test_train_cli_choices_come_from_the_literal_types():
    import argparse
    import typing

    from sc_cello1.train._cli import _add_config_options

    parser = argparse.ArgumentParser(exit_on_error=False)
    _add_config_options(parser, cello1.train.GRPOConfig)
    actions = {a.dest: a for a in parser._actions}
    hints = typing.get_type_hints(cello1.train.GRPOConfig)
    for name in ("rollout", "prompt_style", "dtype"):
        assert tuple(actions[name].choices) == typing.get_args(hints[name])
    with pytest.raises(argparse.ArgumentError, match="invalid choice: 'gpu'"):
        parser.parse_args(["--rollout", "gpu"])

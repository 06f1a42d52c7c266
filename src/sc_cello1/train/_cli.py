"""``cello1 train sft|grpo|merge``: thin wrappers around :mod:`sc_cello1.train`.

The options of ``sft`` and ``grpo`` are the fields of :class:`SFTConfig` and
:class:`GRPOConfig` (``--lora-r 8``, ``--no-use-dora``, ...), with their help text.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._grpo_config import GRPOConfig
from ._sft_config import SFTConfig


def _add_config_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add the fields of a trainer config as options (only what is typed overrides)."""
    from sc_cello1._config import add_config_options

    group = parser.add_argument_group(f"{cls.__name__} fields (default: the authors' settings)")
    add_config_options(group, cls, only_given=True)


def _overrides(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """Return the config fields typed on the command line (old flags mapped, with a FutureWarning)."""
    from sc_cello1._config import config_kwargs_from_args

    return config_kwargs_from_args(args, cls, only_given=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` with its subcommands ``sft``, ``grpo`` and ``merge``."""
    p = subparsers.add_parser(
        "train",
        help="fine-tune a model on CellPuzzles: SFT, GRPO, merge a LoRA adapter",
        description="Fine-tune with the Cell-o1 recipe: SFT on puzzles, then GRPO with the batch-level reward.",
    )
    sub = p.add_subparsers(dest="train_command", metavar="STEP", required=True)

    s = sub.add_parser(
        "sft",
        help="supervised fine-tuning (trl + peft LoRA/DoRA)",
        description="Supervised fine-tuning on CellPuzzles (trl SFTTrainer, peft LoRA/DoRA).",
    )
    s.add_argument("model", help="base model: registered name, model folder or adapter folder")
    s.add_argument("puzzles", help="CellPuzzles file with answers (.parquet, .jsonl, .json)")
    s.add_argument("-o", "--output-dir", required=True, help="folder for the trained model")
    _add_config_options(s, SFTConfig)
    s.set_defaults(func=_sft)

    g = sub.add_parser(
        "grpo",
        help="GRPO with the Cell-o1 reward (Lightning)",
        description="GRPO on CellPuzzles with the authors' reward, run by Lightning.",
    )
    g.add_argument("model", help="starting policy: registered name, model folder or sft output")
    g.add_argument("puzzles", help="CellPuzzles file with answers")
    g.add_argument("-o", "--output-dir", required=True, help="folder for the trained model")
    g.add_argument("--eval-puzzles", default=None, help="held-out CellPuzzles file to validate on")
    g.add_argument("--ckpt-path", default=None, help="Lightning checkpoint to resume from")
    g.add_argument("--accelerator", default=None, help="Lightning accelerator ('cpu', 'gpu', ...)")
    g.add_argument("--devices", default=None, help="Lightning devices (a count, a list, or 'auto')")
    g.add_argument("--num-nodes", type=int, default=None, help="Lightning num_nodes")
    g.add_argument(
        "--strategy",
        default=None,
        help="Lightning strategy: 'ddp' (data parallel over --devices processes) or unset",
    )
    _add_config_options(g, GRPOConfig)
    g.set_defaults(func=_grpo)

    m = sub.add_parser(
        "merge",
        help="merge a LoRA adapter into its base model",
        description="Merge a LoRA/DoRA adapter into its base model and save a full model.",
    )
    m.add_argument("adapter_dir", help="folder with adapter_config.json")
    m.add_argument("-o", "--output-dir", required=True, help="folder for the merged model")
    m.add_argument("--base-model", default=None, help="base model if not the one the adapter names")
    m.set_defaults(func=_merge)


def _sft(args: argparse.Namespace) -> int:
    from sc_cello1.data import read_puzzles

    from ._sft import sft

    out = sft(
        args.model,
        read_puzzles(args.puzzles),
        output_dir=args.output_dir,
        **_overrides(args, SFTConfig),
    )
    print(out)
    return 0


def _grpo(args: argparse.Namespace) -> int:
    from sc_cello1.data import read_puzzles

    from ._grpo import grpo

    trainer_kwargs: dict[str, Any] = {}
    for key in ("accelerator", "strategy", "num_nodes"):
        if getattr(args, key) is not None:
            trainer_kwargs[key] = getattr(args, key)
    if args.devices is not None:
        devices = args.devices
        trainer_kwargs["devices"] = int(devices) if devices.lstrip("-").isdigit() else devices
    eval_puzzles = None if args.eval_puzzles is None else read_puzzles(args.eval_puzzles)
    out = grpo(
        args.model,
        read_puzzles(args.puzzles),
        output_dir=args.output_dir,
        eval_puzzles=eval_puzzles,
        trainer_kwargs=trainer_kwargs or None,
        ckpt_path=args.ckpt_path,
        **_overrides(args, GRPOConfig),
    )
    print(out)
    return 0


def _merge(args: argparse.Namespace) -> int:
    from ._merge import merge_lora

    print(merge_lora(args.adapter_dir, args.output_dir, base_model=args.base_model))
    return 0

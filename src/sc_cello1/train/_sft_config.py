"""The settings of supervised fine-tuning: :class:`SFTConfig` (the authors' defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

# Dtype: the annotation of the inherited field `dtype`, resolved in this module by the docs
from ._config import (
    _PROMPT_STYLES,
    Dtype,  # noqa: F401
    PromptStyle,
    _accepts_old_names,
    _check_positive,
    _CommonConfig,
)


@_accepts_old_names
@dataclass
class SFTConfig(_CommonConfig):
    """Settings of supervised fine-tuning (:func:`sc_cello1.train.sft`).

    The defaults are the Cell-o1 authors' (``sft.sh``): DoRA r=256, alpha=512, dropout
    0.05 on all linear layers, learning rate 5e-5, 1 epoch, batch 6 with 16 accumulation
    steps, sequences up to 4096 tokens, the loss on the assistant turn only.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> cfg = cello1.train.SFTConfig(lora_r=8, lora_alpha=16, max_steps=10)
    >>> cfg.learning_rate
    5e-05
    """

    learning_rate: float = field(
        default=5e-5, metadata={"help": "Peak learning rate (authors: 5e-5)."}
    )
    num_train_epochs: float = field(
        default=1.0, metadata={"help": "Passes over the data (authors: 1)."}
    )
    max_steps: int = field(
        default=-1,
        metadata={"help": "Optimizer steps to run; overrides num_train_epochs when > 0."},
    )
    per_device_train_batch_size: int = field(
        default=6, metadata={"help": "Sequences per device and forward pass (authors: 6)."}
    )
    gradient_accumulation_steps: int = field(
        default=16, metadata={"help": "Forward passes per optimizer step (authors: 16)."}
    )
    max_length: int = field(
        default=4096,
        metadata={"help": "Longest tokenized sequence; longer ones are truncated (authors: 4096)."},
    )
    completion_only_loss: bool = field(
        default=True,
        metadata={
            "help": "Loss on the assistant turn only (True, authors) or on the whole sequence."
        },
    )
    prompt_style: PromptStyle = field(
        default="sft",
        metadata={
            "help": "Prompt layout: 'sft' (system turn + user turn, authors' SFT), 'rl' or 'eval' "
            "(see cello1.data.build_messages)."
        },
    )
    eval_ratio: float = field(
        default=0.0,
        metadata={
            "help": "Share of the puzzles held out to report an eval loss each epoch "
            "(authors: 0.1; 0 trains on all)."
        },
    )
    warmup_steps: float = field(
        default=0.0,
        metadata={
            "help": "Linear warm-up: a number of steps (>= 1) or a share of all steps (< 1), as in "
            "transformers 5 (which replaced warmup_ratio)."
        },
    )
    lr_scheduler_type: str = field(
        default="linear", metadata={"help": "transformers learning-rate schedule."}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    logging_steps: int = field(default=1, metadata={"help": "Log the loss every this many steps."})
    save_steps: int = field(
        default=0,
        metadata={
            "help": "Write a resumable checkpoint every this many steps (0: at the end of each epoch)."
        },
    )
    resume: bool = field(
        default=True,
        metadata={
            "help": "Continue from the newest checkpoint in output_dir/checkpoints if one exists."
        },
    )
    trainer_args: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Extra keyword arguments for trl.SFTConfig (e.g. {'bf16': True})."},
    )

    def __post_init__(self) -> None:
        self._check_common()
        _check_positive(
            self,
            "learning_rate",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "max_length",
            "logging_steps",
        )
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            msg = "Nothing to train: set num_train_epochs > 0 or max_steps > 0."
            raise ValueError(msg)
        if self.prompt_style not in _PROMPT_STYLES:
            msg = f"prompt_style={self.prompt_style!r} is not valid; use one of {_PROMPT_STYLES}."
            raise ValueError(msg)
        if not 0.0 <= self.eval_ratio < 1.0:
            msg = (
                f"eval_ratio={self.eval_ratio!r} must be in [0, 1); use 0 to train on all puzzles."
            )
            raise ValueError(msg)
        if self.warmup_steps < 0 or (1.0 < self.warmup_steps != int(self.warmup_steps)):
            msg = (
                f"warmup_steps={self.warmup_steps!r} must be a share of the steps in [0, 1) or a "
                "whole number of steps."
            )
            raise ValueError(msg)
        if self.save_steps < 0:
            msg = f"save_steps={self.save_steps!r} must be >= 0 (0: save at the end of each epoch)."
            raise ValueError(msg)
        reserved = {"output_dir", "max_length", "learning_rate", "completion_only_loss"} & set(
            self.trainer_args
        )
        if reserved:
            msg = (
                f"trainer_args sets {sorted(reserved)}, which SFTConfig owns; set them as SFTConfig "
                "fields (output_dir is the argument of sft())."
            )
            raise ValueError(msg)

    #: Names of the previous release, accepted with a FutureWarning until the next one.
    _OLD_NAMES: ClassVar[dict[str, str]] = {"warmup_ratio": "warmup_steps"}

"""Configuration dataclasses of the trainers: :class:`SFTConfig` and :class:`GRPOConfig`.

Defaults follow the Cell-o1 authors (``src/sft/sft.sh`` and
``examples/grpo_trainer/run_cello1_grpo.sh``). Every field carries its help text in
``field(metadata={"help": ...})``; the command line builds its options from them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

_PROMPT_STYLES = ("eval", "sft", "rl")


def _check_positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is None or value <= 0:
            msg = f"{type(obj).__name__}.{name}={value!r} must be > 0."
            raise ValueError(msg)


@dataclass
class _CommonConfig:
    """Fields shared by both trainers (LoRA, saving, precision)."""

    use_peft: bool = field(
        default=True,
        metadata={
            "help": "Train LoRA/DoRA adapters (True) or all parameters (False: full fine-tuning)."
        },
    )
    lora_r: int = field(default=256, metadata={"help": "LoRA rank r (authors: 256)."})
    lora_alpha: int = field(
        default=512, metadata={"help": "LoRA scaling alpha (authors: 2 r = 512)."}
    )
    lora_dropout: float = field(
        default=0.05, metadata={"help": "Dropout on the LoRA input (authors: 0.05)."}
    )
    use_dora: bool = field(
        default=True, metadata={"help": "Weight-decomposed LoRA (DoRA), as the authors used."}
    )
    lora_target_modules: str = field(
        default="all-linear",
        metadata={
            "help": "Modules that get adapters: 'all-linear' (authors) or comma-separated module "
            "names such as 'q_proj,v_proj'."
        },
    )
    merge: bool = field(
        default=True,
        metadata={
            "help": "Write the LoRA weights merged into the base model at the top of output_dir (a "
            "plain transformers folder; the adapter goes to output_dir/adapter). False: output_dir "
            "holds only the adapter. Ignored with use_peft=False."
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Random seed (data order, adapter initialisation, sampling)."}
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "Weights dtype when loading the model: 'auto' (bfloat16 on a GPU that supports "
            "it, else float32), 'float32', 'bfloat16' or 'float16'."
        },
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in the backward pass to save memory."},
    )

    def _check_common(self) -> None:
        if self.use_peft:
            _check_positive(self, "lora_r", "lora_alpha")
            if not 0.0 <= self.lora_dropout < 1.0:
                msg = f"lora_dropout={self.lora_dropout!r} must be in [0, 1)."
                raise ValueError(msg)
            if not self.lora_target_modules.strip():
                msg = "lora_target_modules is empty; use 'all-linear' or module names like 'q_proj,v_proj'."
                raise ValueError(msg)
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            msg = f"dtype={self.dtype!r} is not valid; use 'auto', 'float32', 'bfloat16' or 'float16'."
            raise ValueError(msg)

    def replace(self, **overrides: Any):
        """Return a copy with some fields changed (validated again); unknown names raise TypeError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            msg = (
                f"{type(self).__name__} has no field(s) {unknown}; valid fields are: "
                f"{', '.join(sorted(names))}."
            )
            raise TypeError(msg)
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict."""
        return dataclasses.asdict(self)


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
    prompt_style: str = field(
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
    warmup_ratio: float = field(
        default=0.0, metadata={"help": "Share of steps with a linear warm-up."}
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
        if not 0.0 <= self.warmup_ratio < 1.0:
            msg = f"warmup_ratio={self.warmup_ratio!r} must be in [0, 1)."
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


@dataclass
class GRPOConfig(_CommonConfig):
    """Settings of GRPO (:func:`sc_cello1.train.grpo`, :class:`sc_cello1.train.GRPOModule`).

    The defaults are the Cell-o1 authors' (``run_cello1_grpo.sh``): 5 samples per
    puzzle, the clipped surrogate with epsilon 0.2, a KL penalty to the reference
    (the low-variance "k3" estimator) with coefficient 0.001, learning rate 1e-6,
    gradient clipping at 1.0, 64 puzzles per optimizer step (``batch_size /
    num_generations * accumulate_grad_batches * devices``), completions up to 3000
    tokens. The authors trained all parameters of the merged SFT model; here LoRA is
    the default (``use_peft=False`` for the authors' full-parameter policy).

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> cfg = cello1.train.GRPOConfig(num_generations=4, batch_size=8, max_new_tokens=64)
    >>> cfg.batch_size // cfg.num_generations
    2
    """

    num_generations: int = field(
        default=5, metadata={"help": "Completions sampled per puzzle (authors: 5)."}
    )
    batch_size: int = field(
        default=10,
        metadata={
            "help": "Completions per training step and device (puzzles per step x num_generations); "
            "must be a multiple of num_generations."
        },
    )
    accumulate_grad_batches: int = field(
        default=32,
        metadata={"help": "Training steps per optimizer step (authors: 64 puzzles per update)."},
    )
    learning_rate: float = field(
        default=1e-6, metadata={"help": "Learning rate of AdamW (authors: 1e-6)."}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    clip_epsilon: float = field(
        default=0.2, metadata={"help": "Clip range of the probability ratio (authors: 0.2)."}
    )
    kl_coef: float = field(
        default=0.001,
        metadata={
            "help": "Weight of the k3 KL penalty to the reference policy (authors: 0.001; 0 disables)."
        },
    )
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "Gradient clipping norm (authors: 1.0; 0 disables)."}
    )
    max_new_tokens: int = field(
        default=3000, metadata={"help": "Longest completion (authors: 3000)."}
    )
    max_prompt_length: int = field(
        default=3072,
        metadata={"help": "Longest tokenized prompt; longer puzzles are rejected (authors: 3072)."},
    )
    temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature of the rollouts."}
    )
    top_p: float = field(
        default=1.0, metadata={"help": "Nucleus sampling of the rollouts (1: off)."}
    )
    prompt_style: str = field(
        default="rl",
        metadata={
            "help": "Prompt layout: 'rl' (one user turn user_msg + ' ' + system_msg, authors), 'sft' or 'eval'."
        },
    )
    max_epochs: int = field(default=20, metadata={"help": "Passes over the puzzles (authors: 20)."})
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps to run; overrides max_epochs when > 0."}
    )
    val_check_interval: int = field(
        default=0,
        metadata={
            "help": "Validate on eval_puzzles every this many training steps (0: once per epoch)."
        },
    )
    val_max_new_tokens: int | None = field(
        default=None, metadata={"help": "Longest validation completion (None: max_new_tokens)."}
    )
    log_every_n_steps: int = field(
        default=1, metadata={"help": "Log metrics every this many training steps."}
    )
    save_every_n_steps: int = field(
        default=0,
        metadata={
            "help": "Write a resumable checkpoint every this many optimizer steps (0: each epoch)."
        },
    )
    resume: bool = field(
        default=True,
        metadata={
            "help": "Continue from output_dir/checkpoints/last.ckpt if it exists (unless ckpt_path is given)."
        },
    )
    precision: str | None = field(
        default=None,
        metadata={
            "help": "Lightning precision, e.g. 'bf16-mixed', '32-true' (None: Lightning's default)."
        },
    )

    def __post_init__(self) -> None:
        self._check_common()
        _check_positive(
            self,
            "num_generations",
            "batch_size",
            "accumulate_grad_batches",
            "learning_rate",
            "max_new_tokens",
            "max_prompt_length",
            "temperature",
            "log_every_n_steps",
        )
        if self.batch_size % self.num_generations:
            msg = (
                f"batch_size={self.batch_size} is not a multiple of num_generations="
                f"{self.num_generations}; each step trains whole groups, so set batch_size to a "
                f"multiple such as {self.num_generations * max(1, self.batch_size // self.num_generations)}."
            )
            raise ValueError(msg)
        if self.num_generations < 2:
            msg = (
                "num_generations must be >= 2: GRPO normalises rewards within the samples of a puzzle; "
                "set num_generations=2 or more (authors: 5)."
            )
            raise ValueError(msg)
        if self.clip_epsilon <= 0 or self.clip_epsilon >= 1:
            msg = f"clip_epsilon={self.clip_epsilon!r} must be in (0, 1) (authors: 0.2)."
            raise ValueError(msg)
        if self.kl_coef < 0:
            msg = f"kl_coef={self.kl_coef!r} must be >= 0 (0 disables the KL penalty)."
            raise ValueError(msg)
        if self.max_grad_norm < 0:
            msg = f"max_grad_norm={self.max_grad_norm!r} must be >= 0 (0 disables clipping)."
            raise ValueError(msg)
        if not 0.0 < self.top_p <= 1.0:
            msg = f"top_p={self.top_p!r} must be in (0, 1]."
            raise ValueError(msg)
        if self.prompt_style not in _PROMPT_STYLES:
            msg = f"prompt_style={self.prompt_style!r} is not valid; use one of {_PROMPT_STYLES}."
            raise ValueError(msg)
        if self.max_steps <= 0 and self.max_epochs <= 0:
            msg = "Nothing to train: set max_epochs > 0 or max_steps > 0."
            raise ValueError(msg)
        if self.val_check_interval < 0 or self.save_every_n_steps < 0:
            msg = "val_check_interval and save_every_n_steps must be >= 0 (0: once per epoch)."
            raise ValueError(msg)
        if self.val_max_new_tokens is not None and self.val_max_new_tokens <= 0:
            msg = f"val_max_new_tokens={self.val_max_new_tokens!r} must be > 0 or None."
            raise ValueError(msg)

    @property
    def puzzles_per_step(self) -> int:
        """Puzzles per training step and device: ``batch_size // num_generations``."""
        return self.batch_size // self.num_generations


def make_config(cls: type, config: Any, overrides: dict[str, Any]):
    """``config`` (or the defaults of ``cls``) with ``overrides`` applied and validated."""
    if config is None:
        config = cls()
    elif not isinstance(config, cls):
        msg = f"config must be a {cls.__name__}, got {type(config).__name__}."
        raise TypeError(msg)
    return config.replace(**overrides) if overrides else config

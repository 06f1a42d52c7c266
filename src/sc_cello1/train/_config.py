"""Configuration dataclasses of the trainers: :class:`SFTConfig` and :class:`GRPOConfig`.

Defaults follow the Cell-o1 authors (``src/sft/sft.sh`` and
``examples/grpo_trainer/run_cello1_grpo.sh``). Every field carries its help text in
``field(metadata={"help": ...})``; the command line builds its options from them.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

_PROMPT_STYLES = ("eval", "sft", "rl")
_ROLLOUTS = ("auto", "transformers", "vllm")


def rename_old_names(cls: type, kwargs: dict[str, Any], stacklevel: int = 3) -> dict[str, Any]:
    """Map the previous release's field names in ``kwargs`` to the current ones, with a FutureWarning.

    Raises
    ------
    TypeError
        If an old name and its new name are both given.
    """
    old_names: dict[str, str] = getattr(cls, "_OLD_NAMES", {})
    used = [k for k in kwargs if k in old_names]
    if not used:
        return kwargs
    kwargs = dict(kwargs)
    for old in used:
        new = old_names[old]
        if new in kwargs:
            msg = f"{cls.__name__} got both {old!r} (old name) and {new!r}; pass only {new!r}."
            raise TypeError(msg)
        kwargs[new] = kwargs.pop(old)
    pairs = ", ".join(f"{o} -> {old_names[o]}" for o in used)
    warnings.warn(
        f"{cls.__name__}: {pairs}: the old names are deprecated and will be removed in the next "
        "release; use the new (trl's) names.",
        FutureWarning,
        stacklevel=stacklevel,
    )
    return kwargs


def _accepts_old_names(cls: type) -> type:
    """Let a config dataclass take the previous release's field names (FutureWarning)."""
    init = cls.__init__  # type: ignore[misc]

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **rename_old_names(cls, kwargs))

    def __getattr__(self, name: str) -> Any:
        new = cls._OLD_NAMES.get(name)  # type: ignore[attr-defined]
        if new is None:
            msg = f"{type(self).__name__!r} object has no attribute {name!r}"
            raise AttributeError(msg)
        warnings.warn(
            f"{type(self).__name__}.{name} is deprecated; use .{new}.", FutureWarning, stacklevel=2
        )
        return getattr(self, new)

    cls.__init__ = __init__  # type: ignore[method-assign,misc]
    cls.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return cls


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
        overrides = rename_old_names(type(self), overrides)
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


@_accepts_old_names
@dataclass
class GRPOConfig(_CommonConfig):
    """Settings of GRPO (:func:`sc_cello1.train.grpo`, :class:`sc_cello1.train.GRPOModule`).

    Field names are trl's (``trl.GRPOConfig``) wherever the concept is the same;
    Lightning's own settings keep Lightning's names (``precision``; ``devices`` and
    ``strategy`` go to ``grpo(trainer_kwargs=...)``). The names of the previous
    release (``batch_size``, ``accumulate_grad_batches``, ``clip_epsilon``,
    ``kl_coef``, ``max_new_tokens``, ``max_epochs``, ``val_check_interval``,
    ``val_max_new_tokens``, ``log_every_n_steps``, ``save_every_n_steps``) are still
    accepted for one release, with a :class:`FutureWarning`.

    The defaults are the Cell-o1 authors' (``run_cello1_grpo.sh``): 5 samples per
    puzzle, the clipped surrogate with epsilon 0.2, a KL penalty to the reference
    (the low-variance "k3" estimator) with coefficient ``beta=0.001``, learning rate
    1e-6, gradient clipping at 1.0, one policy update per rollout batch
    (``num_iterations=1``), 64 puzzles per optimizer step
    (``per_device_train_batch_size / num_generations * gradient_accumulation_steps *
    devices``), completions up to 3000 tokens. The authors trained all parameters of
    the merged SFT model; here LoRA is the default (``use_peft=False`` for the authors'
    full-parameter policy).

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> cfg = cello1.train.GRPOConfig(
    ...     num_generations=4, per_device_train_batch_size=8, max_completion_length=64
    ... )
    >>> cfg.puzzles_per_step
    2
    """

    num_generations: int = field(
        default=5, metadata={"help": "Completions sampled per puzzle (authors: 5)."}
    )
    per_device_train_batch_size: int = field(
        default=10,
        metadata={
            "help": "Completions per training step and device (puzzles per step x num_generations); "
            "must be a multiple of num_generations."
        },
    )
    gradient_accumulation_steps: int = field(
        default=32,
        metadata={"help": "Training steps per optimizer step (authors: 64 puzzles per update)."},
    )
    num_iterations: int = field(
        default=1,
        metadata={
            "help": "Policy updates per rollout batch (authors: 1). With more than one, the "
            "log-probabilities of the sampling policy are kept and the importance ratio and its "
            "clip take effect."
        },
    )
    micro_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Completions per forward/backward pass in the log-probability and update passes "
            "(None: the whole rollout batch at once). Lowers peak memory; the loss is the same "
            "token mean."
        },
    )
    learning_rate: float = field(
        default=1e-6, metadata={"help": "Learning rate of AdamW (authors: 1e-6)."}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    epsilon: float = field(
        default=0.2, metadata={"help": "Clip range of the probability ratio (authors: 0.2)."}
    )
    beta: float = field(
        default=0.001,
        metadata={
            "help": "Weight of the k3 KL penalty to the reference policy (authors: 0.001; 0 disables "
            "it and the reference)."
        },
    )
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "Gradient clipping norm (authors: 1.0; 0 disables)."}
    )
    max_completion_length: int = field(
        default=3000, metadata={"help": "Longest completion in tokens (authors: 3000)."}
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
    rollout: str = field(
        default="auto",
        metadata={
            "help": "Rollout engine: 'transformers' (generate on the policy), 'vllm' (a colocated "
            "vLLM engine that receives the policy weights after each update; one process only) or "
            "'auto' (vLLM when it is installed, CUDA is available and training runs in one "
            "process, else transformers)."
        },
    )
    vllm_gpu_memory_utilization: float = field(
        default=0.3,
        metadata={
            "help": "Share of GPU memory the colocated vLLM engine may take (weights + KV cache); "
            "the rest is left to training."
        },
    )
    prompt_style: str = field(
        default="rl",
        metadata={
            "help": "Prompt layout: 'rl' (one user turn user_msg + ' ' + system_msg, authors), 'sft' or 'eval'."
        },
    )
    num_train_epochs: int = field(
        default=20, metadata={"help": "Passes over the puzzles (authors: 20)."}
    )
    max_steps: int = field(
        default=-1,
        metadata={"help": "Optimizer steps to run; overrides num_train_epochs when > 0."},
    )
    eval_steps: int = field(
        default=0,
        metadata={
            "help": "Validate on eval_puzzles every this many training steps (0: once per epoch)."
        },
    )
    eval_max_completion_length: int | None = field(
        default=None,
        metadata={"help": "Longest validation completion (None: max_completion_length)."},
    )
    logging_steps: int = field(
        default=1, metadata={"help": "Log metrics every this many training steps."}
    )
    save_steps: int = field(
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

    #: Names of the previous release, accepted with a FutureWarning until the next one.
    _OLD_NAMES: ClassVar[dict[str, str]] = {
        "batch_size": "per_device_train_batch_size",
        "accumulate_grad_batches": "gradient_accumulation_steps",
        "clip_epsilon": "epsilon",
        "kl_coef": "beta",
        "max_new_tokens": "max_completion_length",
        "max_epochs": "num_train_epochs",
        "val_check_interval": "eval_steps",
        "val_max_new_tokens": "eval_max_completion_length",
        "log_every_n_steps": "logging_steps",
        "save_every_n_steps": "save_steps",
    }

    def __post_init__(self) -> None:
        self._check_common()
        _check_positive(
            self,
            "num_generations",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "num_iterations",
            "learning_rate",
            "max_completion_length",
            "max_prompt_length",
            "temperature",
            "logging_steps",
        )
        if self.per_device_train_batch_size % self.num_generations:
            n = self.num_generations * max(
                1, self.per_device_train_batch_size // self.num_generations
            )
            msg = (
                f"per_device_train_batch_size={self.per_device_train_batch_size} is not a multiple "
                f"of num_generations={self.num_generations}; each step trains whole groups, so set "
                f"it to a multiple such as {n}."
            )
            raise ValueError(msg)
        if self.num_generations < 2:
            msg = (
                "num_generations must be >= 2: GRPO normalises rewards within the samples of a puzzle; "
                "set num_generations=2 or more (authors: 5)."
            )
            raise ValueError(msg)
        if self.epsilon <= 0 or self.epsilon >= 1:
            msg = f"epsilon={self.epsilon!r} must be in (0, 1) (authors: 0.2)."
            raise ValueError(msg)
        if self.beta < 0:
            msg = f"beta={self.beta!r} must be >= 0 (0 disables the KL penalty)."
            raise ValueError(msg)
        if self.max_grad_norm < 0:
            msg = f"max_grad_norm={self.max_grad_norm!r} must be >= 0 (0 disables clipping)."
            raise ValueError(msg)
        if not 0.0 < self.top_p <= 1.0:
            msg = f"top_p={self.top_p!r} must be in (0, 1]."
            raise ValueError(msg)
        if self.rollout not in _ROLLOUTS:
            msg = f"rollout={self.rollout!r} is not valid; use one of {_ROLLOUTS}."
            raise ValueError(msg)
        if not 0.0 < self.vllm_gpu_memory_utilization <= 1.0:
            msg = f"vllm_gpu_memory_utilization={self.vllm_gpu_memory_utilization!r} must be in (0, 1]."
            raise ValueError(msg)
        if self.prompt_style not in _PROMPT_STYLES:
            msg = f"prompt_style={self.prompt_style!r} is not valid; use one of {_PROMPT_STYLES}."
            raise ValueError(msg)
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            msg = "Nothing to train: set num_train_epochs > 0 or max_steps > 0."
            raise ValueError(msg)
        if self.eval_steps < 0 or self.save_steps < 0:
            msg = "eval_steps and save_steps must be >= 0 (0: once per epoch)."
            raise ValueError(msg)
        if self.micro_batch_size is not None and self.micro_batch_size <= 0:
            msg = f"micro_batch_size={self.micro_batch_size!r} must be > 0 or None."
            raise ValueError(msg)
        if self.eval_max_completion_length is not None and self.eval_max_completion_length <= 0:
            msg = f"eval_max_completion_length={self.eval_max_completion_length!r} must be > 0 or None."
            raise ValueError(msg)

    @property
    def puzzles_per_step(self) -> int:
        """Puzzles per training step and device: ``per_device_train_batch_size // num_generations``."""
        return self.per_device_train_batch_size // self.num_generations


def make_config(cls: type, config: Any, overrides: dict[str, Any]):
    """``config`` (or the defaults of ``cls``) with ``overrides`` applied and validated."""
    if config is None:
        config = cls()
    elif not isinstance(config, cls):
        msg = f"config must be a {cls.__name__}, got {type(config).__name__}."
        raise TypeError(msg)
    return config.replace(**overrides) if overrides else config

"""The settings of GRPO: :class:`GRPOConfig` (the authors' defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

# Dtype: the annotation of the inherited field `dtype`, resolved in this module by the docs
from ._config import (
    _PROMPT_STYLES,
    _ROLLOUTS,
    Dtype,  # noqa: F401
    PromptStyle,
    Rollout,
    _accepts_old_names,
    _check_positive,
    _CommonConfig,
)


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
    rollout: Rollout = field(
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
    prompt_style: PromptStyle = field(
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
        """Number of puzzles per training step and device (``per_device_train_batch_size // num_generations``)."""
        return self.per_device_train_batch_size // self.num_generations

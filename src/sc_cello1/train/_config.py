"""What the trainers' configuration dataclasses share (:class:`SFTConfig`, :class:`GRPOConfig`).

Defaults follow the Cell-o1 authors (``src/sft/sft.sh`` and
``examples/grpo_trainer/run_cello1_grpo.sh``). Every field carries its help text in
``field(metadata={"help": ...})``; the command line builds its options from them.
The classes live in ``_sft_config`` and ``_grpo_config``; both are re-exported here.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sc_cello1.data._prompts import PromptStyle

#: Where GRPO samples its rollouts.
Rollout = Literal["auto", "transformers", "vllm"]
#: The dtype the weights are loaded in (``"auto"``: bfloat16 on a GPU that supports it).
Dtype = Literal["auto", "float32", "bfloat16", "float16"]

# the choices, for the checks and the command line (one source: the Literal types)
_PROMPT_STYLES: tuple[str, ...] = get_args(PromptStyle)
_ROLLOUTS: tuple[str, ...] = get_args(Rollout)


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
    dtype: Dtype = field(
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


def make_config(cls: type, config: Any, overrides: dict[str, Any]):
    """``config`` (or the defaults of ``cls``) with ``overrides`` applied and validated."""
    if config is None:
        config = cls()
    elif not isinstance(config, cls):
        msg = f"config must be a {cls.__name__}, got {type(config).__name__}."
        raise TypeError(msg)
    return config.replace(**overrides) if overrides else config

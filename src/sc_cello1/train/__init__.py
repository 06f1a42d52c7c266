"""Fine-tuning: SFT (trl + peft) and GRPO (Lightning), with the Cell-o1 recipe.

``SFTConfig``/``GRPOConfig`` hold the settings (the authors' defaults);
:func:`sft` and :func:`grpo` train and return an output folder that the other
functions load as ``model=``; :func:`merge_lora` merges an adapter into its base.
Heavy libraries (torch, transformers, trl, peft, lightning) load on first use.
"""

from typing import Any

from ._config import GRPOConfig, SFTConfig
from ._grpo import group_advantages, grpo, grpo_loss, k3_kl
from ._merge import merge_lora
from ._sft import sft

__all__ = [
    "GRPOConfig",
    "GRPOModule",
    "SFTConfig",
    "group_advantages",
    "grpo",
    "grpo_loss",
    "k3_kl",
    "merge_lora",
    "sft",
]


def __getattr__(name: str) -> Any:
    if name == "GRPOModule":  # a lightning.LightningModule: built on first access
        from ._grpo import grpo_module_class

        return grpo_module_class()
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)

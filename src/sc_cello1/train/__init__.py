"""Fine-tuning: SFT (trl + peft) and GRPO (Lightning), with the Cell-o1 recipe.

``SFTConfig``/``GRPOConfig`` hold the settings (the authors' defaults);
:func:`sft` and :func:`grpo` train and return an output folder that the other
functions load as ``model=``; :func:`merge_lora` merges an adapter into its base.
Heavy libraries (torch, transformers, trl, peft, lightning) load on first use.

GRPO is in layers, as in scvi-tools: the objective (:func:`grpo_loss` and friends,
plain torch), the training plan :class:`GRPOModule` (a LightningModule), the data
:class:`GRPODataModule` (a LightningDataModule) and the runner :func:`grpo`.
"""

from typing import Any

from ._grpo import group_advantages, grpo, grpo_loss, k3_kl
from ._grpo_config import GRPOConfig
from ._merge import merge_lora
from ._sft import sft
from ._sft_config import SFTConfig

__all__ = [
    "GRPOConfig",
    "GRPODataModule",
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
    # Lightning classes: their modules import lightning, so they load on first access.
    if name == "GRPOModule":
        from ._grpo_plan import GRPOModule

        return GRPOModule
    if name == "GRPODataModule":
        from ._grpo_data import GRPODataModule

        return GRPODataModule
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)

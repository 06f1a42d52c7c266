"""The data of GRPO: one record per puzzle, and a :class:`lightning.LightningDataModule`.

Imports Lightning at module level: imported only by :func:`~sc_cello1.train.grpo` when
training starts (and by :class:`~sc_cello1.train.GRPODataModule` on first access), never
by ``import sc_cello1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import lightning as L
from torch.utils.data import DataLoader

from ._data import prompt_messages
from ._generate import render_prompts

if TYPE_CHECKING:
    from sc_cello1.data import Puzzle


def _collate(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def rl_records(
    puzzles: Sequence[Puzzle], tokenizer: Any, prompt_style: str
) -> list[dict[str, Any]]:
    """One ``{"prompt", "answer"}`` record per puzzle; the prompt rendered by the chat template."""
    prompts = render_prompts(tokenizer, [prompt_messages(p, prompt_style) for p in puzzles])
    return [
        {"prompt": t, "answer": list(p.answer or [])} for t, p in zip(prompts, puzzles, strict=True)
    ]


class GRPODataModule(L.LightningDataModule):
    """The rollout prompts of GRPO as a :class:`lightning.LightningDataModule`.

    Each batch is a list of ``batch_size`` records ``{"prompt", "answer"}`` (see
    ``rl_records``), shuffled for training; the validation batches hold at least 8
    records. :func:`~sc_cello1.train.grpo` builds it; pass it to
    :meth:`lightning.Trainer.fit` as ``datamodule=`` to train a
    :class:`~sc_cello1.train.GRPOModule` yourself.

    Parameters
    ----------
    train_records
        Records of the training puzzles.
    eval_records
        Records of the held-out puzzles, or ``None`` for no validation.
    batch_size
        Puzzles per training batch (``GRPOConfig.puzzles_per_step``).

    Examples
    --------
    >>> dm = cello1.train.GRPODataModule(records, None, batch_size=2)  # doctest: +SKIP
    >>> lightning.Trainer(max_steps=10).fit(module, datamodule=dm)  # doctest: +SKIP
    """

    def __init__(
        self,
        train_records: Sequence[dict[str, Any]],
        eval_records: Sequence[dict[str, Any]] | None,
        *,
        batch_size: int,
    ) -> None:
        super().__init__()
        self.train_records = list(train_records)
        self.eval_records = None if not eval_records else list(eval_records)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader[Any]:
        """Shuffled batches of ``batch_size`` training records (the last one may be smaller)."""
        # a list of records is a map-style dataset (DataLoader takes any sequence)
        return DataLoader(
            cast("Any", self.train_records),
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=_collate,
            drop_last=False,
        )

    def val_dataloader(self) -> DataLoader[Any] | list[DataLoader[Any]]:
        """Batches of the held-out records, or no loader without them."""
        if self.eval_records is None:
            return []
        return DataLoader(
            cast("Any", self.eval_records),
            batch_size=max(self.batch_size, 8),
            collate_fn=_collate,
        )

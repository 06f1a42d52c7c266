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


def test_auto_follows_settings_default_backend(monkeypatch):
    from sc_cello1 import settings

    monkeypatch.setattr(settings, "default_backend", "openai")
    assert choose_backend("auto") == "openai"
    assert choose_backend("transformers") == "transformers"  # an explicit name wins
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="base_url"):  # auto -> openai is checked as openai
        check_backend_args("m", "auto")
    monkeypatch.setattr(settings, "default_backend", "llama.cpp")
    with pytest.raises(ValueError, match=r"settings\.default_backend='llama\.cpp'"):
        choose_backend("auto")


def test_resolved_model_is_not_checked_again(monkeypatch, tmp_path):
    from pathlib import Path

    from sc_cello1.models import ResolvedModel, _resolve

    rec = ResolvedModel(Path(tmp_path), "mine", None, "local")
    monkeypatch.setattr(_resolve, "_classify", lambda m: pytest.fail("checked again"))
    assert check_backend_args(rec, "transformers") == "transformers"
    with pytest.raises(TypeError, match="model name the server knows"):
        check_backend_args(rec, "openai", base_url="http://x/v1")


def test_inference_resolve_model_is_models_resolve_with_a_future_warning():
    import pytest

    import sc_cello1 as cello1

    with pytest.warns(FutureWarning, match="use sc_cello1.models.resolve"):
        assert cello1.inference.resolve_model is cello1.models.resolve
    assert "resolve_model" not in cello1.inference.__all__

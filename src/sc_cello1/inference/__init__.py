"""Inference backends: transformers, vLLM and OpenAI-compatible servers.

One small :class:`Backend` Protocol (chat-generate a batch of conversations with ``n``
samples) and three implementations; :func:`get_backend` picks and builds one.
"""

from typing import Any

from ._base import BACKENDS, DEFAULT_MAX_NEW_TOKENS, AnswerConstraint, Backend, Generation
from ._budget import check_answer_budget
from ._factory import choose_backend, get_backend
from ._openai import OpenAIBackend
from ._repair import repair_items
from ._transformers import TransformersBackend
from ._vllm import VLLMBackend

__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_NEW_TOKENS",
    "AnswerConstraint",
    "Backend",
    "Generation",
    "OpenAIBackend",
    "TransformersBackend",
    "VLLMBackend",
    "check_answer_budget",
    "choose_backend",
    "get_backend",
    "repair_items",
]


def __getattr__(name: str) -> Any:
    if name == "resolve_model":  # one name for model resolution: models.resolve
        import warnings

        from sc_cello1.models import resolve

        warnings.warn(
            "sc_cello1.inference.resolve_model is deprecated; use sc_cello1.models.resolve.",
            FutureWarning,
            stacklevel=2,
        )
        return resolve
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)

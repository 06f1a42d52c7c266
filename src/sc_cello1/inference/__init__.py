"""Inference backends: transformers, vLLM and OpenAI-compatible servers.

One small :class:`Backend` Protocol (chat-generate a batch of conversations with ``n``
samples) and three implementations; :func:`get_backend` picks and builds one.
"""

from ._base import BACKENDS, DEFAULT_MAX_NEW_TOKENS, AnswerConstraint, Backend, Generation
from ._budget import check_answer_budget
from ._factory import choose_backend, get_backend
from ._openai import OpenAIBackend
from ._repair import repair_items
from ._resolve import resolve_model
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
    "resolve_model",
]

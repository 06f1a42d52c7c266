"""Parameter text written once (scanpy's ``_doc_params``): :data:`SHARED_DOCS`, :func:`doc_params`.

The numpydoc text of the parameters that ``tl.annotate``, ``tl.solve`` and
``tl.benchmark`` share, so that ``model``, ``backend`` and ``max_new_tokens`` read the
same everywhere. Nothing here imports more than the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["SHARED_DOCS", "doc_params"]

F = TypeVar("F", bound=Callable[..., Any])

#: Parameter text shared by several verbs, written once (fill with :func:`doc_params`).
SHARED_DOCS: dict[str, str] = {
    "doc_model": """\
model
        A registered name (``"cell-o1"``, ``"cell-o1@<revision>"``; see
        ``cello1.models.available()``), a model folder, a ``.gguf`` file, a
        :class:`~sc_cello1.models.ResolvedModel` (used as it is), an already built
        backend (:func:`~sc_cello1.inference.get_backend`, to reuse one loaded model
        across calls), or with ``backend="openai"`` the name the server knows.
        ``None``: ``cello1.settings.default_model``.""",
    "doc_backend": """\
backend
        ``"transformers"``, ``"vllm"``, ``"openai"`` or ``"auto"`` (default): what
        ``cello1.settings.default_backend`` names, and while that is ``"auto"``, vLLM
        when it is importable and CUDA is present, else transformers (see
        :func:`~sc_cello1.inference.choose_backend`). Ignored when ``model`` is a
        backend.""",
    "doc_max_new_tokens": """\
max_new_tokens
        Cap on the tokens generated per answer, reasoning included (the paper's
        evaluation: 3,500).""",
    "doc_temperature": """\
temperature
        Sampling temperature; ``0`` is greedy decoding, as in the paper's evaluation.""",
    "doc_batch_size": """\
batch_size
        Prompts per generate call; ``None``: 8 for transformers, 1024 for vLLM, 64 for
        openai.""",
    "doc_backend_kwargs": """\
backend_kwargs
        Passed to :func:`~sc_cello1.inference.get_backend` (``device_map``, ``dtype``,
        ``tensor_parallel_size``, ``base_url``, ``api_key``, ``timeout``,
        ``max_retries``, ...). Keys naming secrets are not recorded.""",
    "doc_answer_dir": """\
answer_dir
        Folder of the answer cache (created if needed): each finished answer is stored
        the moment it arrives, so a rerun with the same settings resumes where it
        stopped. ``None``: no cache. Not the root of the weights and datasets
        (``cello1.settings.cache_dir``).""",
}


def doc_params(**docs: str) -> Callable[[F], F]:
    """Fill ``{name}`` placeholders of a docstring with shared text (scanpy's ``_doc_params``).

    Only the names given are replaced, so other braces in the docstring stay as they
    are. The text keeps the indentation of numpydoc parameters (8 spaces for the
    description lines of a function's docstring).

    Examples
    --------
    >>> @doc_params(doc_max_new_tokens=SHARED_DOCS["doc_max_new_tokens"])
    ... def f(*, max_new_tokens=10):
    ...     '''Do it.
    ...
    ...     Parameters
    ...     ----------
    ...     {doc_max_new_tokens}
    ...     '''
    >>> "Cap on the tokens" in f.__doc__
    True
    """
    pattern = re.compile(r"\{(" + "|".join(map(re.escape, docs)) + r")\}") if docs else None

    def decorate(obj: F) -> F:
        if obj.__doc__ and pattern is not None:
            obj.__doc__ = pattern.sub(lambda m: docs[m.group(1)], obj.__doc__)
        return obj

    return decorate

"""The settings ``annotate``, ``solve`` and ``benchmark`` share: declared once, checked once.

Each function returns a :func:`~sc_cello1._config.option` for a config dataclass
(:class:`~sc_cello1.tl._annotate_config.AnnotateConfig`,
:class:`~sc_cello1.tl._solve_config.SolveConfig`,
:class:`~sc_cello1.tl._benchmark_config.BenchmarkConfig`): the same help text on the
command line, the same check with the same message. The docstring text of these
parameters is in :data:`sc_cello1._config.SHARED_DOCS`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from sc_cello1._config import option
from sc_cello1._secrets import redact
from sc_cello1.inference._base import BACKENDS, DEFAULT_MAX_NEW_TOKENS

__all__ = [
    "answer_dir_option",
    "backend_kwargs_option",
    "backend_option",
    "batch_size_option",
    "check_model_and_backend",
    "check_seed",
    "describe",
    "flag_check",
    "is_backend",
    "max_new_tokens_option",
    "model_option",
    "temperature_option",
]


def describe(obj: Any) -> str:
    """Describe a value recorded in ``uns`` in short, stable text (paths, callables, objects)."""
    if isinstance(obj, str | os.PathLike):
        return os.fspath(obj)
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{getattr(obj, '__module__', '')}.{name}".lstrip(".")


# ----------------------------------------------------------------------------- checks


def check_backend_name(value: Any) -> None:
    """Refuse a backend name that is not one of :data:`~sc_cello1.inference.BACKENDS`."""
    if not isinstance(value, str) or value not in BACKENDS:
        msg = f"backend={value!r} is not known; use one of {list(BACKENDS)}."
        raise ValueError(msg)


def check_max_new_tokens(value: Any) -> None:
    """Refuse a token cap that is not a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"max_new_tokens={value!r} must be an integer >= 1."
        raise ValueError(msg)


def check_temperature(value: Any) -> None:
    """Refuse a temperature that is not a finite number >= 0."""
    from sc_cello1.inference._base import check_sampling

    check_sampling(n=1, temperature=value, max_new_tokens=1)


def check_batch_size(value: Any) -> None:
    """Refuse a batch size that is not ``None`` or a whole number >= 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        msg = f"batch_size={value!r} must be an integer >= 1 (or None for the backend's default)."
        raise ValueError(msg)


def check_backend_kwargs(value: Any) -> None:
    """Refuse ``backend_kwargs`` that are not ``None`` or a mapping."""
    if value is not None and not isinstance(value, Mapping):
        msg = (
            "`backend_kwargs` must be a dict of keyword arguments for the backend, got "
            f"{type(value).__name__}."
        )
        raise TypeError(msg)


def check_answer_dir(value: Any) -> None:
    """Refuse an ``answer_dir`` that is not a path, is a file or lies under a file."""
    from ._solve_run import check_answer_dir as check

    check(value)


def flag_check(name: str, *, optional: bool = False) -> Callable[[Any], None]:
    """Return the check of a boolean field: ``True`` or ``False`` (or ``None``), nothing else."""
    from sc_cello1._validate import check_bool

    def check(value: Any) -> None:
        if not (optional and value is None):
            check_bool(name, value)

    return check


def check_seed(value: Any) -> None:
    """Refuse a seed that is not ``None`` or a whole number."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        msg = f"seed={value!r} must be an integer or None."
        raise TypeError(msg)


def _redact(value: Mapping[str, Any]) -> dict[str, Any]:
    return redact(dict(value)) if value else dict(value)


# ----------------------------------------------------------------------------- options


def model_option(*, required: bool = False, help: str | None = None) -> Any:
    """Declare the ``model`` field: a name, folder or ``.gguf`` file on the command line."""
    text = help or (
        "Registered name (NAME@REV for a revision), model folder, .gguf file, or with "
        "--backend openai the server's model name"
        + ("." if required else "; default: settings.default_model.")
    )
    kwargs: dict[str, Any] = {"type": str, "metavar": "MODEL"}
    if required:
        return option(help=text, record=describe, cli_kwargs={**kwargs, "required": True})
    return option(None, help=text, record=describe, cli_kwargs=kwargs)


def backend_option() -> Any:
    """Declare the ``backend`` field: one of :data:`~sc_cello1.inference.BACKENDS`."""
    return option(
        "auto",
        help="Inference backend; 'auto': settings.default_backend, and while that is 'auto', "
        "vLLM with CUDA, else transformers.",
        validate=check_backend_name,
    )


def max_new_tokens_option(default: int = DEFAULT_MAX_NEW_TOKENS) -> Any:
    """Declare the ``max_new_tokens`` field (the paper's 3,500 by default)."""
    return option(
        default,
        help="Cap on the tokens generated per answer, reasoning included (the paper: 3500).",
        validate=check_max_new_tokens,
    )


def temperature_option() -> Any:
    """Declare the ``temperature`` field (0: greedy, as in the paper's evaluation)."""
    return option(
        0.0, help="Sampling temperature; 0 is greedy decoding.", validate=check_temperature
    )


def batch_size_option() -> Any:
    """Declare the ``batch_size`` field (``None``: the backend's default)."""
    return option(
        None,
        help="Prompts per generate call; default: 8 for transformers, 1024 for vLLM, 64 for openai.",
        validate=check_batch_size,
    )


def backend_kwargs_option() -> Any:
    """Declare the ``backend_kwargs`` field (not on the command line: set in parts there)."""
    return option(
        None,
        help="Keywords for cello1.inference.get_backend; keys naming secrets are not recorded.",
        validate=check_backend_kwargs,
        record=_redact,
        cli=False,
    )


def answer_dir_option(help: str | None = None) -> Any:
    """Declare the ``answer_dir`` of ``annotate`` and ``solve``: the folder of finished answers."""
    return option(
        None,
        help=help or "Folder where each finished answer is stored, so that a rerun resumes.",
        validate=check_answer_dir,
        cli_kwargs={"type": str, "metavar": "DIR"},
    )


def is_backend(model: Any) -> bool:
    """Whether ``model`` is an already built backend (``generate`` and ``provenance``)."""
    return callable(getattr(model, "generate", None)) and callable(
        getattr(model, "provenance", None)
    )


def check_model_and_backend(
    model: Any, backend: str, backend_kwargs: Mapping[str, Any] | None
) -> tuple[Any, str]:
    """Check ``model`` and ``backend`` without loading anything (``annotate``, ``solve``).

    Returns the model to use (``None``: ``settings.default_model``) and the backend's
    name (``"auto"`` resolved; a backend object's own name).
    """
    from sc_cello1._settings import settings
    from sc_cello1.inference._factory import check_backend_args
    from sc_cello1.models import ResolvedModel

    if is_backend(model):
        return model, str(getattr(model, "name", type(model).__name__))
    if model is None:
        model = settings.default_model
    if not isinstance(model, str | os.PathLike | ResolvedModel):
        msg = (
            f"`model` must be a model name, a path or a backend object (with `generate` and "
            f"`provenance`), got {type(model).__name__}."
        )
        raise TypeError(msg)
    # check_backend_args also checks a local model (models.check_model): a registered
    # name must exist, a folder must hold config.json; nothing is downloaded
    return model, check_backend_args(model, backend, **dict(backend_kwargs or {}))

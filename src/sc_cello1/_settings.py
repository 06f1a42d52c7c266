"""Package settings: one object, :data:`sc_cello1.settings`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

# the package logger by name (``_logging`` reads these settings: no import cycle)
logger = logging.getLogger("sc_cello1")

_LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    0: logging.ERROR,
    1: logging.WARNING,
    2: logging.INFO,
    3: logging.DEBUG,
}


def _default_progress() -> bool:
    value = os.environ.get("CELLO1_PROGRESS", "").strip().lower()
    return value not in ("0", "false", "no", "off")


def _default_cache_dir() -> Path:
    env = os.environ.get("CELLO1_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("sc-cello1"))


@dataclass
class Cello1Settings:
    """Settings of sc-cello1.

    Attributes
    ----------
    verbosity
        ``"error"``, ``"warning"`` (default), ``"info"`` or ``"debug"`` (or 0-3, as in
        scanpy). Warnings are shown by default (on standard error, or through your own
        logging setup when the root logger has handlers); ``"info"`` adds milestones
        with timings.
    progress
        Show progress bars (default ``True``; the environment variable
        ``CELLO1_PROGRESS=0`` turns them off). Outside a terminal they refresh every
        30 s at most, so logs of batch jobs stay short.
    cache_dir
        Where downloaded weights and other caches live. Defaults to the environment
        variable ``CELLO1_CACHE_DIR``, else the user cache directory.
    mirror
        Base URL of a mirror of the model hub (environment variable ``CELLO1_MIRROR``),
        for clusters without access to the hub.
    default_model
        Model used when a function is called without ``model=``.
    default_backend
        What ``backend="auto"`` (the default of every function with ``backend=``) stands
        for: ``"transformers"``, ``"vllm"`` or ``"openai"``; ``"auto"`` (default): vLLM
        when it is importable and CUDA is present, else transformers. See
        :func:`~sc_cello1.inference.choose_backend`.
    """

    _verbosity: int = logging.WARNING
    _progress: bool = field(default_factory=_default_progress)
    _cache_dir: Path | None = None
    mirror: str | None = field(default_factory=lambda: os.environ.get("CELLO1_MIRROR"))
    default_model: str = "cell-o1"
    default_backend: str = "auto"

    def __post_init__(self) -> None:
        logger.setLevel(self._verbosity)

    @property
    def verbosity(self) -> str:
        """The package logger's level, as a name."""
        return logging.getLevelName(self._verbosity).lower()

    @verbosity.setter
    def verbosity(self, value: str | int) -> None:
        key = value.lower() if isinstance(value, str) else value
        if key not in _LEVELS:
            msg = f"verbosity={value!r} is not valid; use one of 'error', 'warning', 'info', 'debug' (or 0-3)."
            raise ValueError(msg)
        self._verbosity = _LEVELS[key]
        logger.setLevel(self._verbosity)

    @property
    def progress(self) -> bool:
        """Whether progress bars are shown."""
        return self._progress

    @progress.setter
    def progress(self, value: bool) -> None:
        if not isinstance(value, bool):
            msg = f"progress must be True or False, not {value!r}."
            raise TypeError(msg)
        self._progress = value

    @property
    def cache_dir(self) -> Path:
        """Directory for downloaded weights and caches (created on first use)."""
        return self._cache_dir if self._cache_dir is not None else _default_cache_dir()

    @cache_dir.setter
    def cache_dir(self, value: str | os.PathLike | None) -> None:
        self._cache_dir = None if value is None else Path(value).expanduser()


settings = Cello1Settings()

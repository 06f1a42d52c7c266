"""Package settings: one object, :data:`sc_cello1.settings`."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


#: Each public setting and the attribute that holds its value.
_STORED = {
    "verbosity": "_verbosity",
    "progress": "_progress",
    "cache_dir": "_cache_dir",
    "mirror": "mirror",
    "default_model": "default_model",
    "default_backend": "default_backend",
}


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

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> with cello1.settings.override(verbosity="info", progress=False):
    ...     cello1.settings.verbosity
    'info'
    >>> cello1.settings.verbosity
    'warning'
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

    @contextlib.contextmanager
    def override(self, **values: Any) -> Iterator[Cello1Settings]:
        """Change settings inside a ``with`` block; restore them after, whatever happens.

        As scanpy's ``settings.override``: each value goes through the setting's own
        check, and every setting named is put back as it was (an unset ``cache_dir``
        stays unset) when the block ends or raises.

        Parameters
        ----------
        **values
            Settings to change: ``verbosity``, ``progress``, ``cache_dir``, ``mirror``,
            ``default_model``, ``default_backend``.

        Yields
        ------
        The settings object.

        Examples
        --------
        >>> import sc_cello1 as cello1
        >>> with cello1.settings.override(cache_dir="/scratch/cello1"):  # doctest: +SKIP
        ...     cello1.models.fetch("cell-o1")
        """
        unknown = sorted(set(values) - set(_STORED))
        if unknown:
            msg = f"settings.override: no setting(s) {unknown}; the settings are {sorted(_STORED)}."
            raise TypeError(msg)
        saved = {name: getattr(self, _STORED[name]) for name in values}
        try:
            for name, value in values.items():
                setattr(self, name, value)
            yield self
        finally:
            for name, value in saved.items():
                object.__setattr__(self, _STORED[name], value)
            logger.setLevel(self._verbosity)


settings = Cello1Settings()

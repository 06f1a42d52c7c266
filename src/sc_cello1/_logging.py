"""The package logger ``sc_cello1`` and its progress bars.

Library code logs through :data:`logger`; it never calls :func:`logging.basicConfig`.
As in scanpy, warnings reach the user by default: the package installs one handler on
its own logger that writes to standard error, ``WARNING: message`` for warnings and the
bare message for info. :attr:`sc_cello1.settings.verbosity` sets the level (``"info"``
shows milestones with timings).

Records also propagate to the root logger, so an application's logging setup (and
pytest's ``caplog``) receives them. When the root logger has handlers of its own (the
application configured logging), the package handler stays silent and leaves the output
to them, so no message is printed twice.

Progress bars (:func:`progress_bar`, ``tqdm.auto``) are shown by default and switched
off with ``settings.progress = False``. Outside a terminal (a CI log, a job's output
file, a notebook without widgets) they write plain lines, at most every
:data:`NON_TTY_MININTERVAL` seconds, never carriage returns or cursor codes.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("sc_cello1")

#: Seconds between progress bar refreshes when standard error is not a terminal (CI
#: logs, batch job files), so a long run writes a line now and then, not a flood.
NON_TTY_MININTERVAL = 30.0


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno == logging.INFO:
            text = message
        else:
            text = f"{record.levelname}: {message}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _PackageHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` unless the application configured logging."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_Formatter())

    @property  # type: ignore[override]
    def stream(self):
        # Look up sys.stderr at each record: Jupyter and pytest replace it.
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if logger.propagate and logging.getLogger().handlers:
            return  # the application's handlers on the root logger show it
        super().emit(record)


def _install_handler() -> None:
    """Add the package handler once (a re-import or reload finds it and keeps it)."""
    for h in logger.handlers:
        if type(h).__name__ == "_PackageHandler":
            return
    logger.addHandler(_PackageHandler())


_install_handler()
if logger.level == logging.NOTSET:
    logger.setLevel(logging.WARNING)


def progress_disabled() -> bool:
    """Whether progress bars are off (``sc_cello1.settings.progress = False``)."""
    from sc_cello1._settings import settings

    return not settings.progress


def progress_bar(iterable: Any = None, **kwargs: Any):
    """Make a ``tqdm.auto`` bar that follows :attr:`sc_cello1.settings.progress`.

    Outside a terminal (CI logs, job output files) it writes a plain line at most every
    :data:`NON_TTY_MININTERVAL` seconds (and one at the end). Keyword arguments go to tqdm (``total``,
    ``desc``, ``unit``, ``delay`` ...); an explicit ``disable=True`` always hides it.
    """
    from tqdm.auto import tqdm

    kwargs["disable"] = bool(kwargs.get("disable")) or progress_disabled()
    if _stderr_is_tty() or tqdm.__module__.startswith("tqdm.notebook"):
        return tqdm(iterable, **kwargs)
    kwargs.setdefault("mininterval", NON_TTY_MININTERVAL)
    return _line_bar_class()(iterable, **kwargs)


_LINE_BAR: Any = None


def _line_bar_class() -> Any:
    """Return the tqdm class that writes each refresh as a plain line (no cursor moves)."""
    global _LINE_BAR
    if _LINE_BAR is not None:
        return _LINE_BAR
    from tqdm.std import tqdm

    class LineBar(tqdm):  # type: ignore[misc]
        """Outside a terminal: one plain line per refresh, so logs stay readable.

        Nested bars in a CI log or a job file otherwise leave carriage returns and cursor-up
        codes (``ESC[A``); here each bar writes whole lines at its own pace.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("ascii", True)
            kwargs.setdefault("file", sys.stderr)
            kwargs["position"] = 0
            self._line_n: int | None = None
            super().__init__(*args, **kwargs)

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            if msg == "" or self.n == self._line_n:
                return True  # tqdm clearing a line, or nothing new to say
            self._line_n = self.n
            self.fp.write(str(self).strip() + "\n")
            self.fp.flush()
            return True

        def close(self) -> None:
            if getattr(self, "disable", True):
                return
            if self.n != self._line_n:
                self.display()
            self.leave = False
            self.disable = True  # the base class then writes nothing more
            self._decr_instances(self)

    _LINE_BAR = LineBar
    return LineBar


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def log_elapsed(message: str, *args: object):
    """Log ``message`` at info level with the elapsed time once the block finishes."""
    start = time.perf_counter()
    yield
    logger.info(message + " (%.1f s)", *args, time.perf_counter() - start)

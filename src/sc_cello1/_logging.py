"""The package logger ``sc_cello1``.

Library code logs through :data:`logger`; it never calls :func:`logging.basicConfig`.
:attr:`sc_cello1.settings.verbosity` sets its level, and progress bars are shown only
when that level is ``info`` or more verbose.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

logger = logging.getLogger("sc_cello1")
logger.addHandler(logging.NullHandler())


def progress_disabled() -> bool:
    """Whether tqdm progress bars should be silent (verbosity below info)."""
    return not logger.isEnabledFor(logging.INFO)


@contextmanager
def log_elapsed(message: str, *args: object):
    """Log ``message`` at info level with the elapsed time once the block finishes."""
    start = time.perf_counter()
    yield
    logger.info(message + " (%.1f s)", *args, time.perf_counter() - start)

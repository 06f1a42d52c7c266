"""sc-cello1: Cell-o1 reasoning LLM cell type annotation for scanpy users.

Use as ``import sc_cello1 as cello1``.
"""

from . import data, get, inference, metrics, models, pl, pp, tl, train
from ._logging import logger
from ._settings import settings
from ._version import __version__

__all__ = [
    "__version__",
    "data",
    "get",
    "inference",
    "logger",
    "metrics",
    "models",
    "pl",
    "pp",
    "settings",
    "tl",
    "train",
]

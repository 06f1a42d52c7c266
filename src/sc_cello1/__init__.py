"""sc-cello1: Cell-o1 reasoning LLM cell type annotation for scanpy users.

Use as ``import sc_cello1 as cello1``.
"""

from importlib.metadata import PackageNotFoundError, version

from . import data, get, inference, metrics, models, pl, pp, tl, train
from ._logging import logger
from ._settings import settings

try:
    __version__ = version("sc-cello1")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

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

"""The registry of named models, re-exported from :mod:`sc_cello1._hub._registry`.

The registry moved to the ground floor (``sc_cello1._hub``) so that ``data`` fetches the
CellPuzzles dataset without importing ``models``; this module keeps the old import path.
"""

from sc_cello1._hub._registry import (
    _REGISTRY,
    HUB_URL,
    ModelSpec,
    RepoType,
    _registry_frame,
    get_spec,
    is_commit,
    lookup,
    register,
    registered_names,
    split_revision,
    unregister,
)

__all__ = [
    "HUB_URL",
    "_REGISTRY",
    "ModelSpec",
    "RepoType",
    "_registry_frame",
    "get_spec",
    "is_commit",
    "lookup",
    "register",
    "registered_names",
    "split_revision",
    "unregister",
]

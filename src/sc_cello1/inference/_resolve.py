"""``model=`` for the in-process backends: provenance of a resolved model.

Models are resolved once, by :func:`sc_cello1.models.resolve`, into a
:class:`~sc_cello1.models.ResolvedModel` that is passed down as it is. This module
fingerprints local folders so caches notice changed weights.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sc_cello1.models import ResolvedModel

__all__ = ["fingerprint", "model_provenance"]


def fingerprint(path: str | os.PathLike) -> str:
    """Hash (short) a model folder's (or file's) names, sizes and modification times."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def model_name_of(provenance: Mapping[str, Any]) -> Any:
    """Return the model's name in a backend's provenance: its ``model`` key.

    ``name`` is read where ``model`` is missing: what earlier releases'
    ``ResolvedModel.provenance()`` wrote, and what a user's own backend may give.
    """
    return provenance.get("model", provenance.get("name"))


def model_provenance(resolved: ResolvedModel) -> dict[str, Any]:
    """Model name, revision (a content fingerprint for local folders), path and source."""
    prov = resolved.provenance()
    revision = resolved.revision
    if not revision:
        revision = "local-" + fingerprint(resolved.path)
    return {
        "model": resolved.name,
        "revision": revision,
        "path": str(resolved.path),
        "source": resolved.source,
        "repo": prov.get("repo"),
    }

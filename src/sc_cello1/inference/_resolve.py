"""``model=`` for the in-process backends.

Delegates to :mod:`sc_cello1.models`, and fingerprints local folders so caches notice
changed weights.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sc_cello1.models import ResolvedModel


def fingerprint(path: str | os.PathLike) -> str:
    """Hash (short) the a model folder's (or file's) names, sizes and modification times."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def check_model(model: Any) -> None:
    """Validate ``model=`` (a registered name, a folder or a ``.gguf`` file) without loading.

    Raises
    ------
    TypeError, ValueError
        As :func:`sc_cello1.models.check_model`: unknown name, missing path, a folder
        without ``config.json``, a file that is not ``.gguf``.
    """
    from sc_cello1.models import check_model as _check

    _check(model)


def resolve_model(model: str | os.PathLike) -> ResolvedModel:
    """Resolve the folder to load for ``model=`` (see :func:`sc_cello1.models.resolve`)."""
    from sc_cello1.models import resolve

    return resolve(model)


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

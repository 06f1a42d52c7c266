"""Pretrained weights (and the CellPuzzles dataset): a pooch registry, fetched once, verified.

Models are pinned to one revision, verified on every load, and resolved from
``model=`` anywhere in sc-cello1. ``model="cell-o1@<revision>"`` asks for another
revision: a commit, or a moving name such as ``main``, resolved once to the commit the
hub reports (its ``X-Repo-Commit`` header), which is what the cache, the manifest and
every result record.

``model=`` may be a registered name (see :func:`~sc_cello1.models.available`), a local folder with
``config.json``, or a ``.gguf`` file; :func:`resolve` turns it into a folder that
transformers loads, with the provenance to record.

Registered models are downloaded through pooch from
``{base_url}/{repo}/resolve/{revision}/{file}`` (the hub, ``$CELLO1_MIRROR`` or the
model's own server) into ``<settings.cache_dir>/models/<repo>/<revision>/``
(``$CELLO1_CACHE_DIR``). Where the registry knows a file's sha256, pooch checks it;
where it does not (the built-in models: nobody could reach the hub when they were
registered), the sha256 is recorded at first download in
``<revision>.manifest.json`` beside the folder and every later load verifies every
file against it, fetching a corrupted file again. The manifest also records each
file's size and modification time at its last verification: an unchanged file is not
hashed again in a new session (``fetch(..., verify=True)`` or ``cello1 fetch --verify``
hash everything again). A complete cache is used without any request.

Datasets (``cellpuzzles``) use the same mechanism, from
``{base_url}/datasets/{repo}/resolve/{revision}/{file}`` into
``<settings.cache_dir>/datasets/<repo>/<revision>/``.

The pinned revisions and approximate sizes of the built-in models were set without
access to the hub: check them against the hub before relying on them (the revision
of ``cell-o1`` in particular).
"""

from ._download import (
    IncompleteDownloadError,
    ModelDownloadError,
    ModelNotCachedError,
    NotCachedError,
    RevisionNotFoundError,
    available,
    cached_revisions,
    is_cached,
    manifest_path,
    model_dir,
)
from ._gguf import convert_gguf, smollm2_gguf_path
from ._record import ResolvedModel
from ._registry import HUB_URL, ModelSpec, register, registered_names, unregister
from ._resolve import check_model, fetch, resolve

__all__ = [
    "HUB_URL",
    "IncompleteDownloadError",
    "ModelDownloadError",
    "ModelNotCachedError",
    "ModelSpec",
    "NotCachedError",
    "ResolvedModel",
    "RevisionNotFoundError",
    "available",
    "cached_revisions",
    "check_model",
    "convert_gguf",
    "fetch",
    "is_cached",
    "manifest_path",
    "model_dir",
    "register",
    "registered_names",
    "resolve",
    "smollm2_gguf_path",
    "unregister",
]

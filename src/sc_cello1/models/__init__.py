"""Pretrained weights: a pooch registry of named models, fetched once and verified.

Models are pinned to one revision, verified on every load, and resolved from
``model=`` anywhere in sc-cello1.

``model=`` may be a registered name (see :func:`available`), a local folder with
``config.json``, or a ``.gguf`` file; :func:`resolve` turns it into a folder that
transformers loads, with the provenance to record.

Registered models are downloaded through pooch from
``{base_url}/{repo}/resolve/{revision}/{file}`` (the hub, ``$CELLO1_MIRROR`` or the
model's own server) into ``<settings.cache_dir>/models/<repo>/<revision>/``
(``$CELLO1_CACHE_DIR``). Where the registry knows a file's sha256, pooch checks it;
where it does not (the built-in models: nobody could reach the hub when they were
registered), the sha256 is recorded at first download in
``<revision>.manifest.json`` beside the folder and every later load verifies every
file against it, fetching a corrupted file again. A complete cache is used without
any request.

The pinned revisions and approximate sizes of the built-in models were set without
access to the hub: check them against the hub before relying on them (the revision
of ``cell-o1`` in particular).
"""

from ._download import (
    IncompleteDownloadError,
    ModelDownloadError,
    ModelNotCachedError,
    available,
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
    "ResolvedModel",
    "available",
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

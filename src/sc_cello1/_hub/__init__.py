"""The hub client on the ground floor: the registry of models and datasets, and fetching.

``models`` (weights) and ``data`` (the CellPuzzles dataset) both fetch through here, so
neither reaches up into the other. Pooch downloads and checks hashes; the registry, the
cache layout (``<cache_dir>/{models,datasets}/<repo>/<revision>/``), the manifests and
the resolution of moving revisions are this package's (see ``docs/architecture.md``).
"""

from ._cache import (
    cached_revisions,
    is_cached,
    manifest_path,
    model_dir,
    read_manifest,
    refs_path,
    sha256_file,
)
from ._errors import (
    DatasetNotCachedError,
    IncompleteDownloadError,
    ModelDownloadError,
    ModelNotCachedError,
    NotCachedError,
    RevisionNotFoundError,
)
from ._fetch import FetchResult, fetch_spec, pin_revision, spec_at
from ._http import resolve_base_url
from ._registry import (
    HUB_URL,
    ModelSpec,
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
    "DatasetNotCachedError",
    "FetchResult",
    "IncompleteDownloadError",
    "ModelDownloadError",
    "ModelNotCachedError",
    "ModelSpec",
    "NotCachedError",
    "RevisionNotFoundError",
    "cached_revisions",
    "fetch_spec",
    "get_spec",
    "is_cached",
    "is_commit",
    "lookup",
    "manifest_path",
    "model_dir",
    "pin_revision",
    "read_manifest",
    "refs_path",
    "register",
    "registered_names",
    "resolve_base_url",
    "sha256_file",
    "spec_at",
    "split_revision",
    "unregister",
]

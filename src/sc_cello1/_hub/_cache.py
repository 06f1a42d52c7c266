"""The cache of registered entries: folders, manifests of sha256 hashes, verification.

``<cache_dir>/models/<repo>/<revision>/`` holds the files (``datasets/`` for a dataset),
``<revision>.manifest.json`` beside it the hash, size and modification time of each file
at its last verification, and ``refs/<name>`` the commit a moving revision was last
resolved to. Nothing here makes a request.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from sc_cello1._io import atomic_write
from sc_cello1._logging import logger

from ._registry import ModelSpec, is_commit, lookup

MANIFEST_FORMAT = 1
_CHUNK = 1 << 20
_POOCH_TMP = re.compile(r"^tmp[a-z0-9_]{8}$")  # tempfile.NamedTemporaryFile names

# (path, size, mtime_ns, inode) -> sha256 of files verified by this process, so that
# repeated loads in one session do not hash 15 GB again. A changed file has a new key.
_VERIFIED: dict[tuple[str, int, int, int], str] = {}


# --------------------------------------------------------------------------- paths


def _cache_root(cache_dir: str | os.PathLike | None, repo_type: str = "model") -> Path:
    folder = "datasets" if repo_type == "dataset" else "models"
    if cache_dir is None:
        from sc_cello1._settings import settings

        return Path(settings.cache_dir) / folder
    return Path(cache_dir).expanduser() / folder


def _no_revision_message(spec: ModelSpec) -> str:
    kind = "dataset" if spec.repo_type == "dataset" else "model"
    return (
        f"No revision of the {kind} {spec.name!r} ({spec.repo}) is pinned in sc-cello1: no "
        "commit of it could be checked against the hub when this version was made, and a "
        "guessed one would fail or mislead. Name the revision yourself: "
        f"'{spec.name}@main' (`cello1 fetch {spec.name} --revision main`, or the `revision` "
        "argument in Python) uses the hub's current commit, resolved once and recorded in the cache and "
        f"in every result; '{spec.name}@<40-hex commit>' uses a commit you have checked."
    )


def _checked_revision(spec: ModelSpec) -> str:
    if spec.revision is None:
        raise ValueError(_no_revision_message(spec))
    return spec.revision


def model_dir(spec: ModelSpec, cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of a registered entry in the cache: ``<cache_dir>/models/<repo>/<revision>``.

    ``<cache_dir>/datasets/<repo>/<revision>`` for a dataset.
    """
    return _cache_root(cache_dir, spec.repo_type) / spec.repo / _checked_revision(spec)


def manifest_path(spec: ModelSpec, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the manifest path, ``<cache_dir>/models/<repo>/<revision>.manifest.json``."""
    root = _cache_root(cache_dir, spec.repo_type) / spec.repo
    return root / f"{_checked_revision(spec)}.manifest.json"


def refs_path(spec: ModelSpec, name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """File recording the commit a moving revision ``name`` was last resolved to.

    ``<cache_dir>/models/<repo>/refs/<name>`` (as the hub's own cache lays it out).
    """
    return _cache_root(cache_dir, spec.repo_type) / spec.repo / "refs" / name


def _part_path(root: Path, file: str) -> Path:
    target = root / file
    return target.parent / f".{target.name}.part"


# --------------------------------------------------------------------------- manifest


def read_manifest(spec: ModelSpec, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Return the manifest of a cached model (an empty skeleton if none or unreadable)."""
    path = manifest_path(spec, cache_dir)
    empty: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "name": spec.name,
        "repo": spec.repo,
        "revision": spec.revision,
        "files": {},
    }
    if not path.is_file():
        return empty
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        logger.warning(
            "Ignoring unreadable manifest %s (%s); files will be verified again.", path, e
        )
        return empty
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return empty
    if data.get("repo") != spec.repo or data.get("revision") != spec.revision:
        return empty
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically (flushed to disk; mode from the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, fsync=True) as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")


# --------------------------------------------------------------------------- hashing


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def sha256_file(path: str | os.PathLike, *, progress: bool = False, force: bool = False) -> str:
    """Return the sha256 of a file (remembered in this process while it is unchanged).

    ``force=True`` hashes the file again even if this process has hashed it before.
    """
    path = Path(path)
    key = _stat_key(path)
    if key in _VERIFIED and not force:
        return _VERIFIED[key]
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    with (
        open(path, "rb") as fh,
        tqdm(
            total=key[1],
            unit="B",
            unit_scale=True,
            desc=f"verify {path.name}",
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        while chunk := fh.read(_CHUNK * 8):
            digest.update(chunk)
            bar.update(len(chunk))
    value = digest.hexdigest()
    _VERIFIED[key] = value
    return value


def _expected_hashes(
    spec: ModelSpec, manifest: dict[str, Any], files: tuple[str, ...] | None = None
) -> dict[str, str | None]:
    recorded = manifest.get("files", {})
    out: dict[str, str | None] = {}
    for file, known in spec.files.items():
        if files is not None and file not in files:
            continue
        entry = recorded.get(file)
        out[file] = (
            known
            if known is not None
            else (entry.get("sha256") if isinstance(entry, dict) else None)
        )
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _unchanged_since_verified(entry: Any, expected: str, st: os.stat_result) -> bool:
    """Whether the manifest saw this very file verified: same hash, size and mtime (ns)."""
    return (
        isinstance(entry, dict)
        and entry.get("sha256") == expected
        and entry.get("size") == st.st_size
        and entry.get("mtime_ns") == st.st_mtime_ns
    )


def _verify_cached(
    spec: ModelSpec,
    root: Path,
    manifest: dict[str, Any],
    *,
    progress: bool,
    files: tuple[str, ...] | None = None,
    verify: bool = False,
) -> tuple[dict[str, str], list[str]]:
    """Hashes of the cached files that verify, and the files that must be fetched.

    Decided from the manifest and the files on disk alone: no request is made. A file
    whose size and modification time (ns) are those recorded when it was last verified
    is taken as verified without hashing (unless ``verify``); any other file is hashed,
    and its size and time are recorded in ``manifest`` (the caller writes it). A file
    whose hash does not match is removed (it is fetched again); a file without a known
    or recorded hash cannot be trusted and is fetched again too.
    """
    good: dict[str, str] = {}
    missing: list[str] = []
    recorded = manifest.setdefault("files", {})
    for file, expected in _expected_hashes(spec, manifest, files).items():
        path = root / file
        if not path.is_file():
            missing.append(file)
            continue
        if expected is None:
            logger.warning(
                "%s: cached %s has no recorded sha256; fetching it again.", spec.name, file
            )
            path.unlink()
            missing.append(file)
            continue
        st = path.stat()
        entry = recorded.get(file)
        if not verify and _unchanged_since_verified(entry, expected, st):
            good[file] = expected
            continue
        got = sha256_file(path, progress=progress, force=verify)
        if got != expected:
            logger.warning(
                "%s: cached %s is corrupted (sha256 %s, expected %s); fetching it again.",
                spec.name,
                file,
                got,
                expected,
            )
            path.unlink()
            missing.append(file)
            continue
        good[file] = got
        entry = dict(entry) if isinstance(entry, dict) else {"source": "known"}
        entry.update(sha256=got, size=st.st_size, mtime_ns=st.st_mtime_ns, verified_at=_now())
        recorded[file] = entry
    return good, missing


def _save_manifest(spec: ModelSpec, cache_dir: str | os.PathLike | None, manifest: dict) -> None:
    """Write the manifest; a read-only cache (shared on a cluster) is left as it is."""
    manifest.update(format=MANIFEST_FORMAT, name=spec.name, repo=spec.repo, revision=spec.revision)
    try:
        write_json(manifest_path(spec, cache_dir), manifest)
    except OSError as e:
        logger.debug("could not update the manifest of %s (%s)", spec.name, e)


def _remove_stale_temporaries(root: Path, spec: ModelSpec) -> None:
    """Delete pooch's temporary files left by a killed run (called under the lock)."""
    if not root.is_dir():
        return
    for path in root.iterdir():
        if path.is_file() and _POOCH_TMP.match(path.name) and path.name not in spec.files:
            logger.debug("Removing stale temporary file %s", path)
            path.unlink(missing_ok=True)


def _is_pinned(spec: ModelSpec) -> bool:
    """Whether ``spec.revision`` is what the registry pins (not a revision a user named)."""
    registered = lookup(spec.name)
    return registered is not None and registered.revision == spec.revision


def _read_ref(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    return value if is_commit(value) else None


def _complete(spec: ModelSpec, cache_dir: str | os.PathLike | None) -> bool:
    root = model_dir(spec, cache_dir)
    manifest = read_manifest(spec, cache_dir)
    recorded = manifest.get("files", {})
    for file, expected in _expected_hashes(spec, manifest).items():
        path = root / file
        if expected is None or not path.is_file():
            return False
        entry = recorded.get(file)
        if (
            isinstance(entry, dict)
            and entry.get("size") is not None
            and path.stat().st_size != entry["size"]
        ):
            return False
    return True


def is_cached(spec: ModelSpec, cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether every file of ``spec`` is in the cache with a hash to verify it against.

    Decided from the manifest, the recorded moving revisions and file sizes, without
    hashing or any request. An entry without a revision is never cached.
    """
    if spec.revision is None:
        return False
    if not (is_commit(spec.revision) or _is_pinned(spec) or lookup(spec.name) is None):
        recorded = _read_ref(refs_path(spec, spec.revision, cache_dir))
        if recorded is None:
            return False
        spec = spec.at(recorded)
    return _complete(spec, cache_dir)


def cached_revisions(spec: ModelSpec, cache_dir: str | os.PathLike | None = None) -> list[str]:
    """Revisions of ``spec`` complete in the cache (from the manifests; no hashing)."""
    folder = _cache_root(cache_dir, spec.repo_type) / spec.repo
    if not folder.is_dir():
        return []
    out = []
    for manifest in sorted(folder.glob("*.manifest.json")):
        revision = manifest.name.removesuffix(".manifest.json")
        if _complete(spec.at(revision), cache_dir):
            out.append(revision)
    return out

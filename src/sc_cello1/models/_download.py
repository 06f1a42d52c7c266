"""Fetching registered models with pooch.

Pinned URLs, resumable downloads, a manifest of sha256 hashes beside the cache, and
verification on every load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sc_cello1._logging import logger, progress_disabled

from ._registry import HUB_URL, ModelSpec

if TYPE_CHECKING:
    from collections.abc import Iterator

MANIFEST_FORMAT = 1
_CHUNK = 1 << 20
_NET_CHUNK = 1 << 16  # small reads: a cut connection loses at most this much of the .part
_TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
_MIRROR_ENV = "CELLO1_MIRROR"
_POOCH_TMP = re.compile(r"^tmp[a-z0-9_]{8}$")  # tempfile.NamedTemporaryFile names

# (path, size, mtime_ns, inode) -> sha256 of files verified by this process, so that
# repeated loads in one session do not hash 15 GB again. A changed file has a new key.
_VERIFIED: dict[tuple[str, int, int, int], str] = {}


class ModelNotCachedError(FileNotFoundError):
    """Files of a model are missing from the cache and downloading was not allowed."""


class ModelDownloadError(ConnectionError):
    """Files of a model could not be downloaded (server unreachable, not found, cut off)."""


class IncompleteDownloadError(OSError):
    """A download ended before the announced size; the partial file is kept to resume."""


@dataclass(frozen=True)
class FetchResult:
    """Outcome of :func:`fetch_spec`: the folder, file hashes and what was downloaded."""

    path: Path
    files: dict[str, str]
    downloaded: tuple[str, ...]
    base_url: str


# --------------------------------------------------------------------------- paths


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is None:
        from sc_cello1._settings import settings

        return Path(settings.cache_dir) / "models"
    return Path(cache_dir).expanduser() / "models"


def model_dir(spec: ModelSpec, cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of a registered model in the cache: ``<cache_dir>/models/<repo>/<revision>``."""
    return _cache_root(cache_dir) / spec.repo / spec.revision


def manifest_path(spec: ModelSpec, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the manifest path, ``<cache_dir>/models/<repo>/<revision>.manifest.json``."""
    return _cache_root(cache_dir) / spec.repo / f"{spec.revision}.manifest.json"


def _part_path(root: Path, file: str) -> Path:
    target = root / file
    return target.parent / f".{target.name}.part"


def resolve_base_url(spec: ModelSpec, mirror: str | None = None) -> str:
    """Return the server root for ``spec``.

    That is ``mirror`` if given, else the model's own server, else ``settings.mirror`` /
    ``$CELLO1_MIRROR``, else the hub.
    """
    if mirror is not None:
        if not isinstance(mirror, str) or not mirror.startswith(("http://", "https://")):
            msg = f"mirror={mirror!r} must be a URL starting with 'http://' or 'https://'."
            raise ValueError(msg)
        return mirror.rstrip("/")
    if spec.base_url is not None:
        return spec.base_url
    from sc_cello1._settings import settings

    configured = settings.mirror or os.environ.get(_MIRROR_ENV)
    if configured:
        if not configured.startswith(("http://", "https://")):
            msg = f"The mirror {configured!r} (settings.mirror / ${_MIRROR_ENV}) must start with 'http://' or 'https://'."
            raise ValueError(msg)
        return configured.rstrip("/")
    return HUB_URL


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


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- hashing


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def sha256_file(path: str | os.PathLike, *, progress: bool = False) -> str:
    """Return the sha256 of a file (remembered in this process while it is unchanged)."""
    path = Path(path)
    key = _stat_key(path)
    if key in _VERIFIED:
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


# --------------------------------------------------------------------------- download


class _ResumableDownload:
    """Pooch downloader writing to ``.<file>.part`` first.

    It resumes with an HTTP Range request where the server allows it, checks the
    announced size, hashes on the fly, and only then hands the bytes to pooch's
    temporary file.
    """

    def __init__(self, part: Path, *, label: str, progress: bool) -> None:
        self.part = part
        self.label = label
        self.progress = progress
        self.sha256: str | None = None
        self.size: int | None = None

    def __call__(self, url: str, output_file: str, pooch: object) -> None:
        import requests
        from tqdm.auto import tqdm

        from sc_cello1 import __version__

        self.part.parent.mkdir(parents=True, exist_ok=True)
        offset = self.part.stat().st_size if self.part.is_file() else 0
        headers = {"User-Agent": f"sc-cello1/{__version__}", "Accept-Encoding": "identity"}
        token = os.environ.get("HF_TOKEN")
        if token and url.startswith(HUB_URL + "/"):
            headers["Authorization"] = f"Bearer {token}"  # gated/private hub repositories
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with requests.get(
            url, headers=headers, stream=True, timeout=_TIMEOUT, allow_redirects=True
        ) as r:
            if offset and r.status_code == 416:
                logger.debug(
                    "Server refused resuming %s at byte %d; starting again.", self.label, offset
                )
                self.part.unlink()
                return self(url, output_file, pooch)
            r.raise_for_status()
            resumed = (
                bool(offset)
                and r.status_code == 206
                and r.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
            )
            if r.status_code == 206 and not resumed:
                # A partial answer that does not continue our .part: start again cleanly.
                self.part.unlink(missing_ok=True)
                if not offset:
                    msg = f"{url} answered 206 (partial content) to a plain GET"
                    raise IncompleteDownloadError(msg)
                return self(url, output_file, pooch)
            digest = hashlib.sha256()
            if resumed:
                with open(self.part, "rb") as fh:
                    while chunk := fh.read(_CHUNK * 8):
                        digest.update(chunk)
                logger.info("Resuming %s at %.1f MB", self.label, offset / 1e6)
            else:
                offset = 0
            length = r.headers.get("Content-Length")
            total = offset + int(length) if length is not None and length.isdigit() else None
            received = offset
            with (
                open(self.part, "ab" if resumed else "wb") as fh,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=self.label,
                    disable=not self.progress,
                ) as bar,
            ):
                for chunk in r.iter_content(chunk_size=_NET_CHUNK):
                    if not chunk:
                        continue
                    fh.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                fh.flush()
                os.fsync(fh.fileno())
        if total is not None and received != total:
            msg = f"download of {self.label} stopped at {received} of {total} bytes"
            raise IncompleteDownloadError(msg)
        os.replace(self.part, output_file)
        self.sha256 = digest.hexdigest()
        self.size = received
        return None


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    import pooch

    plog = pooch.get_logger()
    level = plog.level
    plog.setLevel(logging.WARNING)
    try:
        yield
    finally:
        plog.setLevel(level)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock between processes fetching the same model (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _expected_hashes(spec: ModelSpec, manifest: dict[str, Any]) -> dict[str, str | None]:
    recorded = manifest.get("files", {})
    out: dict[str, str | None] = {}
    for file, known in spec.files.items():
        entry = recorded.get(file)
        out[file] = (
            known
            if known is not None
            else (entry.get("sha256") if isinstance(entry, dict) else None)
        )
    return out


def _verify_cached(
    spec: ModelSpec, root: Path, manifest: dict[str, Any], *, progress: bool
) -> tuple[dict[str, str], list[str]]:
    """Hashes of the cached files that verify, and the files that must be fetched.

    Decided from the manifest and the files on disk alone: no request is made. A file
    whose hash does not match is removed (it is fetched again); a file without a known
    or recorded hash cannot be trusted and is fetched again too.
    """
    good: dict[str, str] = {}
    missing: list[str] = []
    for file, expected in _expected_hashes(spec, manifest).items():
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
        got = sha256_file(path, progress=progress)
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
    return good, missing


def _remove_stale_temporaries(root: Path, spec: ModelSpec) -> None:
    """Delete pooch's temporary files left by a killed run (called under the lock)."""
    if not root.is_dir():
        return
    for path in root.iterdir():
        if path.is_file() and _POOCH_TMP.match(path.name) and path.name not in spec.files:
            logger.debug("Removing stale temporary file %s", path)
            path.unlink(missing_ok=True)


def _offline_message(spec: ModelSpec, missing: list[str], root: Path, reason: str) -> str:
    return (
        f"Model {spec.name!r} ({spec.repo} @ {spec.revision}) is not complete in the cache "
        f"{root} and {reason}. Files needed: {', '.join(missing)}. On a cluster without access "
        f"to the hub set ${_MIRROR_ENV} (or `cello1.settings.mirror`, or pass mirror=) to a "
        f"server laid out as <base>/{spec.repo}/resolve/{spec.revision}/<file>, or run "
        f"`cello1 fetch {spec.name}` on a machine with access and copy its cache folder "
        f"{root.parent} (model folder and manifest) here."
    )


def fetch_spec(
    spec: ModelSpec,
    *,
    cache_dir: str | os.PathLike | None = None,
    mirror: str | None = None,
    download: bool = True,
    progress: bool | None = None,
) -> FetchResult:
    """Fetch (or verify in the cache) every file of ``spec``; see :func:`fetch`."""
    import pooch
    import requests

    show = (not progress_disabled()) if progress is None else bool(progress)
    base_url = resolve_base_url(spec, mirror)
    root = model_dir(spec, cache_dir)
    mpath = manifest_path(spec, cache_dir)
    manifest = read_manifest(spec, cache_dir)
    good, missing = _verify_cached(spec, root, manifest, progress=show)
    if not missing:
        logger.debug("%s: all %d files verified in %s", spec.name, len(good), root)
        return FetchResult(root, good, (), base_url)
    if not download:
        raise ModelNotCachedError(
            _offline_message(spec, missing, root, "downloading is off (download=False)")
        )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") and base_url == HUB_URL:
        raise ModelNotCachedError(_offline_message(spec, missing, root, "HF_HUB_OFFLINE is set"))

    downloaded: list[str] = []
    with _lock(mpath.with_suffix(".lock")):
        # Another process may have finished while we waited for the lock.
        manifest = read_manifest(spec, cache_dir)
        good, missing = _verify_cached(spec, root, manifest, progress=show)
        _remove_stale_temporaries(root, spec)
        expected = _expected_hashes(spec, manifest)
        registry = {f: (f"sha256:{h}" if h else None) for f, h in expected.items()}
        store = pooch.create(
            path=root,
            base_url=f"{base_url}/{spec.repo}/resolve/{spec.revision}/",
            registry=registry,
            retry_if_failed=0,
            allow_updates=True,
        )
        start = time.perf_counter()
        for i, file in enumerate(missing):
            url = spec.url(file, base_url)
            loader = _ResumableDownload(
                _part_path(root, file),
                label=f"{spec.name}: {file} ({i + 1}/{len(missing)})",
                progress=show,
            )
            logger.info("Downloading %s from %s", file, url)
            try:
                with _quiet_pooch():
                    store.fetch(file, downloader=loader)
            except ValueError as e:
                if "hash" not in str(e):
                    raise
                msg = (
                    f"Model {spec.name!r}: file {file!r} downloaded from {url} failed verification "
                    f"(sha256 expected {expected[file]}, got {loader.sha256}); the download was "
                    "deleted. The server holds a different file than the registry pins: check "
                    "the revision and the hash, or the mirror."
                )
                raise ValueError(msg) from e
            except requests.HTTPError as e:
                status = e.response.status_code if e.response is not None else "?"
                reason = f"the server answered HTTP {status} for {url}"
                raise ModelDownloadError(_offline_message(spec, missing[i:], root, reason)) from e
            except (requests.RequestException, IncompleteDownloadError) as e:
                reason = f"the download failed ({type(e).__name__}: {e})"
                raise ModelDownloadError(_offline_message(spec, missing[i:], root, reason)) from e
            sha = loader.sha256 or sha256_file(root / file)
            path = root / file
            _VERIFIED[_stat_key(path)] = sha
            good[file] = sha
            downloaded.append(file)
            manifest.setdefault("files", {})[file] = {
                "sha256": sha,
                "size": loader.size,
                "source": "known" if spec.files.get(file) else "recorded at first download",
                "url": url,
                "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            manifest.update(
                format=MANIFEST_FORMAT, name=spec.name, repo=spec.repo, revision=spec.revision
            )
            _write_json_atomic(mpath, manifest)
        logger.info(
            "%s: downloaded %d file(s) to %s (%.1f s)",
            spec.name,
            len(downloaded),
            root,
            time.perf_counter() - start,
        )
    return FetchResult(root, good, tuple(downloaded), base_url)


def is_cached(spec: ModelSpec, cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether every file of ``spec`` is in the cache with a hash to verify it against.

    Decided from the manifest and file sizes, without hashing or any request.
    """
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


def available(*, cache_dir: str | os.PathLike | None = None) -> Any:
    """Table of the registered models.

    Parameters
    ----------
    cache_dir
        Cache root to look in for the ``cached`` column; default ``settings.cache_dir``.

    Returns
    -------
    A :class:`pandas.DataFrame` with one row per model and the columns ``name``, ``repo``,
    ``revision`` (pinned), ``size_gb`` (approximate), ``licence``, ``cached`` (every file
    present with a hash to verify it; decided without hashing or any request) and
    ``description``.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> table = cello1.models.available()
    >>> "cell-o1" in set(table["name"])
    True
    """
    from ._registry import _REGISTRY, _registry_frame

    cached = {name: is_cached(spec, cache_dir) for name, spec in _REGISTRY.items()}
    return _registry_frame(cached)

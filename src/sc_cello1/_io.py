"""Atomic file writes whose result has the permissions the umask gives.

Every output file of the package goes through :func:`atomic_write` (for a file object)
or :func:`atomic_path` (for writers that take a path, such as ``AnnData.write_h5ad``):
the content goes to a temporary file beside the target, which is moved into place only
when writing succeeded, so an interrupted write never leaves a partial file.

:func:`tempfile.mkstemp` creates files with mode ``0600`` whatever the umask, so files
written through it could not be read by the group on a shared cluster. The temporary
file here is created with ``os.open(..., 0o666)``, so the kernel applies the umask
exactly as for a file created with :func:`open`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write"]

_MODES = ("w", "wb")


def _create_temporary(path: Path) -> Path:
    """Create an empty file beside ``path`` (mode ``0o666`` less the umask); return its path."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    msg = f"could not create a temporary file beside {str(path)!r}"  # pragma: no cover
    raise FileExistsError(msg)  # pragma: no cover


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it to ``path`` when the block succeeds.

    For writers that take a file name (``AnnData.write_h5ad``, ``pyarrow.parquet``).
    The temporary file exists (empty) when the block starts; on any exception it is
    removed and ``path`` is left as it was.

    Parameters
    ----------
    path
        The file to write. Its folder must exist.
    fsync
        Flush the file to disk before moving it into place.

    Examples
    --------
    >>> with atomic_path("out.h5ad") as tmp:  # doctest: +SKIP
    ...     adata.write_h5ad(tmp)
    """
    path = Path(path)
    tmp = _create_temporary(path)
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    fsync: bool = False,
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; move it into place on success.

    Parameters
    ----------
    path
        The file to write. Its folder must exist.
    mode
        ``"w"`` (text) or ``"wb"`` (bytes).
    encoding
        Text encoding for ``mode="w"``; ignored for ``"wb"``.
    fsync
        Flush the file to disk before moving it into place (for caches that must
        survive a crash).

    Examples
    --------
    >>> with atomic_write("preds.jsonl") as f:  # doctest: +SKIP
    ...     f.write(text)
    """
    if mode not in _MODES:
        msg = f"mode={mode!r} is not supported; use 'w' or 'wb'."
        raise ValueError(msg)
    with atomic_path(path) as tmp:
        kwargs: dict[str, Any] = {"encoding": encoding} if mode == "w" else {}
        with open(tmp, mode, **kwargs) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())

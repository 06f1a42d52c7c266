"""Atomic file writes whose result has the permissions the umask gives.

Every output file of the package goes through :func:`atomic_write` (for a file object)
or :func:`atomic_path` (for writers that take a path, such as ``AnnData.write_h5ad``):
the content goes to a temporary file beside the target, which is moved into place only
when writing succeeded, so an interrupted write never leaves a partial file. Folders
(a converted or trained model) go through :func:`atomic_dir` (the whole folder) or
:func:`staged_into` (files moved into an existing folder, a marker file last).

:func:`tempfile.mkstemp` creates files with mode ``0600`` whatever the umask, so files
written through it could not be read by the group on a shared cluster. The temporary
file here is created with ``os.open(..., 0o666)``, so the kernel applies the umask
exactly as for a file created with :func:`open`; temporary folders likewise with
``os.mkdir(..., 0o777)`` rather than :func:`tempfile.mkdtemp` (``0700``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_dir", "atomic_path", "atomic_write", "staged_into"]

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


def _make_folder(parent: Path, prefix: str) -> Path:
    """Create an empty folder in ``parent`` (mode ``0o777`` less the umask); return its path."""
    for _ in range(100):
        tmp = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(tmp, 0o777)
        except FileExistsError:
            continue
        return tmp
    msg = f"could not create a temporary folder in {str(parent)!r}"  # pragma: no cover
    raise FileExistsError(msg)  # pragma: no cover


def _move(source: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    os.replace(source, target)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; it becomes ``path`` when the block succeeds.

    A folder already at ``path`` is replaced as a whole (moved aside, then removed), so a
    reader sees the old folder or the new one, never a mix. On any exception the
    temporary folder is removed and ``path`` is left as it was. The folder's mode is
    ``0o777`` less the umask, as for :func:`os.mkdir`.

    Parameters
    ----------
    path
        The folder to write. Its parent is created if needed.

    Examples
    --------
    >>> with atomic_dir("converted") as tmp:  # doctest: +SKIP
    ...     model.save_pretrained(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _make_folder(path.parent, f".{path.name}.tmp-")
    try:
        yield tmp
        if path.exists():
            old = _make_folder(path.parent, f".{path.name}.old-")
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_into(
    folder: str | os.PathLike, *, last: str | None = None, remove: Iterable[str] = ()
) -> Iterator[Path]:
    """Yield a temporary folder inside ``folder``; move its entries into ``folder`` on success.

    For outputs written into a folder the user chose (which may hold other files): when
    the block succeeds, ``folder/last`` is removed first, every entry of the temporary
    folder replaces the entry of the same name in ``folder``, the names in ``remove``
    are deleted from ``folder``, and the entry named ``last`` (a marker such as
    ``cello1_train.json``) is moved in last, so its presence means the rest is
    complete. The temporary folder is removed whatever happens.

    Parameters
    ----------
    folder
        The existing folder that receives the entries.
    last
        The name of the entry moved in last.
    remove
        Names to delete from ``folder`` (files of another layout a previous run left).

    Examples
    --------
    >>> with staged_into("runs/sft", last="cello1_train.json") as tmp:  # doctest: +SKIP
    ...     model.save_pretrained(tmp)
    """
    folder = Path(folder)
    tmp = _make_folder(folder, ".tmp-staged-")
    try:
        yield tmp
        if last is not None:
            (folder / last).unlink(missing_ok=True)
        names = os.listdir(tmp)
        for name in names:
            if name != last:
                _move(tmp / name, folder / name)
        for other in remove:
            (folder / other).unlink(missing_ok=True)
        if last in names:
            _move(tmp / last, folder / last)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

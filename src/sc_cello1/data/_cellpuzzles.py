"""The public CellPuzzles dataset (``ncbi/CellPuzzles``), fetched and verified like the weights."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from ._puzzle import Puzzle

#: A split of the public dataset.
Split = Literal["train", "test", "reasoning"]

#: The splits of the public dataset (the choices of :data:`Split`).
SPLITS: tuple[str, ...] = get_args(Split)

#: Registry name of the dataset (see ``cello1.models.available()``).
DATASET = "cellpuzzles"


def split_file(split: str) -> str:
    """Path of a split's parquet file inside the dataset repository."""
    return f"data/{split}-00000-of-00001.parquet"


def _check_split(split: object) -> str:
    if not isinstance(split, str) or split not in SPLITS:
        msg = f"split={split!r} is not a CellPuzzles split; use one of {list(SPLITS)}."
        raise ValueError(msg)
    return split


def cellpuzzles(
    split: str = "test",
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    mirror: str | None = None,
    download: bool = True,
    verify: bool = False,
    progress: bool | None = None,
) -> list[Puzzle]:
    """Load one split of the public CellPuzzles dataset (``ncbi/CellPuzzles``) as puzzles.

    The split's parquet file (``data/{split}-00000-of-00001.parquet``) is fetched once
    through the same registry, downloader and cache as the weights
    (:func:`sc_cello1.models.fetch`): from
    ``{base_url}/datasets/ncbi/CellPuzzles/resolve/{revision}/{file}`` (the hub,
    ``$CELLO1_MIRROR`` or ``mirror=``) into
    ``<settings.cache_dir>/datasets/ncbi/CellPuzzles/<commit>/``, its sha256 recorded
    at first download and verified on every later load; offline, only the cache is
    used.

    No commit of the dataset is pinned in sc-cello1 (none could be checked against the
    hub when this version was made), so the revision must be named: ``"main"`` is
    resolved once to the commit the hub reports, which the cache, the manifest and each
    puzzle's ``meta`` record; a 40-hex commit is used as it is. Offline, ``"main"`` is
    the commit it was last resolved to in this cache.

    Parameters
    ----------
    split
        ``"train"`` (6,912 puzzles, used for RL), ``"test"`` (1,095) or ``"reasoning"``
        (3,912, with reasoning traces, used for SFT).
    revision
        ``"main"`` (or another branch) or a commit. Required: see above.
    cache_dir
        Cache root; default ``settings.cache_dir`` (``$CELLO1_CACHE_DIR``).
    mirror
        Base URL of a server laid out like the hub; default ``settings.mirror``
        (``$CELLO1_MIRROR``), else the hub.
    download
        If ``False``, make no request: the split must be in the cache.
    verify
        Hash the cached file again even if unchanged since its last verification.
    progress
        Show the download progress bar; default: when verbosity is ``"info"`` or more.

    Returns
    -------
    The puzzles, in file order (read with :func:`~sc_cello1.data.read_puzzles`). Each
    puzzle's ``meta`` holds ``dataset`` (``"ncbi/CellPuzzles"``), ``revision`` (the
    commit), ``split``, ``row`` (position in the file) and ``sha256`` (of the file).

    Raises
    ------
    ValueError
        Unknown split, or no revision named.
    sc_cello1.data.DatasetNotCachedError
        ``download=False`` and the split is not in the cache.
    sc_cello1.models.ModelDownloadError
        The server could not be reached or does not hold the revision.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> test = cello1.data.cellpuzzles("test", revision="main")  # doctest: +SKIP
    >>> len(test), test[0].meta["revision"]  # doctest: +SKIP
    (1095, '...')
    """
    # The hub client (registry and downloader) is on the ground floor: the one mechanism
    # for weights and data files. Imported at call time only.
    from sc_cello1._hub import fetch_spec, spec_at

    from ._files import read_puzzles

    _check_split(split)
    if not isinstance(download, bool) or not isinstance(verify, bool):
        msg = "download and verify must be True or False."
        raise TypeError(msg)
    spec = spec_at(DATASET, revision)
    if spec.repo_type != "dataset":  # pragma: no cover - the built-in entry is a dataset
        msg = f"{DATASET!r} is registered as a {spec.repo_type}, not a dataset."
        raise ValueError(msg)
    file = split_file(split)
    result = fetch_spec(
        spec,
        cache_dir=cache_dir,
        mirror=mirror,
        download=download,
        progress=progress,
        verify=verify,
        files=(file,),
    )
    puzzles = read_puzzles(result.path / file)
    for i, puzzle in enumerate(puzzles):
        puzzle.meta.update(
            dataset=spec.repo,
            revision=result.revision,
            split=split,
            row=i,
            sha256=result.files[file],
        )
    return puzzles

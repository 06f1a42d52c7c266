"""Train/test leakage: test puzzles that share a cell with the train split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd

    from ._puzzle import Puzzle

LeakageBy = Literal["ranked", "set"]


def _check_puzzles(name: str, puzzles: object) -> list[Puzzle]:
    from ._puzzle import Puzzle

    if isinstance(puzzles, Puzzle):
        return [puzzles]
    if isinstance(puzzles, str | bytes) or not isinstance(puzzles, Sequence):
        msg = (
            f"`{name}` must be a list of cello1.data.Puzzle; read a split with "
            "`cello1.data.cellpuzzles(split, revision=...)` or a file with `cello1.data.read_puzzles`."
        )
        raise TypeError(msg)
    for i, p in enumerate(puzzles):
        if not isinstance(p, Puzzle):
            msg = f"{name}[{i}] is a {type(p).__name__}, not a cello1.data.Puzzle."
            raise TypeError(msg)
    return list(puzzles)


def leakage(
    train: Sequence[Puzzle], test: Sequence[Puzzle], *, by: LeakageBy = "ranked"
) -> pd.DataFrame:
    """Mark each test puzzle that shares a cell with the train split.

    A test cell is shared when some train cell has the identical ranked gene list
    (``by="ranked"``: same genes in the same order, the criterion of the later study
    that found only 604 of the 1,095 public test puzzles free of it) or the identical
    gene set (``by="set"``: same genes in any order, a stricter screen). A puzzle with at
    least one shared cell is leaked; the others form the clean subset.

    Parameters
    ----------
    train
        The puzzles a model was trained on (``cellpuzzles("train", ...)``).
    test
        The puzzles to screen.
    by
        ``"ranked"`` or ``"set"``.

    Returns
    -------
    A :class:`pandas.DataFrame` with one row per test puzzle (index ``puzzle``, its
    position in ``test``) and the columns ``n_cells``, ``n_shared_cells`` and ``leaked``
    (bool). The clean subset is ``~table["leaked"]``.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> a = cello1.data.Puzzle(context="", genes=[["CD3E", "CD2"], ["MS4A1"]], candidates=["T", "B"])
    >>> b = cello1.data.Puzzle(context="", genes=[["CD2", "CD3E"], ["LYZ"]], candidates=["T", "M"])
    >>> cello1.data.leakage([a], [b])["leaked"].tolist()
    [False]
    >>> cello1.data.leakage([a], [b], by="set")["leaked"].tolist()
    [True]
    """
    import pandas as pd

    if by not in ("ranked", "set"):
        msg = f"by={by!r} must be 'ranked' (identical ranked gene list) or 'set' (identical gene set)."
        raise ValueError(msg)
    train = _check_puzzles("train", train)
    test = _check_puzzles("test", test)
    if not train:
        msg = "`train` is empty: give the puzzles the model was trained on."
        raise ValueError(msg)
    key = tuple if by == "ranked" else frozenset
    seen = {key(genes) for p in train for genes in p.genes}
    shared = [sum(key(genes) in seen for genes in p.genes) for p in test]
    table = pd.DataFrame(
        {
            "n_cells": [p.n_cells for p in test],
            "n_shared_cells": shared,
            "leaked": [s > 0 for s in shared],
        }
    )
    table.index.name = "puzzle"
    return table

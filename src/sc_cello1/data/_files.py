"""Reading and writing CellPuzzles files (``.json``, ``.jsonl``, ``.parquet``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sc_cello1._io import atomic_path
from sc_cello1._logging import logger

from ._puzzle import Puzzle

#: File suffixes :func:`read_puzzles` and :func:`write_puzzles` understand.
FORMATS = (".json", ".jsonl", ".parquet")

#: The columns of the public ``ncbi/CellPuzzles`` files, in order.
RECORD_KEYS = ("system_msg", "user_msg", "assistant_msg")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        msg = (
            f"{str(path)!r} has the suffix {suffix or '(none)'!r}; CellPuzzles files must "
            f"end with one of {', '.join(FORMATS)}."
        )
        raise ValueError(msg)
    return suffix


def iter_records(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, record)`` for each record of a ``.json``/``.jsonl``/``.parquet`` file.

    ``where`` names the position for error messages (``"line 3"``, ``"record 2"``,
    ``"row 5"``). A ``.json`` file holds a list of records (or a single record).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the suffix is unknown, the file is not valid JSON/JSON Lines/parquet, or an
        entry is not a JSON object; the message names the file and the line or row.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        msg = f"CellPuzzles file {str(path)!r} not found."
        raise FileNotFoundError(msg)
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    msg = f"{path}: line {lineno}: not valid JSON ({e.msg} at column {e.colno})."
                    raise ValueError(msg) from None
                if not isinstance(record, dict):
                    msg = f"{path}: line {lineno}: expected a JSON object, got {type(record).__name__}."
                    raise ValueError(msg)
                yield f"line {lineno}", record
    elif suffix == ".json":
        try:
            with path.open(encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            msg = f"{path}: line {e.lineno}: not valid JSON ({e.msg} at column {e.colno})."
            raise ValueError(msg) from None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            msg = f"{path}: expected a JSON list of records, got {type(data).__name__}."
            raise ValueError(msg)
        for i, record in enumerate(data):
            if not isinstance(record, dict):
                msg = f"{path}: record {i}: expected a JSON object, got {type(record).__name__}."
                raise ValueError(msg)
            yield f"record {i}", record
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as e:
            msg = f"{path}: not a readable parquet file ({e})."
            raise ValueError(msg) from None
        for i, record in enumerate(table.to_pylist()):
            yield f"row {i}", record


def _puzzle_from(record: Mapping[str, Any], where: str, path: Path) -> Puzzle:
    try:
        puzzle = Puzzle.from_record(record)
        if "cell_ids" in record and record["cell_ids"] is not None:
            puzzle.cell_ids = [str(c) for c in record["cell_ids"]]
        if record.get("group") is not None:
            puzzle.group = str(record["group"])
        if isinstance(record.get("meta"), Mapping):
            puzzle.meta = dict(record["meta"])
        elif isinstance(record.get("meta"), str) and record["meta"]:
            puzzle.meta = json.loads(record["meta"])
        puzzle.__post_init__()
    except (ValueError, TypeError) as e:
        msg = f"{path}: {where}: malformed CellPuzzles record: {e}"
        raise ValueError(msg) from None
    return puzzle


def read_puzzles(path: str | os.PathLike) -> list[Puzzle]:
    r"""Read CellPuzzles records from a ``.json``, ``.jsonl`` or ``.parquet`` file.

    Reads the files of the public ``ncbi/CellPuzzles`` dataset
    (``data/{train,test,reasoning}-*.parquet``, columns ``system_msg``, ``user_msg``,
    ``assistant_msg``; the ``reasoning`` split's ``assistant_msg`` is
    ``<think>...</think>\n<answer>...</answer>`` and is kept verbatim), the authors'
    JSON lists, and files written by :func:`write_puzzles`. The target may be under
    ``answer`` instead of ``assistant_msg``; a record without either gives a puzzle
    without answer. Other keys are ignored, except ``cell_ids``, ``group`` and ``meta``
    (written by ``write_puzzles(..., metadata=True)``), which are restored.

    Parameters
    ----------
    path
        The file; its suffix selects the format.

    Returns
    -------
    The puzzles, in file order.

    Raises
    ------
    ValueError
        If a record is malformed: the message names the file, the line (``.jsonl``),
        record (``.json``) or row (``.parquet``) and why.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> puzzles = cello1.data.read_puzzles("test-00000-of-00001.parquet")  # doctest: +SKIP
    >>> print(puzzles[0].user_msg)  # doctest: +SKIP
    """
    path = Path(path)
    puzzles = [_puzzle_from(record, where, path) for where, record in iter_records(path)]
    logger.info("read %d puzzles from %s", len(puzzles), path)
    return puzzles


def _jsonable_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(meta), default=str))


def _records(puzzles: Sequence[Puzzle], metadata: bool) -> list[dict[str, Any]]:
    records = []
    for p in puzzles:
        record: dict[str, Any] = p.to_record()
        if metadata:
            record["cell_ids"] = list(p.cell_ids)
            record["group"] = p.group
            record["meta"] = _jsonable_meta(p.meta)
        records.append(record)
    return records


def write_puzzles(
    puzzles: Sequence[Puzzle],
    path: str | os.PathLike,
    *,
    metadata: bool = False,
) -> Path:
    """Write puzzles as CellPuzzles records (``system_msg``, ``user_msg``, ``assistant_msg``).

    The format follows the suffix: ``.parquet`` (the layout of the public
    ``ncbi/CellPuzzles`` files: three string columns), ``.jsonl`` (one record per
    line) or ``.json`` (a list of records, indented as the authors wrote theirs). The
    file is written to a temporary file and moved into place, so an interrupted write
    never leaves a partial file under ``path``.

    Parameters
    ----------
    puzzles
        The puzzles.
    path
        Output file; parent folders are created.
    metadata
        Also write each puzzle's ``cell_ids``, ``group`` and ``meta`` (extra keys /
        columns that :func:`read_puzzles` restores). Off by default: the public layout.

    Returns
    -------
    The path written.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> cello1.data.write_puzzles(puzzles, "test.parquet")  # doctest: +SKIP
    """
    if isinstance(puzzles, Puzzle):
        puzzles = [puzzles]
    puzzles = list(puzzles)
    for i, p in enumerate(puzzles):
        if not isinstance(p, Puzzle):
            msg = f"puzzles[{i}] is a {type(p).__name__}, not a Puzzle."
            raise TypeError(msg)
    path = Path(path)
    suffix = _suffix(path)
    records = _records(puzzles, metadata)

    if suffix == ".json":

        def write(tmp: Path) -> None:
            with tmp.open("w", encoding="utf-8") as f:
                json.dump(records, f, indent=2, ensure_ascii=False)

    elif suffix == ".jsonl":

        def write(tmp: Path) -> None:
            with tmp.open("w", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")

    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns: dict[str, Any] = {
            key: pa.array([r[key] for r in records], type=pa.string()) for key in RECORD_KEYS
        }
        if metadata:
            columns["cell_ids"] = pa.array(
                [r["cell_ids"] for r in records], type=pa.list_(pa.string())
            )
            columns["group"] = pa.array([r["group"] for r in records], type=pa.string())
            columns["meta"] = pa.array(
                [json.dumps(r["meta"], ensure_ascii=False) for r in records], type=pa.string()
            )
        table = pa.table(columns)

        def write(tmp: Path) -> None:
            pq.write_table(table, tmp)

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write(tmp)
    logger.info("wrote %d puzzles to %s", len(puzzles), path)
    return path

"""``cello1 evaluate``: score a file of model completions with the paper's metrics."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

#: Keys that hold a model completion, in order of preference.
PREDICTION_KEYS = ("prediction", "text")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        help="score model completions: cell/batch accuracy, format rate, uniqueness",
        description=(
            "Score model completions with the Cell-o1 paper's metrics and print them with a "
            "per-N table. PREDICTIONS is a .jsonl/.json/.parquet file (or a folder of the "
            "authors' per-puzzle .json files) with one record per puzzle holding the "
            "completion ('prediction' or 'text') and the gold answer ('assistant_msg' or "
            "'answer'), or the output of `cello1 solve` (keys puzzle, sample, text, gold)."
        ),
    )
    p.add_argument("predictions", metavar="PREDICTIONS", help="file (or folder) of completions")
    p.add_argument(
        "--answers",
        metavar="PUZZLES",
        default=None,
        help="CellPuzzles file with the gold answers (by puzzle index / record order)",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=0,
        help="which sample to score when there are several per puzzle (default: 0)",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=_evaluate)


def _records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    from sc_cello1.data._files import iter_records

    if path.is_dir():
        files = sorted(
            path.glob("*.json"),
            key=lambda f: (0, int(f.stem), "") if f.stem.isdigit() else (1, 0, f.stem),
        )
        if not files:
            msg = f"folder {str(path)!r} has no .json files."
            raise ValueError(msg)
        return [(f"{f.name}: {where}", r) for f in files for where, r in iter_records(f)]
    return [(f"{path}: {where}", r) for where, r in iter_records(path)]


def _is_solve_record(record: dict[str, Any]) -> bool:
    # `cello1 solve` writes `answer` as the *extracted model answer*, never the gold.
    return "gold" in record or ("puzzle" in record and "sample" in record)


def _gold_of(record: dict[str, Any]) -> Any:
    if _is_solve_record(record):
        return record.get("gold")
    if record.get("assistant_msg") not in (None, ""):
        return record["assistant_msg"]
    return record.get("answer")


def load_predictions(
    path: str | os.PathLike, *, answers: str | os.PathLike | None = None, sample: int = 0
) -> tuple[list[str], list[Any]]:
    """Read completions and their gold answers for :func:`~sc_cello1.metrics.evaluate`.

    Parameters
    ----------
    path
        A ``.jsonl``, ``.json`` or ``.parquet`` file (or a folder of ``.json`` files, the
        authors' layout) with one record per puzzle: the completion under
        ``prediction`` or ``text``, the gold under ``assistant_msg`` or ``answer``. The
        output of ``cello1 solve`` (keys ``puzzle``, ``sample``, ``text``, ``answer``,
        ``gold``) is read too; there ``answer`` is the model's answer and the gold is
        ``gold``.
    answers
        A CellPuzzles file with the gold answers: matched by ``puzzle`` index for
        ``cello1 solve`` output, else by record order. Takes precedence over gold
        answers stored in the predictions.
    sample
        For ``cello1 solve`` output with several samples per puzzle, the sample to
        score.

    Returns
    -------
    ``(predictions, gold)``: completions and gold answers (``" | "``-joined strings or
    label lists), in puzzle order.

    Raises
    ------
    ValueError
        If a record has no completion or no gold answer; the message names the file
        and the line.
    """
    path = Path(path)
    if not path.exists():
        msg = f"predictions file {str(path)!r} not found."
        raise FileNotFoundError(msg)
    records = _records(path)
    if not records:
        msg = f"{path}: no records."
        raise ValueError(msg)
    solve = [_is_solve_record(r) for _, r in records]
    if any(solve):
        present = sorted({int(r["sample"]) for _, r in records if r.get("sample") is not None})
        picked = [(w, r) for w, r in records if int(r.get("sample") or 0) == sample]
        if not picked:
            msg = f"{path}: no records of sample {sample} (samples present: {present}); pass --sample."
            raise ValueError(msg)
        seen: set[int] = set()
        for w, r in picked:
            if "puzzle" not in r:
                msg = f"{w}: a `cello1 solve` record needs a 'puzzle' index."
                raise ValueError(msg)
            if int(r["puzzle"]) in seen:
                msg = f"{w}: puzzle {r['puzzle']} sample {sample} appears twice."
                raise ValueError(msg)
            seen.add(int(r["puzzle"]))
        records = sorted(picked, key=lambda wr: int(wr[1]["puzzle"]))

    predictions: list[str] = []
    for where, r in records:
        key = next((k for k in PREDICTION_KEYS if k in r), None)
        if key is None or not isinstance(r[key], str):
            msg = (
                f"{where}: no completion: expected a string under 'prediction' or 'text' "
                f"(keys: {sorted(r)})."
            )
            raise ValueError(msg)
        predictions.append(r[key])

    if answers is not None:
        from sc_cello1.data._files import read_puzzles

        puzzles = read_puzzles(answers)
        gold: list[Any] = []
        for where, r in records:
            i = int(r["puzzle"]) if any(solve) else len(gold)
            if i >= len(puzzles):
                msg = (
                    f"{where}: puzzle {i} has no answer in {answers} ({len(puzzles)} puzzles); "
                    "pass the puzzles file the predictions were made from."
                )
                raise ValueError(msg)
            if puzzles[i].answer is None:
                msg = f"{answers}: puzzle {i} has no answer (empty assistant_msg)."
                raise ValueError(msg)
            gold.append(puzzles[i].answer)
        if not any(solve) and len(puzzles) != len(records):
            msg = (
                f"{len(records)} predictions but {len(puzzles)} puzzles in {answers}; "
                "give one prediction per puzzle, in the same order."
            )
            raise ValueError(msg)
        return predictions, gold

    gold = []
    for where, r in records:
        g = _gold_of(r)
        if g is None or (isinstance(g, str) and not g.strip()) or not isinstance(g, str | list):
            msg = (
                f"{where}: no gold answer: expected 'assistant_msg' or 'answer' ('gold' for "
                "`cello1 solve` output), or pass --answers PUZZLES."
            )
            raise ValueError(msg)
        gold.append(g)
    return predictions, gold


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _evaluate(args: argparse.Namespace) -> int:
    from ._evaluate import evaluate, evaluate_by_size

    predictions, gold = load_predictions(args.predictions, answers=args.answers, sample=args.sample)
    overall = evaluate(predictions, gold)
    table = evaluate_by_size(predictions, gold)
    if args.json:
        by_size = {
            str(n): {k: _json_safe(v) for k, v in row.items()}
            for n, row in table.drop(index="all").to_dict(orient="index").items()
        }
        print(json.dumps({"overall": overall, "by_size": by_size}, indent=2))
        return 0
    print(f"predictions      {args.predictions}")
    print(f"puzzles          {overall['n_puzzles']} ({overall['n_cells']} cells)")
    print(f"cell accuracy    {overall['cell_accuracy']:.4f}")
    print(f"batch accuracy   {overall['batch_accuracy']:.4f}")
    print(f"format rate      {overall['format_rate']:.4f}")
    print(f"uniqueness       {overall['uniqueness']:.4f}")
    print(f"mean reward      {overall['mean_reward']:.4f}")
    print()
    shown = table[["n_puzzles", "cell_accuracy", "batch_accuracy", "format_rate", "uniqueness"]]
    print(shown.to_string(float_format=lambda x: f"{x:.4f}"))
    return 0

"""The paper's evaluation: cell- and batch-level accuracy, format rate, uniqueness."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sc_cello1._answer import extract_answer, is_valid_format, split_items

from ._reward import _gold_items

if TYPE_CHECKING:
    import pandas as pd

    from sc_cello1.data import Puzzle


def _as_gold(answer: Any) -> list[str]:
    from sc_cello1.data._puzzle import Puzzle

    if isinstance(answer, Puzzle):
        if answer.answer is None:
            msg = "A Puzzle given as gold answer has no `answer`."
            raise ValueError(msg)
        return list(answer.answer)
    return _gold_items(answer)


def score_completion(completion: str, answer: str | Sequence[str] | Puzzle) -> dict[str, Any]:
    """Score one completion against its gold answer, as the authors' ``eval.py`` does.

    Returns
    -------
    A dict with ``n_cells`` (gold items), ``correct`` (items right by position,
    case-insensitive), ``exact`` (all right), ``valid`` (format valid), ``uniqueness``
    (distinct / total predicted items, 0 if invalid), ``answer`` (extracted string) and
    ``reward`` (:func:`~sc_cello1.metrics.reward`). An invalid completion scores 0 but its
    cells count. A valid answer of the wrong length is scored position by position. An
    empty gold answer scores 0 everywhere (``valid`` False), as in ``eval.py``.
    """
    from ._reward import reward

    gold = _as_gold(answer)
    extracted = extract_answer(completion)
    valid = is_valid_format(completion)
    out: dict[str, Any] = {
        "n_cells": len(gold),
        "correct": 0,
        "exact": False,
        "valid": valid,
        "uniqueness": 0.0,
        "answer": extracted,
        "reward": reward(completion, gold),
    }
    if not gold:
        # eval.py scores a record without gold items as 0 everywhere, format included
        out["valid"] = False
        return out
    if not valid:
        return out
    pred = split_items(extracted)
    correct = sum(p.lower() == g.lower() for p, g in zip(pred, gold, strict=False))
    out["correct"] = correct
    out["exact"] = correct == len(gold)
    out["uniqueness"] = len(set(pred)) / len(pred) if pred else 0.0
    return out


def _summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    total = sum(r["n_cells"] for r in rows)
    return {
        "cell_accuracy": sum(r["correct"] for r in rows) / total if total else 0.0,
        "batch_accuracy": sum(bool(r["exact"]) for r in rows) / n if n else 0.0,
        "format_rate": sum(bool(r["valid"]) for r in rows) / n if n else 0.0,
        "uniqueness": sum(r["uniqueness"] for r in rows) / n if n else 0.0,
        "mean_reward": sum(r["reward"] for r in rows) / n if n else 0.0,
        "n_puzzles": n,
        "n_cells": total,
    }


def _score_all(predictions: Sequence[str], answers: Sequence[Any]) -> list[dict[str, Any]]:
    if isinstance(predictions, str) or isinstance(answers, str):
        msg = "`predictions` and `answers` must be lists (one entry per puzzle), not strings."
        raise TypeError(msg)
    if len(predictions) != len(answers):
        msg = (
            f"{len(predictions)} predictions for {len(answers)} answers: give one prediction "
            "per puzzle, in the same order."
        )
        raise ValueError(msg)
    rows = []
    for i, (p, a) in enumerate(zip(predictions, answers, strict=True)):
        if not isinstance(p, str):
            msg = f"prediction {i} is a {type(p).__name__}, not a string (the model's completion)."
            raise TypeError(msg)
        rows.append(score_completion(p, a))
    return rows


def evaluate(predictions: Sequence[str], answers: Sequence[Any]) -> dict[str, Any]:
    r"""Compute the paper's metrics over a set of puzzles.

    Parameters
    ----------
    predictions
        The model's completion for each puzzle.
    answers
        The gold answer of each puzzle: ``" | "``-joined strings, label lists, or
        :class:`~sc_cello1.data.Puzzle` objects with ``answer``.

    Returns
    -------
    A dict with ``cell_accuracy`` (correct items / all gold items, micro-averaged; an
    invalid answer scores 0 but its cells count), ``batch_accuracy`` (share of puzzles
    all correct), ``format_rate`` (share of valid answers), ``uniqueness`` (mean of
    distinct / total items, 0 for invalid answers), ``mean_reward`` (mean GRPO reward),
    ``n_puzzles`` and ``n_cells``.

    Examples
    --------
    >>> evaluate(["<think>.</think>\n<answer>B | T</answer>"], ["B | T"])["batch_accuracy"]
    1.0
    """
    return _summarise(_score_all(predictions, answers))


def evaluate_by_size(predictions: Sequence[str], answers: Sequence[Any]) -> pd.DataFrame:
    """:func:`evaluate` per puzzle size N (number of gold items), plus an ``all`` row.

    Returns
    -------
    A :class:`pandas.DataFrame` indexed by N with the columns of :func:`evaluate`.
    """
    import pandas as pd

    rows = _score_all(predictions, answers)
    sizes = sorted({r["n_cells"] for r in rows})
    table = {n: _summarise([r for r in rows if r["n_cells"] == n]) for n in sizes}
    table["all"] = _summarise(rows)
    df = pd.DataFrame.from_dict(table, orient="index")
    df.index.name = "n"
    return df

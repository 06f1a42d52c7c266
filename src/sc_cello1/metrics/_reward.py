"""The authors' GRPO reward, and a trl-compatible reward function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sc_cello1._answer import ANSWER_OPEN, extract_answer, is_valid_format, split_items


def _gold_items(answer: str | Sequence[str]) -> list[str]:
    if isinstance(answer, str):
        if ANSWER_OPEN in answer:
            # a full target such as the public `reasoning` split's assistant_msg
            return split_items(extract_answer(answer))
        return split_items(answer)
    return [str(a).strip() for a in answer if str(a).strip()]


def reward(completion: str, answer: str | Sequence[str]) -> float:
    r"""Compute the Cell-o1 GRPO reward of one completion.

    ``-1`` if the format is invalid (:func:`is_valid_format`), the number of answer
    items differs from the gold, or items repeat; otherwise the mean of the puzzle's
    cell-level accuracy and its exact-match indicator. Items match by position,
    case-insensitively.

    Parameters
    ----------
    completion
        The model's full completion.
    answer
        The gold answer: a ``" | "``-joined string or a list of labels in cell order.

    Returns
    -------
    A reward in ``{-1} ∪ [0, 1]``.

    Examples
    --------
    >>> reward("<think>.</think>\n<answer>b | T</answer>", "B | T")
    1.0
    >>> reward("<think>.</think>\n<answer>T | B</answer>", "B | T")
    0.0
    >>> reward("<answer>B | T</answer>", "B | T")
    -1.0
    """
    gold = _gold_items(answer)
    if not is_valid_format(completion):
        return -1.0
    pred = split_items(extract_answer(completion))
    if len(pred) != len(gold) or len(set(pred)) != len(pred):
        return -1.0
    correct = sum(p.lower() == g.lower() for p, g in zip(pred, gold, strict=True))
    cell_acc = correct / len(gold) if gold else 0.0
    return (cell_acc + float(correct == len(gold))) / 2


def _completion_text(completion: Any) -> str:
    # trl passes plain strings, or message lists for conversational datasets.
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def cellpuzzles_reward(
    completions: Sequence[Any], answer: Sequence[Any], **kwargs: Any
) -> list[float]:
    """Reward function with trl's signature: ``(completions, **columns) -> list[float]``.

    Parameters
    ----------
    completions
        Completions as strings or conversational message lists.
    answer
        The gold answer of each completion (the dataset's ``answer`` column).
    **kwargs
        Other dataset columns, ignored.

    Returns
    -------
    One :func:`reward` per completion.
    """
    return [reward(_completion_text(c), a) for c, a in zip(completions, answer, strict=True)]

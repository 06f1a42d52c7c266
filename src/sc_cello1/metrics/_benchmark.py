"""The paper's table: metrics per puzzle size N, full split and clean subset, reported figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._evaluate import _score_all, _summarise

if TYPE_CHECKING:
    import pandas as pd

#: The columns of :func:`benchmark_table`.
TABLE_COLUMNS = (
    "subset",
    "n",
    "cell_accuracy",
    "batch_accuracy",
    "format_rate",
    "uniqueness",
    "mean_reward",
    "n_puzzles",
    "n_cells",
)

_METRICS = ("cell_accuracy", "batch_accuracy", "format_rate", "uniqueness", "mean_reward")

#: Figures reported for the full public test split (1,095 puzzles), batch-level accuracy.
#: Only these two overall figures are known here; per-N figures of the paper are not.
REPORTED = (
    {
        "model": "OpenAI o1",
        "subset": "full",
        "n": "all",
        "metric": "batch_accuracy",
        "value": 0.190,
        "source": "reported: Cell-o1 paper (arXiv 2506.02911), best off-the-shelf baseline",
    },
    {
        "model": "Cell-o1 (7B)",
        "subset": "full",
        "n": "all",
        "metric": "batch_accuracy",
        "value": 0.329,
        "source": "reported: summaries of the Cell-o1 paper (about 73% above o1)",
    },
)


def reported_figures() -> pd.DataFrame:
    """Return the published figures to set a benchmark next to (full test split, batch level).

    Returns
    -------
    A :class:`pandas.DataFrame` with the columns ``model``, ``subset``, ``n``,
    ``metric``, ``value`` and ``source`` (each ``source`` starts with ``"reported"``:
    these are quoted, not measured by sc-cello1).

    Examples
    --------
    >>> from sc_cello1.metrics import reported_figures
    >>> reported_figures().set_index("model").loc["OpenAI o1", "value"]
    np.float64(0.19)
    """
    import pandas as pd

    return pd.DataFrame(
        list(REPORTED), columns=["model", "subset", "n", "metric", "value", "source"]
    )


def _rows(subset: str, scored: list[dict[str, Any]], sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for n in [*sizes, "all"]:
        part = scored if n == "all" else [r for r in scored if r["n_cells"] == n]
        summary = _summarise(part)
        if not part:  # no puzzle: no figure (not a score of 0)
            summary.update(dict.fromkeys(_METRICS, float("nan")))
        rows.append({"subset": subset, "n": str(n), **summary})
    return rows


def benchmark_table(
    predictions: Sequence[str],
    answers: Sequence[Any],
    *,
    clean: Sequence[bool] | None = None,
) -> pd.DataFrame:
    r"""Score with the paper's metrics per puzzle size N and overall, full set and clean subset.

    Parameters
    ----------
    predictions
        The model's completion for each puzzle.
    answers
        The gold answer of each puzzle (strings, label lists or puzzles), as for
        :func:`~sc_cello1.metrics.evaluate`.
    clean
        One flag per puzzle: ``True`` for puzzles in the clean subset (no cell shared
        with the train split, see :func:`~sc_cello1.data.leakage`). ``None``: no clean rows.

    Returns
    -------
    A :class:`pandas.DataFrame` in long form with the columns ``subset`` (``"full"``,
    then ``"clean"``), ``n`` (each N present, as a string, then ``"all"``) and the
    metrics of :func:`~sc_cello1.metrics.evaluate` (``cell_accuracy``,
    ``batch_accuracy``, ``format_rate``, ``uniqueness``, ``mean_reward``, ``n_puzzles``,
    ``n_cells``). Both subsets have a row for every N of the full set; where a subset
    has no puzzle of that N the metrics are NaN.

    Examples
    --------
    >>> from sc_cello1.metrics import benchmark_table
    >>> t = benchmark_table(
    ...     ["<think>.</think>\n<answer>B | T</answer>", "<think>.</think>\n<answer>T | B</answer>"],
    ...     ["B | T", "B | T"],
    ...     clean=[True, False],
    ... )
    >>> t[t.n == "all"][["subset", "batch_accuracy", "n_puzzles"]].values.tolist()
    [['full', 0.5, 2], ['clean', 1.0, 1]]
    """
    import pandas as pd

    scored = _score_all(predictions, answers)
    if clean is not None:
        if isinstance(clean, str) or len(clean) != len(scored):
            msg = f"clean must have one flag per puzzle ({len(scored)}), got {clean!r:.80}."
            raise ValueError(msg)
        clean = [bool(c) for c in clean]
    sizes = sorted({r["n_cells"] for r in scored})
    rows = _rows("full", scored, sizes)
    if clean is not None:
        rows += _rows("clean", [r for r, c in zip(scored, clean, strict=True) if c], sizes)
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))

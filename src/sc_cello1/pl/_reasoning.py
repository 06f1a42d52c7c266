"""``cello1.pl.reasoning``: a readable view of the model's reasoning about one cluster."""

from __future__ import annotations

import html
import json
import os
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sc_cello1._answer import strip_tags

from ._annotation import check_annotated

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes


@dataclass
class ClusterReasoning:
    """The reasoning behind one cluster's answer in one puzzle.

    Shown as text by ``str()`` and ``print()``, as HTML in notebooks, and as a
    matplotlib figure by :meth:`plot`.

    Attributes
    ----------
    cluster
        The cluster.
    label
        The cluster's final label (over all samples).
    confidence
        The share of votes behind :attr:`label`.
    sample
        Which sample (puzzle draw) this is.
    donor
        The donor group of the puzzle (empty without ``donor_key``).
    cell
        The cluster's position in the puzzle (``Cell {cell}`` in the prompt and reasoning).
    answer
        The label this puzzle gave the cluster (empty when the answer named none).
    reasoning
        The model's think text (the raw completion when it had no ``<think>`` part).
    user_msg
        The puzzle as asked.
    clusters
        The clusters of the puzzle, in cell order.
    """

    cluster: str
    label: str
    confidence: float
    sample: int
    donor: str
    cell: int
    answer: str
    reasoning: str
    user_msg: str
    clusters: list[str]

    def header(self) -> str:
        """One line: cluster, label, confidence and this puzzle's answer."""
        donor = f", donor {self.donor}" if self.donor else ""
        return (
            f"Cluster {self.cluster}: {self.label or '(no label)'} (confidence {self.confidence:.2f}); "
            f"sample {self.sample}{donor}: Cell {self.cell} of {len(self.clusters)}, "
            f"answered {self.answer or '(none)'}"
        )

    def __str__(self) -> str:
        body = self.reasoning.strip() or "(the model gave no reasoning)"
        return f"{self.header()}\n\n{body}"

    def _repr_html_(self) -> str:
        body = html.escape(self.reasoning.strip() or "(the model gave no reasoning)")
        puzzle = html.escape(self.user_msg)
        return (
            f"<div><p><b>{html.escape(self.header())}</b></p>"
            f"<pre style='white-space: pre-wrap'>{body}</pre>"
            f"<details><summary>Puzzle asked</summary>"
            f"<pre style='white-space: pre-wrap'>{puzzle}</pre></details></div>"
        )

    def plot(
        self,
        *,
        width: int = 100,
        max_lines: int = 60,
        ax: Axes | None = None,
        show: bool | None = None,
        save: str | os.PathLike | None = None,
    ) -> Axes | None:
        """Draw the reasoning as wrapped text in a matplotlib figure.

        Parameters
        ----------
        width
            Characters per line.
        max_lines
            Lines drawn at most; longer reasoning is cut with ``[...]``.
        ax
            Axes to draw into; a new figure sized to the text by default.
        show
            Show the figure; ``None``: as :attr:`scanpy.settings.autoshow`.
        save
            File to write the figure to (format from the suffix, e.g. ``.png``).

        Returns
        -------
        The axes when ``show`` is ``False``, else ``None``.
        """
        import matplotlib.pyplot as plt

        lines: list[str] = []
        for para in (self.reasoning.strip() or "(the model gave no reasoning)").splitlines():
            lines.extend(textwrap.wrap(para, width=width) or [""])
        if len(lines) > max_lines:
            lines = [*lines[:max_lines], "[...]"]
        fig: Any
        if ax is None:
            fig, ax = plt.subplots(figsize=(width * 0.085, 0.6 + 0.19 * (len(lines) + 2)))
        else:
            fig = ax.figure
        ax.set_axis_off()
        ax.set_title(self.header(), loc="left", fontsize=9, fontweight="bold")
        ax.text(
            0.0,
            1.0,
            "\n".join(lines),
            va="top",
            ha="left",
            family="monospace",
            fontsize=8,
            transform=ax.transAxes,
        )
        if save is not None:
            fig.savefig(save, bbox_inches="tight")
        if show is None:
            import scanpy as sc

            show = bool(sc.settings.autoshow)
        if show:
            plt.show()
            return None
        return ax


def reasoning(
    adata: AnnData,
    cluster: str | int,
    *,
    key: str = "cello1",
    sample: int = 0,
    donor: str | None = None,
) -> ClusterReasoning:
    """Show the model's reasoning about one cluster in one sample.

    Parameters
    ----------
    adata
        Annotated data matrix with the results of :func:`sc_cello1.tl.annotate`.
    cluster
        The cluster (a category of the ``groupby`` column; ``3`` and ``"3"`` are the same).
    key
        The ``key_added`` used in :func:`~sc_cello1.tl.annotate`.
    sample
        Which of the ``n_samples`` puzzles that showed the cluster.
    donor
        With ``donor_key``: the donor whose puzzle to show; ``None``: the first donor
        with cells of the cluster.

    Returns
    -------
    A :class:`ClusterReasoning`: ``print()`` it for text, display it in a notebook for
    HTML, or call :meth:`~ClusterReasoning.plot` for a figure.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> view = cello1.pl.reasoning(adata, "3", sample=0)  # doctest: +SKIP
    >>> print(view)  # doctest: +SKIP
    >>> view.plot(save="cluster3.png", show=False)  # doctest: +SKIP
    """
    check_annotated(adata, key)
    uns = adata.uns[key]
    for part in ("clusters", "reasoning", "puzzles"):
        if part not in uns:
            msg = f"`uns[{key!r}]` has no {part!r}; run `cello1.tl.annotate` again."
            raise KeyError(msg)
    table = uns["reasoning"]
    name = str(cluster)
    clusters = [str(c) for c in uns["clusters"].index]
    if name not in clusters:
        msg = f"Cluster {name!r} not found; the annotated clusters are {clusters}."
        raise KeyError(msg)
    if isinstance(sample, bool) or not isinstance(sample, int):
        msg = f"`sample` must be an integer, got {sample!r}."
        raise TypeError(msg)
    rows = table[table["cluster"].astype(str) == name]
    if "known" in rows.columns:  # an anchor's answer is an ask when it voted (or was displaced)
        asks = rows["known"].astype(str) == ""
        for col in ("counted", "displaced"):
            if col in rows.columns:
                asks |= rows[col].astype(bool)
        rows = rows[asks]
    samples = sorted({int(s) for s in rows["sample"]})
    if sample not in samples:
        msg = f"sample={sample} not found for cluster {name!r}; choose one of {samples}."
        raise ValueError(msg)
    rows = rows[rows["sample"].astype(int) == sample]
    if donor is not None:
        donors = [str(d) for d in rows["donor"]]
        if str(donor) not in donors:
            msg = f"donor={donor!r} has no puzzle with cluster {name!r}; choose one of {donors}."
            raise ValueError(msg)
        rows = rows[rows["donor"].astype(str) == str(donor)]
    row = rows.iloc[0]
    puzzle = uns["puzzles"].loc[str(int(row["puzzle"]))]
    # the reasoning is stored once per puzzle (not per cluster); older results kept it per row
    stored = row["reasoning"] if "reasoning" in row.index else puzzle.get("reasoning", "")
    text = ("" if _is_missing(stored) else str(stored)) or strip_tags(str(puzzle["text"]))
    info = uns["clusters"].loc[uns["clusters"].index.astype(str) == name].iloc[0]
    label = info["label"]
    return ClusterReasoning(
        cluster=name,
        label="" if _is_missing(label) else str(label),
        confidence=float(info["confidence"]),
        sample=sample,
        donor=str(row["donor"]),
        cell=int(row["cell"]),
        answer=str(row["answer"]),
        reasoning=text,
        user_msg=str(puzzle["user_msg"]),
        clusters=[str(c) for c in json.loads(puzzle["clusters"])],
    )


def _is_missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))

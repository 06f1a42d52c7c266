"""The report of ``tl.benchmark``: the summary text, the bar chart and the files written."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sc_cello1._logging import logger

if TYPE_CHECKING:
    import pandas as pd

#: Files written into ``output_dir``.
OUTPUT_FILES = {
    "csv": "benchmark.csv",
    "json": "benchmark.json",
    "png": "benchmark.png",
    "predictions": "predictions.jsonl",
}


def _pct(value: float) -> str:
    return "   -  " if value != value else f"{100 * value:5.1f}%"  # NaN -> "-"


def summary_text(table: pd.DataFrame, reported: pd.DataFrame, prov: Mapping[str, Any]) -> str:
    model, data = prov["model"], prov["dataset"]
    lines = [
        f"model   {model['name']} @ {model['revision']} ({prov['backend']}, {model['source']})",
        f"data    {data['repo']} @ {data['revision']}, split {data['split']}: "
        f"{prov['n_puzzles']} of {prov['n_puzzles_split']} puzzles"
        + (f" (--limit {prov['limit']}, stratified by N)" if prov["limit"] else ""),
        f"clean   {prov['n_clean']} of {prov['n_puzzles']} puzzles share no cell with the train "
        f"split (by {prov['leakage_by']} gene list)"
        if prov["n_clean"] is not None
        else "clean   (not computed for the train split)",
        f"prompt  {prov['prompt_style']} (version {prov['prompt_version']}), greedy, "
        f"max_new_tokens {prov['max_new_tokens']}; sc-cello1 {prov['sc_cello1']}",
        "",
        f"{'N':>4}  {'full: batch':>11} {'cell':>7} {'format':>7} {'n':>5}   "
        f"{'clean: batch':>12} {'cell':>7} {'format':>7} {'n':>5}",
    ]
    full = table[table["subset"] == "full"].set_index("n")
    clean = table[table["subset"] == "clean"].set_index("n")
    for n in full.index:
        f = full.loc[n]
        row = (
            f"{n:>4}  {_pct(f['batch_accuracy']):>11} {_pct(f['cell_accuracy']):>7} "
            f"{_pct(f['format_rate']):>7} {int(f['n_puzzles']):>5}"
        )
        if n in clean.index:
            c = clean.loc[n]
            row += (
                f"   {_pct(c['batch_accuracy']):>12} {_pct(c['cell_accuracy']):>7} "
                f"{_pct(c['format_rate']):>7} {int(c['n_puzzles']):>5}"
            )
        lines.append(row)
    lines += ["", "reported (full test split of 1,095 puzzles, batch-level accuracy; quoted):"]
    lines += [f"  {r.model:<14} {100 * r.value:5.1f}%   {r.source}" for r in reported.itertuples()]
    if not prov["comparable_to_reported"]:
        lines.append(
            "note: not comparable with the reported figures as run (a subset, another split, "
            "or fewer new tokens than the paper's 3,500)."
        )
    return "\n".join(lines)


def plot(table: pd.DataFrame, reported: pd.DataFrame, prov: Mapping[str, Any], path: Path) -> bool:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning(
            "matplotlib is not installed: no bar chart written (pip install 'sc-cello1[plot]')."
        )
        return False
    import numpy as np

    full = table[table["subset"] == "full"].set_index("n")
    clean = table[table["subset"] == "clean"].set_index("n")
    labels = list(full.index)
    x = np.arange(len(labels))
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric, title in zip(
        axes,
        ("batch_accuracy", "cell_accuracy"),
        ("batch-level accuracy", "cell-level accuracy"),
        strict=True,
    ):
        width = 0.4 if len(clean) else 0.8
        ax.bar(
            x - (width / 2 if len(clean) else 0), full[metric].to_numpy() * 100, width, label="full"
        )
        if len(clean):
            ax.bar(
                x + width / 2, clean.reindex(labels)[metric].to_numpy() * 100, width, label="clean"
            )
        if metric == "batch_accuracy":
            for r, style in zip(reported.itertuples(), ("--", ":"), strict=False):
                ax.axhline(100 * r.value, color="0.3", linestyle=style, linewidth=1)
                ax.text(
                    x[-1] + 0.45,
                    100 * r.value,
                    f"{r.model} (reported)",
                    fontsize=7,
                    va="bottom",
                    ha="right",
                )
        ax.set_xticks(x, labels)
        ax.set_xlabel("puzzle size N")
        ax.set_title(title)
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("%")
    axes[0].legend(loc="upper left", fontsize=8)
    model = prov["model"]
    revision = str(model["revision"] or "")[:12]
    fig.suptitle(
        f"{model['name']} @ {revision} on {prov['dataset']['repo']} {prov['dataset']['split']} "
        f"({prov['n_puzzles']} puzzles)",
        fontsize=10,
    )
    fig.savefig(path, dpi=120)
    return True


def _write_text(path: Path, text: str) -> None:
    from sc_cello1._io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as f:
        f.write(text)


def write_files(
    out: Path,
    table: pd.DataFrame,
    reported: pd.DataFrame,
    provenance: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    *,
    chosen: Sequence[int],
    clean: Sequence[bool] | None,
) -> dict[str, Path]:
    """Write ``benchmark.csv``, ``benchmark.json``, ``predictions.jsonl`` (and the chart)."""
    out.mkdir(parents=True, exist_ok=True)
    files = {k: out / v for k, v in OUTPUT_FILES.items()}
    csv = table.copy()
    csv.insert(0, "model", provenance["model"]["name"])
    csv.insert(1, "model_revision", provenance["model"]["revision"])
    csv.insert(2, "dataset_revision", provenance["dataset"]["revision"])
    _write_text(files["csv"], csv.to_csv(index=False))
    document = {
        "provenance": provenance,
        "table": json.loads(table.to_json(orient="records")),
        "reported": json.loads(reported.to_json(orient="records")),
    }
    _write_text(files["json"], json.dumps(document, indent=1, default=str) + "\n")
    _write_text(
        files["predictions"],
        "".join(
            json.dumps(
                {
                    **r,
                    "split_row": chosen[r["puzzle"]],
                    "clean": None if clean is None else clean[r["puzzle"]],
                },
                ensure_ascii=False,
            )
            + "\n"
            for r in records
        ),
    )
    if not plot(table, reported, provenance, files["png"]):
        files.pop("png")
    return files

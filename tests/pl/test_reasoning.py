from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

import sc_cello1 as cello1


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.slow
def test_reasoning_view_text_html_and_figure(annotated, tmp_path):
    uns = annotated.uns["cello1"]
    cluster = "CD19+ B"
    view = cello1.pl.reasoning(annotated, cluster, sample=1)
    assert isinstance(view, cello1.pl.ClusterReasoning)
    row = uns["reasoning"][
        (uns["reasoning"]["cluster"] == cluster) & (uns["reasoning"]["sample"] == 1)
    ].iloc[0]
    assert view.cell == row["cell"] and view.answer == row["answer"]
    assert view.clusters[view.cell - 1] == cluster
    assert view.user_msg == uns["puzzles"].loc[str(row["puzzle"]), "user_msg"]
    label = uns["clusters"].loc[cluster, "label"]
    assert view.label == ("" if label != label else str(label))
    text = str(view)
    assert text.startswith(f"Cluster {cluster}: ")
    assert f"Cell {view.cell} of {len(view.clusters)}" in text  # puzzles hold 2+ clusters
    html = view._repr_html_()
    assert "<pre" in html and "Match the cells above" in html
    out = tmp_path / "reasoning.png"
    ax = view.plot(save=out, show=False, width=60)
    assert out.stat().st_size > 2_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ax.get_title(loc="left") == view.header()
    (body,) = ax.texts
    assert body.get_text().replace("\n", " ").split()[:3] == view.reasoning.split()[:3]


def test_reasoning_wraps_and_cuts_long_text():
    view = cello1.pl.ClusterReasoning(
        cluster="3", label="B cell", confidence=0.8, sample=0, donor="d1", cell=2,
        answer="B cell", reasoning="word " * 2000, user_msg="Context: x", clusters=["1", "3"],
    )  # fmt: skip
    ax = view.plot(width=50, max_lines=10, show=False)
    lines = ax.texts[0].get_text().splitlines()
    assert len(lines) == 11 and lines[-1] == "[...]"
    assert max(len(line) for line in lines) <= 50
    assert "donor d1" in view.header() and "confidence 0.80" in view.header()
    empty = cello1.pl.ClusterReasoning(
        cluster="3", label="", confidence=0.0, sample=0, donor="", cell=1,
        answer="", reasoning="", user_msg="<b>", clusters=["3"],
    )  # fmt: skip
    assert "(no label)" in str(empty) and "no reasoning" in str(empty)
    assert "&lt;b&gt;" in empty._repr_html_()


@pytest.mark.slow
def test_reasoning_bad_input(annotated):
    with pytest.raises(KeyError, match=r"run `cello1\.tl\.annotate` first"):
        cello1.pl.reasoning(annotated, "CD19+ B", key="nope")
    with pytest.raises(KeyError, match="annotated clusters are"):
        cello1.pl.reasoning(annotated, "T cell")
    rows = annotated.uns["cello1"]["reasoning"]
    mine = rows[(rows["cluster"] == "CD19+ B") & ((rows["known"] == "") | rows["counted"])]
    samples = sorted(int(s) for s in mine["sample"])
    assert samples == list(range(len(samples)))  # one number per ask, anchors' included
    with pytest.raises(ValueError, match=re.escape(f"choose one of {samples}")):
        cello1.pl.reasoning(annotated, "CD19+ B", sample=len(samples))
    with pytest.raises(TypeError, match="integer"):
        cello1.pl.reasoning(annotated, "CD19+ B", sample="0")
    with pytest.raises(ValueError, match="donor="):
        cello1.pl.reasoning(annotated, "CD19+ B", donor="X")

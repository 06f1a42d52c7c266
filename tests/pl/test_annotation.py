from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scanpy as sc
from matplotlib.collections import PathCollection

import sc_cello1 as cello1


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.slow
def test_annotation_draws_labels_and_confidence_panels(annotated, tmp_path):
    axes = cello1.pl.annotation(annotated, basis="umap", show=False)
    assert len(axes) == 2
    labels_ax, conf_ax = axes
    assert labels_ax.get_title() == "Cell-o1 label"
    assert conf_ax.get_title() == "confidence"
    legend = [t.get_text() for t in labels_ax.get_legend().get_texts()]
    assert legend == [str(c) for c in annotated.obs["cello1"].cat.categories]
    points = [c for c in conf_ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in points) == annotated.n_obs
    colorbar = [im for im in points if im.get_array() is not None]
    assert colorbar and colorbar[0].get_clim() == (0.0, 1.0)
    np.testing.assert_allclose(
        np.sort(np.asarray(colorbar[0].get_array())),
        np.sort(annotated.obs["cello1_confidence"].to_numpy()),
    )
    out = tmp_path / "annotation.png"
    labels_ax.figure.savefig(out)
    assert out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_annotation_save_and_single_panel(annotated, tmp_path):
    figdir = sc.settings.figdir
    sc.settings.figdir = tmp_path
    try:
        ax = cello1.pl.annotation(annotated, confidence=False, show=False, save="_cello1.png")
    finally:
        sc.settings.figdir = figdir
    assert ax.get_title() == "Cell-o1 label"
    (png,) = tmp_path.glob("*_cello1.png")
    assert png.stat().st_size > 5_000


@pytest.mark.slow
def test_annotation_bad_input(annotated):
    with pytest.raises(KeyError, match=r"run `cello1\.tl\.annotate` first"):
        cello1.pl.annotation(annotated, key="other")
    with pytest.raises(KeyError, match=r"`obsm\['X_tsne'\]` not found; run `sc.tl.tsne` first"):
        cello1.pl.annotation(annotated, basis="tsne")
    no_conf = annotated.copy()
    del no_conf.obs["cello1_confidence"]
    with pytest.raises(KeyError, match="confidence=False"):
        cello1.pl.annotation(no_conf)
    with pytest.raises(TypeError, match="AnnData"):
        cello1.pl.annotation(annotated.obs)

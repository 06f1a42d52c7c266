from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def annotated(tiny_qwen2):
    """pbmc68k_reduced (4 cell types) annotated by the tiny Qwen2 with constrained answers."""
    import scanpy as sc

    import sc_cello1 as cello1

    adata = sc.datasets.pbmc68k_reduced()
    types = ["CD14+ Monocyte", "CD19+ B", "CD56+ NK", "Dendritic"]
    adata = adata[adata.obs["bulk_labels"].isin(types)].copy()
    cello1.tl.annotate(
        adata,
        "bulk_labels",
        candidates=types,
        model=tiny_qwen2,
        backend="transformers",
        use_raw=True,
        n_genes=8,
        n_samples=2,
        max_new_tokens=60,
        constrained=True,
    )
    return adata

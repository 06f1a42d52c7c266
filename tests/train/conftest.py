from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def train_puzzles():
    """Small real puzzles (2-3 cells, 5 genes) from pbmc68k_reduced's raw expression."""
    import scanpy as sc

    import sc_cello1 as cello1

    adata = sc.datasets.pbmc68k_reduced()
    puzzles = cello1.data.build_puzzles(
        adata,
        cell_type_key="bulk_labels",
        donor_key=None,
        n_cells=(2, 3),
        per_size=4,
        n_genes=5,
        use_raw=True,
        seed=0,
    )
    assert len(puzzles) == 8 and all(p.answer for p in puzzles)
    return puzzles


def length_reward(completions, answer, **kwargs):
    """A test reward with variance on an untrained model: longer completions score higher."""
    return [min(len(c), 60) / 60 for c in completions]

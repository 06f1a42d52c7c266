"""Time and memory of what ``cello1.tl.annotate`` does before the model runs.

Builds a synthetic sparse AnnData (counts-like, CSR) with clusters and donors, then
times validation + representative cells + top genes + puzzle building (the model is
not loaded: ``check_data``, ``choose_cells`` and ``make_layout`` (round 1) are the steps
``annotate`` runs before the backend answers). Prints one line per setting.

    .venv/bin/python benchmarks/bench_annotate_prepare.py --cells 200000 --genes 20000
"""

from __future__ import annotations

import argparse
import resource
import time

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from sc_cello1.tl._annotate_checks import check_data
from sc_cello1.tl._annotate_config import AnnotateConfig
from sc_cello1.tl._annotate_plan import choose_cells, make_layout
from sc_cello1.tl._layout import Tally


def synthetic(
    n_cells: int, n_genes: int, n_clusters: int, n_donors: int, density: float, seed: int = 0
):
    rng = np.random.default_rng(seed)
    k = max(1, int(density * n_genes))
    indices = np.sort(rng.integers(0, n_genes, size=(n_cells, k), dtype=np.int32), axis=1)
    data = np.floor(rng.exponential(2.0, size=n_cells * k)).astype(np.float32) + 1
    indptr = np.arange(0, n_cells * k + 1, k, dtype=np.int64)
    X = sparse.csr_matrix((data, indices.ravel(), indptr), shape=(n_cells, n_genes))
    X.sum_duplicates()
    obs = pd.DataFrame(
        {
            "leiden": pd.Categorical(rng.integers(0, n_clusters, n_cells).astype(str)),
            "donor": pd.Categorical(rng.integers(0, n_donors, n_cells).astype(str)),
        },
        index=[f"c{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(index=[f"G{j}" for j in range(n_genes)])
    return ad.AnnData(X, obs=obs, var=var)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cells", type=int, default=200_000)
    p.add_argument("--genes", type=int, default=20_000)
    p.add_argument("--clusters", type=int, default=20)
    p.add_argument("--donors", type=int, default=10)
    p.add_argument("--density", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=5)
    args = p.parse_args()
    adata = synthetic(args.cells, args.genes, args.clusters, args.donors, args.density)
    candidates = [f"type {k}" for k in range(args.clusters)]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS after building the data: {base:.0f} MiB")
    print(
        f"{args.cells} cells x {args.genes} genes, {adata.X.nnz / 1e6:.0f} M stored values, {args.clusters} clusters"
    )
    for donor_key in (None, "donor"):
        start = time.perf_counter()
        config = AnnotateConfig(
            groupby="leiden", candidates=candidates, donor_key=donor_key, n_genes=50,
            n_samples=args.samples, max_cells_per_puzzle=15,
        )  # fmt: skip
        checked = check_data(adata, config)
        t_validate = time.perf_counter() - start
        rng = np.random.default_rng(0)
        cells = choose_cells(adata, checked, config, rng=rng)
        layout = make_layout(
            cells, candidates, n_samples=args.samples, max_cells_per_puzzle=15, rng=rng
        )
        first_round = layout.next_round(Tally(len(checked.clusters)))
        total = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"donor_key={donor_key!s:6} round-1 puzzles={len(first_round):4d} validate={t_validate:6.2f} s "
            f"total={total:6.2f} s peak RSS={rss:7.0f} MiB"
        )


if __name__ == "__main__":
    main()

"""Time and memory of the reference prior of ``cello1.tl.annotate`` on a large reference.

Tiles ``../shared/data/pbmc3k_clustifyr_9types.h5ad`` (sparse CSR, log1p(CP10k) in
``X``, 9 labelled types) to about ``--cells`` reference cells (the sparse matrix is
repeated, never densified), takes a query of ``--query`` other cells of the same
dataset, and runs the checks, the label transfer (``sc.tl.ingest`` by default) and the
choice of known-answer cells. Each copy of a tile gets its counts rescaled by a random
factor per cell (``X`` stays a log1p of CP10k-like values), so the reference is not 38
identical copies for the kNN search.

Prints the reference's size, the time of each step, peak RSS of the process (includes
the reference itself) and the peak traced by ``tracemalloc`` during the prior (numpy
and scipy allocations made by the prior alone).

    .venv/bin/python benchmarks/bench_reference_prior.py --cells 100000
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from pathlib import Path

import anndata as ad
import numpy as np
from scipy import sparse

from sc_cello1.tl._reference import check_reference, known_cells
from sc_cello1.tl._reference_prior import transfer_labels

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def tiled_reference(base: ad.AnnData, n_cells: int, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    n_tiles = -(-n_cells // base.n_obs)
    X = sparse.csr_matrix(base.X, dtype=np.float32)
    parts = []
    for _ in range(n_tiles):
        tile = X.copy()
        factor = rng.uniform(0.9, 1.1, size=tile.shape[0]).astype(np.float32)
        tile.data *= np.repeat(factor, np.diff(tile.indptr))
        parts.append(tile)
    big = sparse.vstack(parts, format="csr")[:n_cells]
    obs = base.obs[["cell_type"]].iloc[np.arange(n_cells) % base.n_obs].copy()
    obs.index = [f"c{i}" for i in range(n_cells)]
    out = ad.AnnData(X=big, obs=obs)
    out.var_names = base.var_names
    return out


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--query", type=int, default=1000)
    parser.add_argument("--method", default="ingest", choices=["ingest", "scanvi"])
    args = parser.parse_args()

    full = ad.read_h5ad(DATA / "pbmc3k_clustifyr_9types.h5ad")
    order = np.random.default_rng(0).permutation(full.n_obs)
    query = full[np.sort(order[: args.query])].copy()
    base = full[np.sort(order[args.query :])].copy()
    ref = tiled_reference(base, args.cells)
    X = ref.X
    mib = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20
    dense = ref.n_obs * ref.n_vars * 4 / 2**30
    print(
        f"reference: {ref.n_obs} cells x {ref.n_vars} genes, {X.nnz} stored values, "
        f"CSR {mib:.0f} MiB (dense float32 would be {dense:.1f} GiB); query {query.n_obs} cells"
    )
    print(f"peak RSS before the prior: {rss_mib():.0f} MiB")

    t0 = time.perf_counter()
    checked = check_reference(
        ref, reference_key="cell_type", query_genes=list(query.var_names), n_genes=50
    )
    t1 = time.perf_counter()
    codes = query.obs["cell_type"].cat.codes.to_numpy()
    tracemalloc.start()
    prior = transfer_labels(query.X, checked, codes=codes, n_clusters=9, method=args.method)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t2 = time.perf_counter()
    chosen = known_cells(checked, prior.ref_rep, n_samples=5, seed=0)
    t3 = time.perf_counter()
    truth = list(query.obs["cell_type"].cat.categories)
    right = sum(p == t for p, t in zip(prior.label, truth, strict=True))
    cell_acc = float((prior.cell_labels == query.obs["cell_type"].astype(str).to_numpy()).mean())
    print(f"checks: {t1 - t0:.2f} s")
    print(
        f"prior ({args.method}, {prior.params['n_genes']} genes, {prior.params['n_pcs']} PCs): "
        f"{t2 - t1:.1f} s; tracemalloc peak during the prior {traced / 2**20:.0f} MiB"
    )
    print(f"known cells ({sum(len(v) for v in chosen.values())} rows): {t3 - t2:.2f} s")
    print(f"peak RSS after: {rss_mib():.0f} MiB")
    print(
        f"clusters whose prior is their type: {right}/9; query cells labelled right: {cell_acc:.3f}"
    )


if __name__ == "__main__":
    main()

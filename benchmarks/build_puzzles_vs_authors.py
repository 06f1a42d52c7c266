"""Time ``cello1.data.build_puzzles`` against the authors' pipeline on the same matrix.

The authors' pipeline (faithful copy in ``tests/data/_authors.py``): build_context.py's
per-cell loop (densify each row, sort it, keep the top 50 genes, write a record), then
match_qa.py's sampling, which scans the group's records once per chosen type. sc-cello1
samples first and computes top genes only for the sampled cells. Both get the same
matrix and seed; the script checks that the puzzles are identical (the authors' copy
lists a group's types in sorted order, see ``_authors.py``).

The matrix tiles ``lymphnode_ref_spacexr_11types.h5ad`` (raw counts, 330 cells x 10,237
genes) to the requested size: cells are repeated with Poisson resampled counts, genes
are repeated under new names; 12 donors pool the original samples (up to 11 types).

Run::

    .venv/bin/python benchmarks/build_puzzles_vs_authors.py --cells 20000 --genes 20000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tiled(n_cells: int, n_genes: int, seed: int = 0):
    import anndata as ad
    import pandas as pd
    from scipy import sparse

    src = ad.read_h5ad(ROOT.parent / "shared" / "data" / "lymphnode_ref_spacexr_11types.h5ad")
    rng = np.random.default_rng(seed)
    reps_c = -(-n_cells // src.n_obs)
    reps_g = -(-n_genes // src.n_vars)
    X = sparse.vstack([src.X] * reps_c).tocsr()[:n_cells]
    X.data = rng.poisson(X.data).astype(np.float32)
    X.eliminate_zeros()
    X = sparse.hstack([X] * reps_g).tocsr()[:, :n_genes]
    tile = np.repeat(np.arange(reps_c), src.n_obs)[:n_cells]
    obs = pd.DataFrame(
        {
            "cell_type": np.tile(src.obs["cell_type"].astype(str), reps_c)[:n_cells],
            # 3 donors per tile, each pooling several samples (so up to all 11 types)
            "donor_id": [
                f"donor{c % 3}-{t % 4}"
                for c, t in zip(
                    np.tile(pd.factorize(src.obs["sample"])[0], reps_c)[:n_cells], tile, strict=True
                )
            ],
        },
        index=[f"c{i}" for i in range(n_cells)],
    )
    names = [f"{g}.{k}" if k else g for k in range(reps_g) for g in src.var_names][:n_genes]
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20000)
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--per-size", type=int, default=40)
    args = parser.parse_args()

    from tests.data import _authors

    import sc_cello1 as cello1

    adata = tiled(args.cells, args.genes)
    print(
        f"matrix: {adata.n_obs} cells x {adata.n_vars} genes, {adata.X.nnz / np.prod(adata.shape):.1%} nonzero"
    )

    kw = dict(n_cells=(8, 15), per_size=args.per_size, seed=42)
    cello1.data.build_puzzles(adata[:400].copy(), n_cells=(8, 9), per_size=1)  # warm-up (JIT)
    t0 = time.perf_counter()
    ours = cello1.data.build_puzzles(adata, **kw)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    records = _authors.cell_records(
        adata,
        cell_type_key="cell_type",
        donor_key="donor_id",
        matrix=adata.X,
        gene_names=np.asarray(adata.var_names),
        obs_context={},
    )
    theirs = _authors.generate_pairs(
        records, min_n=8, max_n_cells=15, target_per_n=args.per_size, seed=42, type_order=sorted
    )
    t_theirs = time.perf_counter() - t0

    same = [p.user_msg for p in ours] == [q["question"] for q in theirs] and [
        p.assistant_msg for p in ours
    ] == [q["answer"] for q in theirs]
    print(f"puzzles: {len(ours)} (identical to the authors' pipeline: {same})")
    print(f"sc-cello1 build_puzzles: {t_ours:8.2f} s")
    print(f"authors' pipeline:       {t_theirs:8.2f} s")
    print(f"speed-up:                {t_theirs / t_ours:8.1f}x")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()

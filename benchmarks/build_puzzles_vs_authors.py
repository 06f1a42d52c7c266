"""Time ``cello1.data.build_puzzles`` against the authors' pipeline on the same matrix.

The authors' pipeline (faithful copy in ``tests/data/_authors.py``): build_context.py's
per-cell loop as published (for every cell: read ``var['feature_name']`` into a list
again, densify the row, ``np.argpartition(row, -50)[-50:]``, reversed default
``np.argsort`` of those 50, write a record), then match_qa.py's sampling, which scans
the group's records once per chosen type. sc-cello1 samples first and computes top
genes only for the sampled cells. Both get the same matrix and seed; the script checks
that ``build_puzzles(..., tie_order="authors")`` gives the very same puzzles (the
authors' copy lists a group's types in sorted order, see ``_authors.py``), and times
the default ``tie_order="position"`` too (same cells and candidates; genes differ only
in the order among equal values). Each timing is repeated (``--repeats``, best and
median printed, with CPU seconds: the machine may be shared).

The matrix tiles ``lymphnode_ref_spacexr_11types.h5ad`` (raw counts, 330 cells x 10,237
genes) to the requested size: cells are repeated with Poisson resampled counts, genes
are repeated under new names; 12 donors pool the original samples (up to 11 types).

Run::

    .venv/bin/python benchmarks/build_puzzles_vs_authors.py --cells 20000 --genes 20000
"""

from __future__ import annotations

import argparse
import os
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
    # CELLxGENE-like: gene names in a categorical var['feature_name']
    var = pd.DataFrame(
        {"feature_name": pd.Categorical(names)}, index=[f"g{i}" for i in range(n_genes)]
    )
    return ad.AnnData(X=X, obs=obs, var=var)


def timed(n, fn, *args, **kwargs):
    """Run ``fn`` ``n`` times: last result, wall seconds (all runs), CPU seconds (all runs)."""
    walls, cpus = [], []
    for _ in range(n):
        c, t = time.process_time(), time.perf_counter()
        out = fn(*args, **kwargs)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return out, walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20000)
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--per-size", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each sc-cello1 timing")
    parser.add_argument("--repeats-ref", type=int, default=1, help="runs of the authors' pipeline")
    args = parser.parse_args()

    from tests.data import _authors

    import sc_cello1 as cello1

    adata = tiled(args.cells, args.genes)
    print(
        f"matrix: {adata.n_obs} cells x {adata.n_vars} genes, {adata.X.nnz / np.prod(adata.shape):.1%} nonzero"
    )

    kw = dict(n_cells=(8, 15), per_size=args.per_size, seed=42, gene_symbols="feature_name")
    warm = adata[:400].copy()
    for order in ("position", "authors"):  # warm-up (JIT, imports)
        cello1.data.build_puzzles(warm, n_cells=(8, 9), per_size=1, tie_order=order)
    ours_a, w_a, c_a = timed(
        args.repeats, cello1.data.build_puzzles, adata, tie_order="authors", **kw
    )
    ours_p, w_p, c_p = timed(args.repeats, cello1.data.build_puzzles, adata, **kw)

    def authors_pipeline():
        records = _authors.cell_records(
            adata,
            cell_type_key="cell_type",
            donor_key="donor_id",
            matrix=adata.X,
            var=adata.var,
            gene_key="feature_name",
            obs_context={},
        )
        return _authors.generate_pairs(
            records, min_n=8, max_n_cells=15, target_per_n=args.per_size, seed=42, type_order=sorted
        )

    theirs, w_t, c_t = timed(args.repeats_ref, authors_pipeline)

    same = [p.user_msg for p in ours_a] == [q["question"] for q in theirs] and [
        p.assistant_msg for p in ours_a
    ] == [q["answer"] for q in theirs]
    same_cells = [p.cell_ids for p in ours_p] == [p.cell_ids for p in ours_a]
    print(
        f"puzzles: {len(ours_a)} (tie_order='authors' identical to the authors' pipeline: {same})"
    )
    print(f"tie_order='position': same cells and answers: {same_cells}")
    for label, w, c in (
        ("sc-cello1 build_puzzles, tie_order='position'", w_p, c_p),
        ("sc-cello1 build_puzzles, tie_order='authors'", w_a, c_a),
        ("authors' pipeline (all cells)", w_t, c_t),
    ):
        print(
            f"{label:48s} best {min(w):8.2f} s, median {np.median(w):8.2f} s "
            f"(CPU best {min(c):7.2f} s; {len(w)} runs)"
        )
    print(
        f"speed-up, tie_order='position': {min(w_t) / min(w_p):8.1f}x (CPU {min(c_t) / min(c_p):.1f}x)"
    )
    print(
        f"speed-up, tie_order='authors':  {min(w_t) / min(w_a):8.1f}x (CPU {min(c_t) / min(c_a):.1f}x)"
    )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    if not (same and same_cells):
        sys.exit(1)


if __name__ == "__main__":
    main()

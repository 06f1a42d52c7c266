"""``cello1 build-puzzles``: AnnData -> CellPuzzles train/test files."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``build-puzzles`` subcommand."""
    p = subparsers.add_parser(
        "build-puzzles",
        help="build CellPuzzles from an annotated .h5ad and write train/test files",
        description=(
            "Build CellPuzzles from an annotated .h5ad as the Cell-o1 authors did (batches "
            "of N cells of distinct types from one donor), split them into train/test "
            "stratified by N, and write OUT_DIR/train.FORMAT and OUT_DIR/test.FORMAT."
        ),
    )
    p.add_argument("input", metavar="IN.h5ad", help="annotated AnnData file")
    p.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument("--cell-type-key", default="cell_type", help="obs column of cell types")
    p.add_argument(
        "--donor-key",
        default="donor_id",
        help="obs column of donors; 'none' treats all cells as one donor (default: donor_id)",
    )
    p.add_argument("--batch-key", default=None, help="obs column of batches (optional)")
    p.add_argument(
        "--n-cells",
        nargs=2,
        type=int,
        default=(8, 15),
        metavar=("MIN", "MAX"),
        help="puzzle sizes N (default: 8 15)",
    )
    p.add_argument("--per-size", type=int, default=40, help="puzzles per N (default: 40)")
    p.add_argument("--n-genes", type=int, default=50, help="top genes per cell (default: 50)")
    p.add_argument("--layer", default=None, help="read expression from this layer")
    p.add_argument("--use-raw", action="store_true", help="read expression from adata.raw")
    p.add_argument("--gene-symbols", default=None, help="var column with gene names")
    p.add_argument(
        "--context",
        default=None,
        help="one context text for every puzzle (default: the CELLxGENE context sentence)",
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    p.add_argument("--max-test", type=int, default=1100, help="max test puzzles (default: 1100)")
    p.add_argument(
        "--format",
        choices=("parquet", "jsonl", "json"),
        default="parquet",
        help="output format (default: parquet, the public CellPuzzles layout)",
    )
    p.add_argument(
        "--backed", action="store_true", help="open the .h5ad backed (large files; read-only)"
    )
    p.set_defaults(func=_build_puzzles)


def _build_puzzles(args: argparse.Namespace) -> int:
    import anndata as ad

    from ._build import build_puzzles
    from ._files import write_puzzles
    from ._split import split_puzzles

    path = Path(args.input)
    if not path.is_file():
        msg = f"{str(path)!r} not found."
        raise FileNotFoundError(msg)
    if args.max_test < 1:
        msg = f"--max-test {args.max_test} must be at least 1."
        raise ValueError(msg)
    adata = ad.read_h5ad(path, backed="r" if args.backed else None)
    donor_key = None if str(args.donor_key).lower() == "none" else args.donor_key
    puzzles = build_puzzles(
        adata,
        cell_type_key=args.cell_type_key,
        donor_key=donor_key,
        batch_key=args.batch_key,
        n_cells=tuple(args.n_cells),
        per_size=args.per_size,
        n_genes=args.n_genes,
        context=args.context,
        seed=args.seed,
        layer=args.layer,
        use_raw=True if args.use_raw else None,
        gene_symbols=args.gene_symbols,
    )
    for p in puzzles:
        p.meta["source"] = path.name
    train, test = split_puzzles(puzzles, max_test=args.max_test, seed=args.seed)
    out = Path(args.out)
    train_path = write_puzzles(train, out / f"train.{args.format}")
    test_path = write_puzzles(test, out / f"test.{args.format}")
    sizes = sorted({p.n_cells for p in puzzles})
    print(f"{len(puzzles)} puzzles from {path.name}: {len(train)} train, {len(test)} test")
    print("N      train  test")
    for n in sizes:
        n_train = sum(p.n_cells == n for p in train)
        n_test = sum(p.n_cells == n for p in test)
        print(f"{n:<6} {n_train:>5} {n_test:>5}")
    print(f"wrote {train_path} and {test_path}")
    return 0

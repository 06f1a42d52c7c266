"""The ``cello1 annotate`` subcommand (registered by :mod:`sc_cello1.tl._cli`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_annotate_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``cello1 annotate`` to the ``cello1`` subcommands."""
    p = sub.add_parser(
        "annotate",
        help="label the clusters of an .h5ad file with Cell-o1",
        description=(
            "Annotate clusters with Cell-o1 (cello1.tl.annotate) and write the AnnData with "
            "obs[KEY], obs[KEY_confidence] and uns[KEY] to OUT."
        ),
    )
    p.add_argument(
        "input",
        metavar="IN.h5ad",
        help="input AnnData file, or scanpy:NAME for a dataset of scanpy.datasets (e.g. scanpy:pbmc68k_reduced)",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT.h5ad", help="output AnnData file")
    p.add_argument(
        "--groupby", default="leiden", help="obs column with the clusters (default: leiden)"
    )
    p.add_argument(
        "--candidates",
        nargs="+",
        default=None,
        metavar="TYPE",
        help="candidate cell types (none given: the model proposes them first; a curated list is better)",
    )
    p.add_argument(
        "--candidates-file",
        default=None,
        metavar="FILE",
        help="text file with one candidate cell type per line (blank lines and # comments skipped)",
    )
    p.add_argument(
        "--candidates-from",
        default=None,
        metavar="COLUMN",
        help="use the categories of this obs column (e.g. a reference annotation) as candidates",
    )
    p.add_argument(
        "--model",
        default=None,
        help="registered name, model folder or .gguf file (default: settings)",
    )
    p.add_argument("--backend", default="auto", choices=["auto", "transformers", "vllm", "openai"])
    p.add_argument("--base-url", default=None, help="server URL for --backend openai")
    p.add_argument(
        "--api-key", default=None, help="API key for --backend openai (or $OPENAI_API_KEY)"
    )
    from sc_cello1.inference._cli import add_server_options

    add_server_options(p)
    p.add_argument("--layer", default=None, help="layer with the expression values")
    p.add_argument("--use-raw", action="store_true", default=None, help="rank genes in adata.raw")
    p.add_argument("--gene-symbols", default=None, help="var column with gene symbols")
    p.add_argument(
        "--use-rep",
        default=None,
        help="obsm key where representative cells are chosen (default: X_pca when present)",
    )
    p.add_argument(
        "--tie-order",
        default="position",
        choices=["position", "authors"],
        help="order of genes with equal values (default: position)",
    )
    p.add_argument("--donor-key", default=None, help="obs column with donors: puzzles per donor")
    p.add_argument(
        "--context", default=None, help="donor context sentence (default: from CELLxGENE columns)"
    )
    p.add_argument(
        "--context-fields",
        nargs="+",
        default=(),
        metavar="COLUMN",
        help="further obs columns appended to the CELLxGENE context sentence",
    )
    p.add_argument("--n-genes", type=int, default=50, help="top genes per cell (default: 50)")
    p.add_argument(
        "--n-samples",
        type=int,
        default=5,
        help="minimum of cells asked per cluster, one per puzzle; budget 3x (default: 5)",
    )
    p.add_argument(
        "--temperature", type=float, default=0.0, help="sampling temperature (default: 0, greedy)"
    )
    p.add_argument(
        "--max-new-tokens", type=int, default=3500, help="cap on generated tokens (default: 3500)"
    )
    p.add_argument(
        "--max-cells-per-puzzle",
        type=int,
        default=15,
        help="clusters per puzzle at most (default: 15)",
    )
    p.add_argument(
        "--one-to-one",
        action="store_true",
        help="clusters and types match one to one: distinct labels (default: most voted type per cluster)",
    )
    p.add_argument("--no-unique", action="store_true", help=argparse.SUPPRESS)
    onto = p.add_mutually_exclusive_group()
    onto.add_argument(
        "--ontology",
        dest="ontology",
        action="store_const",
        const=True,
        default=None,
        help="match names through the Cell Ontology (default: when installed)",
    )
    onto.add_argument(
        "--no-ontology", dest="ontology", action="store_const", const=False, help=argparse.SUPPRESS
    )
    p.add_argument("--constrained", action="store_true", help="constrained decoding of the answer")
    p.add_argument("--batch-size", type=int, default=None, help="prompts per generation batch")
    p.add_argument(
        "--key-added", default="cello1", help="obs/uns key of the results (default: cello1)"
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="folder to store finished puzzles (resume after interrupt)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace obs/uns entries under --key-added that a previous annotation did not write",
    )
    _add_reference_options(p)
    p.set_defaults(func=run_annotate)
    return p


def _add_reference_options(p: argparse.ArgumentParser) -> None:
    """Add the ``--reference*`` options (a labelled reference, see docs/reference.md)."""
    from ._reference_prior import PRIOR_METHODS

    g = p.add_argument_group("labelled reference")
    g.add_argument(
        "--reference",
        default=None,
        metavar="REF.h5ad",
        help="labelled reference: its labels are the candidates (or the --candidates are "
        "matched onto them), label transfer gives a prior per cluster, its cells fill puzzles",
    )
    g.add_argument("--reference-key", default=None, help="reference obs column with the labels")
    g.add_argument("--reference-layer", default=None, help="reference layer to read")
    g.add_argument(
        "--reference-use-raw", action="store_true", default=None, help="read reference.raw"
    )
    g.add_argument(
        "--reference-gene-symbols", default=None, help="reference var column with gene symbols"
    )
    g.add_argument(
        "--reference-prior",
        default="ingest",
        choices=list(PRIOR_METHODS),
        help="label transfer: scanpy's ingest (default) or scANVI (scvi extra, raw counts)",
    )
    g.add_argument(
        "--reference-max-epochs", type=int, default=None, help="scANVI epochs (default: scvi's)"
    )


def _read_reference(args: argparse.Namespace):
    if args.reference is None:
        return None
    import anndata as ad

    source = Path(args.reference)
    if not source.is_file():
        msg = f"--reference file {str(source)!r} not found."
        raise FileNotFoundError(msg)
    return ad.read_h5ad(source)


def read_candidates_file(path: str | os.PathLike) -> list[str]:
    """Candidate cell types from a text file: one per line, blanks and ``#`` comments skipped."""
    text = Path(path).read_text(encoding="utf-8")
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def read_input(spec: str):
    """Read ``IN.h5ad``, or ``scanpy:NAME`` as ``scanpy.datasets.NAME()``."""
    import anndata as ad

    if spec.startswith("scanpy:"):
        import scanpy as sc

        name = spec.removeprefix("scanpy:")
        loader = (
            getattr(sc.datasets, name, None)
            if name.isidentifier() and not name.startswith("_")
            else None
        )
        if loader is None or not callable(loader):
            available = [n for n in dir(sc.datasets) if not n.startswith("_")]
            msg = f"scanpy.datasets has no dataset {name!r}; use one of {available}."
            raise ValueError(msg)
        return loader()
    source = Path(spec)
    if not source.is_file():
        msg = f"input file {str(source)!r} not found."
        raise FileNotFoundError(msg)
    return ad.read_h5ad(source)


def run_annotate(args: argparse.Namespace) -> int:
    """Run ``cello1 annotate``; returns the exit status."""
    import sc_cello1 as cello1

    output = Path(args.output)
    if output.is_dir():
        msg = f"--output {str(output)!r} is a folder; give the .h5ad file to write (e.g. {str(output / 'annotated.h5ad')!r})."
        raise IsADirectoryError(msg)
    candidates = list(args.candidates or [])
    if args.candidates_file:
        from_file = read_candidates_file(args.candidates_file)
        if not from_file:
            msg = (
                f"--candidates-file {args.candidates_file!r} lists no cell type (one per line; "
                "blank lines and # comments are skipped); fill it, or leave the option out to "
                "have the model propose candidates."
            )
            raise ValueError(msg)
        candidates += from_file
    if args.no_unique:
        sys.stderr.write(
            "warning: --no-unique is deprecated and now the default; use --one-to-one for distinct labels\n"
        )
    if not output.parent.is_dir():
        msg = f"output folder {str(output.parent)!r} does not exist."
        raise FileNotFoundError(msg)
    from sc_cello1.inference._cli import server_kwargs

    backend_kwargs = server_kwargs(args)
    adata = read_input(args.input)
    if args.candidates_from:
        if args.candidates_from not in adata.obs.columns:
            msg = f"--candidates-from: `obs[{args.candidates_from!r}]` not found (obs columns: {list(adata.obs.columns)})."
            raise KeyError(msg)
        column = adata.obs[args.candidates_from].dropna()
        if hasattr(column, "cat"):
            extra = list(column.cat.remove_unused_categories().cat.categories)
        else:
            extra = sorted(column.astype(str).unique())
        candidates += [str(c) for c in extra if str(c) not in candidates]
    cello1.tl.annotate(
        adata,
        args.groupby,
        candidates=candidates or None,
        model=args.model,
        backend=args.backend,
        context=args.context,
        context_fields=tuple(args.context_fields),
        donor_key=args.donor_key,
        layer=args.layer,
        use_raw=args.use_raw,
        gene_symbols=args.gene_symbols,
        n_genes=args.n_genes,
        n_samples=args.n_samples,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        max_cells_per_puzzle=args.max_cells_per_puzzle,
        one_to_one=args.one_to_one,
        use_rep=args.use_rep,
        tie_order=args.tie_order,
        ontology=args.ontology,
        constrained=args.constrained,
        batch_size=args.batch_size,
        key_added=args.key_added,
        cache_dir=args.cache_dir,
        seed=args.seed,
        backend_kwargs=backend_kwargs or None,
        overwrite=args.overwrite,
        reference=_read_reference(args),
        reference_key=args.reference_key,
        reference_layer=args.reference_layer,
        reference_use_raw=args.reference_use_raw,
        reference_gene_symbols=args.reference_gene_symbols,
        reference_prior=args.reference_prior,
        reference_max_epochs=args.reference_max_epochs,
    )
    from sc_cello1._io import atomic_path

    with atomic_path(output) as tmp:
        adata.write_h5ad(tmp)
    result = adata.uns[args.key_added]
    if result["candidates"]["candidate_source"] == "proposed":
        sys.stdout.write(f"proposed candidates: {', '.join(result['candidates']['names'])}\n")
    columns = ["label", "confidence", "votes", "n_asked", "runner_up", "margin", "n_unmatched"]
    sys.stdout.write(result["clusters"][[*columns, "n_cells"]].to_string() + "\n")
    if "reference" in result:
        ref_columns = ["reference_label", "reference_share", "agrees", "known_score"]
        sys.stdout.write("reference (second opinion, known-cell score per cluster):\n")
        sys.stdout.write(result["reference"][ref_columns].to_string() + "\n")
    unmatched = result["unmatched"]
    if len(unmatched):
        top = unmatched.sort_values("count", ascending=False).head(10)
        sys.stdout.write("answers that named no candidate (most frequent):\n")
        sys.stdout.write(top.to_string(index=False) + "\n")
    sys.stdout.write(f"wrote {output}\n")
    return 0

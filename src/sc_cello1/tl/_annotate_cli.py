"""The ``cello1 annotate`` subcommand (registered by :mod:`sc_cello1.tl._cli`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_annotate_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``cello1 annotate`` to the ``cello1`` subcommands.

    Its options are the fields of :class:`~sc_cello1.tl._annotate_config.AnnotateConfig`
    (the keywords of ``tl.annotate``, with their defaults and help), plus what only a
    command line needs: the files, candidates from a file or a column, the server.
    """
    from sc_cello1._config import add_config_options
    from sc_cello1.inference._cli import add_server_options

    from ._annotate_config import AnnotateConfig

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
    names = AnnotateConfig.field_names()
    reference_fields = [n for n in names if n.startswith("reference")]
    add_config_options(p, AnnotateConfig, skip=reference_fields)
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
    p.add_argument("--base-url", default=None, help="server URL for --backend openai")
    p.add_argument(
        "--api-key", default=None, help="API key for --backend openai (or $OPENAI_API_KEY)"
    )
    add_server_options(p)
    g = p.add_argument_group("labelled reference")
    g.add_argument(
        "--reference",
        default=None,
        metavar="REF.h5ad",
        help="labelled reference: its labels are the candidates (or the --candidates are "
        "matched onto them), label transfer gives a prior per cluster, its cells fill puzzles",
    )
    add_config_options(g, AnnotateConfig, skip=[n for n in names if n not in reference_fields])
    p.set_defaults(func=run_annotate)
    return p


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
    from sc_cello1._config import config_from_args

    from ._annotate import run_annotate as run
    from ._annotate_config import AnnotateConfig

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
    config = config_from_args(
        args,
        AnnotateConfig,
        candidates=candidates or None,
        backend_kwargs=backend_kwargs or None,
        reference=_read_reference(args),
    )
    run(adata, config)
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

"""Building CellPuzzles from an annotated AnnData, as the Cell-o1 authors sampled them."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._answer import ITEM_SEP
from sc_cello1._logging import logger

from ._context import CONTEXT_FIELDS, puzzle_context
from ._puzzle import Puzzle
from ._sampling import _groups, _sample, _types_by_group

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

    ContextSource = str | Callable[[pd.Series], str] | None


from sc_cello1._validate import check_int as _check_int


def _check_sizes(n_cells: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(n_cells, int | np.integer) and not isinstance(n_cells, bool):
        lo = hi = int(n_cells)
    else:
        try:
            lo, hi = n_cells  # type: ignore[misc]
        except (TypeError, ValueError):
            msg = f"n_cells={n_cells!r} must be a pair (min N, max N), e.g. (8, 15), or one int."
            raise TypeError(msg) from None
        lo = _check_int("n_cells[0]", lo, 1)
        hi = _check_int("n_cells[1]", hi, 1)
    if lo < 2:
        msg = (
            f"n_cells={n_cells!r}: a puzzle needs at least 2 cells (the answer format lists "
            "types separated by ' | '); use e.g. n_cells=(3, 5)."
        )
        raise ValueError(msg)
    if lo > hi:
        msg = f"n_cells={n_cells!r}: the minimum N is larger than the maximum; pass (min, max)."
        raise ValueError(msg)
    return lo, hi


def _obs_column(adata: AnnData, key: str, what: str, arg: str) -> pd.Series:
    if not isinstance(key, str):
        msg = f"{arg}={key!r} must be the name of an `obs` column (a string)."
        raise TypeError(msg)
    if key not in adata.obs.columns:
        cols = ", ".join(map(repr, list(adata.obs.columns)[:20])) or "none"
        msg = f"`obs[{key!r}]` ({what}) not found; pass {arg}= one of the obs columns ({cols})."
        raise KeyError(msg)
    return adata.obs[key]


def _labels(adata: AnnData, key: str) -> np.ndarray:
    import pandas as pd

    col = _obs_column(adata, key, "cell type labels", "cell_type_key")
    n_missing = int(col.isna().sum())
    if n_missing:
        msg = (
            f"{n_missing} of {len(col)} cells have no label (NaN) in `obs[{key!r}]`; drop them "
            f"(`adata = adata[adata.obs[{key!r}].notna()].copy()`) or fill them "
            "(e.g. with 'unknown') first."
        )
        raise ValueError(msg)
    values = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else col
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        msg = (
            f"`obs[{key!r}]` holds numbers ({values.dtype}), not cell type names; the model "
            f"needs names. Map them to names, or convert with `.astype(str)` if they are names."
        )
        raise TypeError(msg)
    labels = col.astype(str).to_numpy(dtype=object)
    uniq = pd.unique(labels)
    bad = [u for u in uniq if u != u.strip() or not u or ITEM_SEP in u or "\n" in u or "\r" in u]
    if bad:
        msg = (
            f"cell type labels {bad[:5]!r} in `obs[{key!r}]` cannot be used in a puzzle: labels "
            "must be non-empty, without leading/trailing spaces, '|' or line breaks (the answer "
            "is the labels joined by ' | '). Rename them first."
        )
        raise ValueError(msg)
    folded: dict[str, list[str]] = {}
    for u in uniq:
        folded.setdefault(" ".join(u.lower().split()), []).append(u)
    dups = [sorted(v) for v in folded.values() if len(v) > 1]
    if dups:
        msg = (
            f"duplicate candidate labels in `obs[{key!r}]`: {dups[:5]} differ only in case or "
            "spacing, and answers are matched case-insensitively; merge them into one label."
        )
        raise ValueError(msg)
    return labels


def _check_context(
    adata: AnnData, context: Any, context_fields: Sequence[str] | Mapping[str, str] | str
) -> Sequence[str] | Mapping[str, str]:
    """Check ``context`` and ``context_fields``; return the fields as a sequence or mapping."""
    if context is not None and not isinstance(context, str) and not callable(context):
        msg = (
            f"context must be None, a string or a callable (obs row -> str), "
            f"got {type(context).__name__}."
        )
        raise TypeError(msg)
    if isinstance(context, str) and ("\n" in context or "\r" in context):
        msg = "context must be one line: it contains a line break, which breaks the prompt layout."
        raise ValueError(msg)
    extra = (context_fields,) if isinstance(context_fields, str) else context_fields
    if extra and context is not None:
        msg = "context_fields applies to the default context sentence; use it with context=None."
        raise ValueError(msg)
    for col in extra:
        _obs_column(adata, col, "extra context field", "context_fields")
    return extra


def _check_group_keys(adata: AnnData, donor_key: str | None, batch_key: str | None) -> str | None:
    """Check the donor and batch columns; return the donor key to use (``None``: one group)."""
    if donor_key is not None and donor_key not in adata.obs.columns:
        if donor_key != "donor_id":
            _obs_column(adata, donor_key, "donor", "donor_key")
        message = (
            "`obs['donor_id']` not found: all cells are treated as one donor group, so a "
            "puzzle may mix cells of different donors. Pass donor_key= naming the donor "
            "column, or donor_key=None to silence this warning."
        )
        logger.warning(message)
        donor_key = None
    elif donor_key is not None:
        _obs_column(adata, donor_key, "donor", "donor_key")
    if batch_key is not None:
        _obs_column(adata, batch_key, "batch", "batch_key")
    return donor_key


def _expression(
    adata: AnnData,
    layer: str | None,
    use_raw: bool | None,
    gene_symbols: str | None,
    n_genes: int,
) -> tuple[Any, Any]:
    """Return the expression matrix and gene names, checked (non-negative, enough genes)."""
    from sc_cello1._validate import (
        _names_source,
        check_nonnegative,
        expression_matrix,
        gene_names,
        warn_duplicate_gene_names,
    )

    X, var_names, var = expression_matrix(adata, layer=layer, use_raw=use_raw)
    names = gene_names(var, var_names, gene_symbols)
    if n_genes > len(names):
        msg = (
            f"n_genes={n_genes} is larger than the number of genes ({len(names)}); pass "
            f"n_genes={len(names)} or less."
        )
        raise ValueError(msg)
    what = "adata.raw.X" if use_raw else (f"adata.layers[{layer!r}]" if layer else "adata.X")
    check_nonnegative(X, what=what)
    warn_duplicate_gene_names(
        names, source=_names_source(use_raw=bool(use_raw), gene_symbols=gene_symbols)
    )
    return X, names


def _contexts(
    obs: pd.DataFrame,
    sampled: list[tuple[int, list[str], list[int]]],
    context: ContextSource,
    context_fields: Sequence[str] | Mapping[str, str],
) -> list[str]:
    """Return the context of each puzzle, from its first cell; one line of text each."""
    # build_puzzles' callable takes the first cell's row; puzzle_context hands the rows
    make = context if not callable(context) else lambda rows: context(rows.iloc[0])
    return [
        puzzle_context(obs, rows, context=make, context_fields=context_fields)
        for _, _, rows in sampled
    ]


def build_puzzles(
    adata: AnnData,
    *,
    cell_type_key: str = "cell_type",
    donor_key: str | None = "donor_id",
    batch_key: str | None = None,
    n_cells: int | tuple[int, int] = (8, 15),
    per_size: int = 40,
    n_genes: int = 50,
    context: ContextSource = None,
    context_fields: Sequence[str] | Mapping[str, str] = (),
    seed: int = 42,
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    tie_order: str = "position",
    extra_context_fields: Sequence[str] | Mapping[str, str] | None = None,
) -> list[Puzzle]:
    """Build CellPuzzles from an annotated AnnData, as the Cell-o1 authors did.

    Cells are grouped by donor (and batch, when ``batch_key`` is given); cells without a
    donor are left out. For each size N in ``n_cells`` the function makes ``per_size``
    puzzles: round after round, every group with at least the minimum N distinct cell
    types gets one puzzle of a size N it can fill whose quota is not yet met (chosen at
    random); its N types are a random sample of the group's types and each type
    contributes one random cell of that group. Groups with fewer distinct types than
    the minimum N are skipped. This is the loop of the authors' ``match_qa.py``, with
    the same calls to Python's :mod:`random` (group types in ``sorted()`` order), so a
    seed gives the same puzzles on every run. Top genes are computed only for the
    sampled cells.

    Each puzzle's candidates are its N types in ``sorted()`` order and its answer the
    types in cell order. Its context is the first cell's donor context sentence
    (:func:`~sc_cello1.data.context_sentence` of the CELLxGENE ``obs`` columns
    ``sex``, ``development_stage``, ``self_reported_ethnicity``, ``tissue``,
    ``disease``), unless ``context`` is given. Genes are the ``n_genes`` highest
    values of the cell's row, highest first, equal values ordered by ``tie_order``
    (see :func:`sc_cello1.pp.top_genes`).

    Parameters
    ----------
    adata
        Annotated data matrix (``backed='r'`` works). Values should be (log-)normalised
        expression or counts: non-negative.
    cell_type_key
        ``obs`` column with the cell type labels (strings; no NaN).
    donor_key
        ``obs`` column with the donor. If the default ``"donor_id"`` is not in ``obs``,
        the whole dataset is one group (with a warning); ``None`` does the same
        silently. Any other missing column is an error.
    batch_key
        Optional ``obs`` column with a batch, to group by donor and batch.
    n_cells
        ``(min N, max N)``: the puzzle sizes (the authors used 8 to 15), or one N.
    per_size
        Number of puzzles per size N (the authors used 40 per source file).
    n_genes
        Number of top genes per cell (the authors used 50).
    context
        ``None``: the CELLxGENE context sentence of each puzzle's first cell. A string:
        the same context for every puzzle. A callable: called with the first cell's
        ``obs`` row (a :class:`pandas.Series`), returns the context text.
    context_fields
        Further ``obs`` columns appended to the context sentence (see
        :func:`~sc_cello1.data.context_sentence`); only with ``context=None``.
    seed
        Seed of the random sampling (the authors used 42).
    layer
        Read expression from ``adata.layers[layer]`` instead of ``X``.
    use_raw
        Read expression from ``adata.raw`` (for example when ``X`` is scaled).
    gene_symbols
        ``var`` column with gene names (``_ENSG...`` suffixes are cut, as the authors
        did with ``feature_name``); default: ``var_names``. Names that repeat are
        kept, each column ranked on its own, so a prompt can name a gene twice; a
        warning says so (``adata.var_names_make_unique()`` avoids it).
    tie_order
        ``"position"`` (default): equal values by lower gene position, the same on
        every machine. ``"authors"``: exactly the genes and order of the authors'
        ``build_context.py`` loop (numpy ``argpartition`` then a reversed default
        ``argsort``) with the numpy and CPU at hand; slower, and not portable (see
        :func:`sc_cello1.pp.top_genes`).
    extra_context_fields
        Deprecated name of ``context_fields`` (warns; removed in the next release).

    Returns
    -------
    The puzzles, in the order made, each with ``cell_ids`` (``obs_names``), ``group``
    (the donor, or ``str((donor, batch))`` as the authors named groups) and ``meta``
    (``donor``, ``batch``, ``n``). ``adata`` is not modified.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> import scanpy as sc
    >>> adata = sc.datasets.pbmc68k_reduced()
    >>> adata.obs["donor_id"] = ["d1", "d2"] * (adata.n_obs // 2)
    >>> puzzles = cello1.data.build_puzzles(
    ...     adata, cell_type_key="bulk_labels", use_raw=True, n_cells=(8, 10), per_size=5,
    ...     context="The cell is from a healthy donor.",
    ... )
    >>> len(puzzles), puzzles[0].n_cells in (8, 9, 10)
    (15, True)
    """
    from anndata import AnnData

    from sc_cello1.pp._top_genes import _check_tie_order, top_gene_indices

    start = time.perf_counter()
    # ---- validate everything before any work ----
    if not isinstance(adata, AnnData):
        msg = f"`adata` must be an AnnData, got {type(adata).__name__}."
        raise TypeError(msg)
    lo, hi = _check_sizes(n_cells)
    per_size = _check_int("per_size", per_size, 1)
    n_genes = _check_int("n_genes", n_genes, 1)
    tie_order = _check_tie_order(tie_order)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        msg = f"seed={seed!r} must be an integer."
        raise TypeError(msg)
    if extra_context_fields is not None:
        warnings.warn(
            "build_puzzles(extra_context_fields=...) is renamed context_fields= and will be "
            "removed.",
            FutureWarning,
            stacklevel=2,
        )
        context_fields = extra_context_fields
    extra = _check_context(adata, context, context_fields)
    labels = _labels(adata, cell_type_key)
    donor_key = _check_group_keys(adata, donor_key, batch_key)
    X, names = _expression(adata, layer, use_raw, gene_symbols, n_genes)
    if context is None and not extra and not any(f in adata.obs.columns for f in CONTEXT_FIELDS):
        logger.warning(
            "none of the CELLxGENE context columns %s is in obs: every context will be "
            "'The cell is from'; pass context= (a string or a callable) for a better one.",
            CONTEXT_FIELDS,
        )

    codes, group_names, group_keys = _groups(adata, donor_key, batch_key)
    cells_of, group_types, eligible = _types_by_group(labels, codes, group_names, lo, hi, donor_key)
    sampled = _sample(group_types, cells_of, lo, hi, per_size, seed)

    # ---- contexts (first cell of each puzzle), then top genes of the sampled cells ----
    contexts = _contexts(adata.obs, sampled, context, extra)
    cells = np.unique(np.fromiter((r for _, _, rs in sampled for r in rs), dtype=np.int64))
    top = top_gene_indices(X, n_genes, rows=cells, tie_order=tie_order)
    gene_names = np.asarray(names, dtype=object)
    pos = {int(c): i for i, c in enumerate(cells)}
    obs_names = np.asarray(adata.obs_names, dtype=object)
    puzzles = []
    for (g, chosen, rows), text in zip(sampled, contexts, strict=True):
        donor, batch = group_keys[g]
        puzzles.append(
            Puzzle(
                context=text,
                genes=[gene_names[top[pos[r]]].tolist() for r in rows],
                candidates=sorted(chosen),
                answer=list(chosen),
                cell_ids=[str(obs_names[r]) for r in rows],
                group=group_names[g],
                meta={"donor": donor, "batch": batch, "n": len(chosen)},
            )
        )
    logger.info(
        "built %d puzzles from %d groups (%d cells, N %d-%d) in %.1f s",
        len(puzzles),
        len(eligible),
        len(cells),
        lo,
        hi,
        time.perf_counter() - start,
    )
    return puzzles

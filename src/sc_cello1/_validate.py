"""Shared input checks for functions that read an expression matrix from AnnData.

These helpers pick the matrix a user asked for (``X``, a layer or ``raw``), name genes
the way the Cell-o1 authors did, and reject matrices that cannot hold expression values
(negative or NaN entries, as left by :func:`scanpy.pp.scale`). They raise errors whose
message names the problem and the fix, and they never modify the AnnData.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

if TYPE_CHECKING:
    from anndata import AnnData

#: Rows read at a time when scanning a dense or backed matrix for negative values.
_SCAN_ROWS = 4096
#: Stored values read at a time when scanning a backed sparse matrix.
_SCAN_VALUES = 1 << 24


def expression_matrix(
    adata: AnnData, *, layer: str | None = None, use_raw: bool | None = None
) -> tuple[Any, pd.Index, pd.DataFrame]:
    """Pick the expression matrix of ``adata`` and the genes that label its columns.

    Parameters
    ----------
    adata
        Annotated data matrix, in memory or opened with ``backed='r'``.
    layer
        Read ``adata.layers[layer]`` instead of ``adata.X``.
    use_raw
        ``True`` reads ``adata.raw.X`` (with ``adata.raw.var_names``). ``None`` (the
        default) and ``False`` read ``adata.X`` or the layer: unlike scanpy, ``.raw`` is
        never used unless asked for, so the result does not depend on whether ``.raw``
        happens to be set.

    Returns
    -------
    ``(X, var_names, var)``: the matrix (a numpy array, a scipy sparse matrix, or for
    backed AnnData an h5py dataset or an anndata backed sparse dataset; never a copy),
    the gene index of its columns and the matching ``var`` table.

    Raises
    ------
    ValueError
        If both ``layer`` and ``use_raw=True`` are given.
    KeyError
        If the layer does not exist, ``use_raw=True`` but ``adata.raw`` is not set, or
        ``adata.X`` is ``None``.

    Examples
    --------
    >>> import scanpy as sc
    >>> from sc_cello1._validate import expression_matrix
    >>> adata = sc.datasets.pbmc68k_reduced()
    >>> X, var_names, var = expression_matrix(adata, use_raw=True)
    >>> X.shape[1] == len(var_names)
    True
    """
    if use_raw is not None and not isinstance(use_raw, bool | np.bool_):
        msg = f"use_raw must be True, False or None, not {use_raw!r}."
        raise TypeError(msg)
    if layer is not None and not isinstance(layer, str):
        msg = f"layer must be the name of a layer (a string) or None, not {layer!r}."
        raise TypeError(msg)
    if layer is not None and use_raw:
        msg = (
            f"Both layer={layer!r} and use_raw=True were given; pass only one: "
            "layer= to read adata.layers, or use_raw=True to read adata.raw.X."
        )
        raise ValueError(msg)
    if use_raw:
        if adata.raw is None:
            msg = (
                "use_raw=True but adata.raw is not set; pass use_raw=None to read adata.X, "
                "or layer='counts' (any name in adata.layers) to read a layer."
            )
            raise KeyError(msg)
        raw = adata.raw
        return raw.X, raw.var_names, raw.var
    if layer is not None:
        if layer not in adata.layers:
            available = ", ".join(repr(k) for k in adata.layers) or "none"
            msg = (
                f"layer {layer!r} not found in adata.layers (available: {available}); "
                "pass one of those, or layer=None to read adata.X."
            )
            raise KeyError(msg)
        return adata.layers[layer], adata.var_names, adata.var
    if adata.X is None:
        available = ", ".join(repr(k) for k in adata.layers) or "none"
        msg = (
            f"adata.X is None; pass layer= (available layers: {available}) "
            "or use_raw=True to read adata.raw.X."
        )
        raise KeyError(msg)
    return adata.X, adata.var_names, adata.var


def gene_names(
    var: pd.DataFrame, var_names: pd.Index, gene_symbols: str | None = None
) -> np.ndarray:
    """Gene names as the Cell-o1 authors wrote them in prompts.

    Names come from ``var[gene_symbols]`` (the authors read CELLxGENE's
    ``var['feature_name']``) or else from ``var_names``. Any ``_ENSG...`` suffix is cut,
    as the authors did: ``ACTB_ENSG00000075624`` becomes ``ACTB``.

    Parameters
    ----------
    var
        The ``var`` table that matches ``var_names``.
    var_names
        The gene index of the matrix columns.
    gene_symbols
        Column of ``var`` holding the names to use; ``None`` uses ``var_names``.

    Returns
    -------
    Array of ``str``, one name per gene, in column order.

    Raises
    ------
    KeyError
        If ``gene_symbols`` is not a column of ``var``.
    ValueError
        If that column has missing values.

    Examples
    --------
    >>> import pandas as pd
    >>> from sc_cello1._validate import gene_names
    >>> var = pd.DataFrame(index=["ACTB_ENSG00000075624", "CD3E"])
    >>> gene_names(var, var.index).tolist()
    ['ACTB', 'CD3E']
    """
    if gene_symbols is None:
        names = pd.Series(np.asarray(var_names), dtype=object)
    else:
        if gene_symbols not in var.columns:
            available = ", ".join(repr(c) for c in var.columns) or "none"
            msg = (
                f"var[{gene_symbols!r}] not found (var columns: {available}); pass "
                "gene_symbols= one of those, or gene_symbols=None to use var_names."
            )
            raise KeyError(msg)
        names = pd.Series(np.asarray(var[gene_symbols], dtype=object), dtype=object)
        missing = names.isna()
        if missing.any():
            first = var.index[np.flatnonzero(missing.to_numpy())[0]]
            msg = (
                f"var[{gene_symbols!r}] has {int(missing.sum())} missing values (first at "
                f"gene {first!r}); fill them, or pass gene_symbols=None to use var_names."
            )
            raise ValueError(msg)
    cut = [n.split("_ENSG", 1)[0] if "_ENSG" in n else n for n in names.astype(str)]
    return np.asarray(cut, dtype=str)


def check_names_are_genes(names: Any, *, gene_symbols: str | None) -> None:
    """Refuse gene names that are mostly numbers (``AnnData``'s default ``'0', '1', ...``).

    For what a model reads: it would take column positions for gene names.
    """
    names = [str(n) for n in names]
    numbers = sum(n.isdigit() for n in names)
    if names and numbers > len(names) / 2:
        source = f"var[{gene_symbols!r}]" if gene_symbols is not None else "var_names"
        examples = ", ".join(repr(n) for n in names[:3])
        msg = (
            f"{source} are numbers ({numbers} of {len(names)}, e.g. {examples}), not gene "
            "names, and the model reads the names. Pass gene_symbols= (the var column with "
            "gene symbols, e.g. 'feature_name'), or set adata.var_names to the gene symbols."
        )
        raise ValueError(msg)


def _names_source(*, use_raw: bool, gene_symbols: str | None) -> str:
    """Name where gene names come from, for messages."""
    var = "adata.raw.var" if use_raw else "adata.var"
    return f"{var}[{gene_symbols!r}]" if gene_symbols is not None else f"{var}_names"


def warn_duplicate_gene_names(names: np.ndarray, *, source: str) -> int:
    """Warn when gene names repeat; return how many names occur more than once.

    Each matrix column is ranked on its own, so with repeated names a cell's top genes
    (and the prompt built from them) can name the same gene twice. That is kept (as the
    authors' code did); the warning says how to avoid it.

    Parameters
    ----------
    names
        Gene names in column order (from :func:`gene_names`).
    source
        Where the names come from, for the message (``"var_names"``,
        ``"var['feature_name']"``...).
    """
    counts = pd.Series(names).value_counts()
    repeated = counts[counts > 1]
    if repeated.empty:
        return 0
    from sc_cello1._logging import logger

    examples = ", ".join(f"{name!r} x{n}" for name, n in repeated.head(3).items())
    fix = (
        "call adata.var_names_make_unique() (or sum the repeated columns)"
        if source.endswith("var_names")
        else "pick gene_symbols= a column with unique names (or sum the repeated columns)"
    )
    logger.warning(
        "%d gene names in %s occur more than once (%s); each column is ranked on its own, "
        "so a cell's top genes can name a gene twice. To avoid that, %s.",
        len(repeated),
        source,
        examples,
        fix,
    )
    return len(repeated)


def _is_backed_sparse(X: Any) -> bool:
    try:
        from anndata.abc import CSCDataset, CSRDataset
    except ImportError:  # pragma: no cover - anndata < 0.11
        from anndata.experimental import CSCDataset, CSRDataset
    return isinstance(X, CSRDataset | CSCDataset)


def _raise_bad_values(n_negative: int, n_nan: int, what: str, n_inf: int = 0) -> None:
    if n_inf:
        msg = (
            f"{what} has infinite values (+inf or -inf), which would top (or end) every "
            "cell's gene list; fix them (e.g. np.nan_to_num, or recompute the matrix), or pass "
            "layer= (e.g. layer='counts') or use_raw=True to read another matrix."
        )
        raise ValueError(msg)
    if n_nan:
        msg = (
            f"{what} has NaN values; the top expressed genes are undefined. Pass layer= "
            "(e.g. layer='counts') or use_raw=True to read a matrix of expression values."
        )
        raise ValueError(msg)
    if n_negative:
        msg = (
            f"{what} has negative values: it looks scaled (e.g. by sc.pp.scale), so its "
            "highest values are not the most expressed genes. Pass layer= "
            "(e.g. layer='counts') or use_raw=True to read unscaled expression."
        )
        raise ValueError(msg)


def _check_values(values: np.ndarray, what: str) -> None:
    """Raise if ``values`` holds negative, NaN or infinite numbers."""
    if values.dtype.kind == "b" or values.dtype.kind == "u" or values.size == 0:
        return
    if values.dtype.kind == "f":
        n_nan = int(np.isnan(values).sum()) if np.isnan(values.min()) else 0
        n_inf = int(np.isinf(values).sum())
        _raise_bad_values(int((values < 0).any()), n_nan, what, n_inf)
        return
    _raise_bad_values(int(values.min() < 0), 0, what)


def check_nonnegative(X: Any, *, what: str = "X") -> None:
    """Raise if the expression matrix has negative, NaN or infinite values.

    Scaled data (:func:`scanpy.pp.scale`) has negative values, and its highest values
    are not the most expressed genes. Sparse matrices are checked on their stored
    values; dense and backed matrices are read in chunks, so the check never loads a
    backed matrix into memory.

    Parameters
    ----------
    X
        A numpy array, a scipy sparse matrix, an h5py dataset or an anndata backed
        sparse dataset.
    what
        How to name the matrix in the error message, e.g. ``"adata.layers['counts']"``.

    Raises
    ------
    ValueError
        If any value is negative, NaN, ``+inf`` or ``-inf``; the message says to pass
        ``layer=`` or ``use_raw=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from sc_cello1._validate import check_nonnegative
    >>> check_nonnegative(np.array([[0.0, 1.5]]))
    """
    if sparse.issparse(X):
        _check_values(np.asarray(X.data), what)
        return
    if _is_backed_sparse(X):
        data = X.group["data"]
        for start in range(0, data.shape[0], _SCAN_VALUES):
            _check_values(np.asarray(data[start : start + _SCAN_VALUES]), what)
        return
    if isinstance(X, np.ndarray):
        _check_values(X, what)
        return
    n_rows = X.shape[0]
    for start in range(0, n_rows, _SCAN_ROWS):
        _check_values(np.asarray(X[start : start + _SCAN_ROWS]), what)


# --------------------------------------------------------------------------- scalars


def check_int(name: str, value: Any, minimum: int) -> int:
    """Reject a non-integer (or a bool) or one below ``minimum``; return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"`{name}` must be an integer, got {value!r}."
        raise TypeError(msg)
    if value < minimum:
        msg = f"`{name}`={value} must be at least {minimum}."
        raise ValueError(msg)
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """Reject anything but ``True``/``False`` (no truthy strings or numbers)."""
    if not isinstance(value, bool | np.bool_):
        msg = f"`{name}` must be True or False, got {value!r}."
        raise TypeError(msg)
    return bool(value)


def is_sequence(value: Any) -> bool:
    """Tell whether ``value`` is an iterable other than a string or bytes."""
    return not isinstance(value, str | bytes) and hasattr(value, "__iter__")


def check_obs_key(adata: AnnData, key: Any, what: str, hint: str) -> None:
    """Require ``key`` to be an existing ``obs`` column; ``hint`` says how to fix it."""
    if not isinstance(key, str):
        msg = f"`{what}` must be the name of an obs column (a string), got {type(key).__name__}."
        raise TypeError(msg)
    if key not in adata.obs.columns:
        msg = f"`obs[{key!r}]` not found; {hint}"
        raise KeyError(msg)

"""Per-cell top expressed genes, as the Cell-o1 authors listed them in prompts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from .._logging import log_elapsed, logger
from .._validate import (
    _is_backed_sparse,
    _names_source,
    check_nonnegative,
    expression_matrix,
    gene_names,
    warn_duplicate_gene_names,
)

if TYPE_CHECKING:
    from anndata import AnnData

from ._top_genes_common import (
    DEFAULT_CHUNK_SIZE,
    INDEX_DTYPE,
    TIE_ORDERS,
    _progress,
)


def _as_kernel_values(a: np.ndarray) -> np.ndarray:
    """Values as float32 or float64, the two dtypes the kernels are compiled for.

    float32 and float64 pass unchanged; integers become float64 (exact below 2**53),
    float16 and bool float32. Fewer dtypes mean fewer (slow) first-call compilations.
    """
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    if a.dtype.kind in "iu" or a.dtype.itemsize > 4:
        return a.astype(np.float64)
    return a.astype(np.float32)


def _resolve_rows(rows: Any, n_obs: int) -> np.ndarray:
    if rows is None:
        return np.arange(n_obs, dtype=np.int64)
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (n_obs,):
            msg = f"A boolean rows mask must have length n_obs={n_obs}, not shape {rows.shape}."
            raise ValueError(msg)
        return np.flatnonzero(rows).astype(np.int64)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        msg = f"rows must be a 1-d array of row positions (integers) or a boolean mask, not {rows.dtype} of shape {rows.shape}."
        raise TypeError(msg)
    rows = rows.astype(np.int64, copy=False)
    if rows.size and (rows.min() < 0 or rows.max() >= n_obs):
        msg = (
            f"rows must be positions in [0, {n_obs}); got values from {rows.min()} to {rows.max()}."
        )
        raise ValueError(msg)
    return rows


def _csr_top(m, data, rows, n, out, kernels) -> None:
    """Run the CSR kernel on rows ``rows`` of ``m``; ``out`` gets their top ``n``.

    ``data`` holds ``m.data`` as float32 or float64. Rows with duplicate entries are
    recomputed after summing their duplicates (only those rows are copied).
    """
    dup = np.zeros(rows.shape[0], dtype=np.bool_)
    kernels.csr_top(data, m.indices, m.indptr, rows, n, m.shape[1], out, dup)
    if dup.any():
        bad = np.flatnonzero(dup)
        sub = sparse.csr_matrix(m[rows[bad]], copy=True)
        sub.sum_duplicates()
        fixed = np.empty((bad.shape[0], n), dtype=INDEX_DTYPE)
        again = np.zeros(bad.shape[0], dtype=np.bool_)
        local = np.arange(bad.shape[0], dtype=np.int64)
        kernels.csr_top(
            _as_kernel_values(sub.data),
            sub.indices,
            sub.indptr,
            local,
            n,
            sub.shape[1],
            fixed,
            again,
        )
        out[bad] = fixed


def _check_tie_order(tie_order: Any) -> str:
    """Reject a tie order other than ``"position"`` and ``"authors"``."""
    if not isinstance(tie_order, str) or tie_order not in TIE_ORDERS:
        msg = (
            f"tie_order must be 'position' (equal values by gene position, the default) or "
            f"'authors' (the order of the Cell-o1 authors' numpy loop), not {tie_order!r}."
        )
        raise ValueError(msg)
    return tie_order


def _check_sizes(n_genes: Any, chunk_size: Any, n_vars: int) -> None:
    """Reject a non-positive or too large ``n_genes`` and a non-positive ``chunk_size``."""
    if isinstance(n_genes, bool) or not isinstance(n_genes, int | np.integer) or n_genes < 1:
        msg = f"n_genes must be a positive integer, not {n_genes!r}."
        raise ValueError(msg)
    if n_genes > n_vars:
        msg = f"n_genes={n_genes} is larger than the number of genes ({n_vars}); pass n_genes<={n_vars}."
        raise ValueError(msg)
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int | np.integer)
        or chunk_size < 1
    ):
        msg = f"chunk_size must be a positive integer, not {chunk_size!r}."
        raise ValueError(msg)


def top_gene_indices(
    X: Any,
    n_genes: int,
    *,
    rows: Any = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    tie_order: str = "position",
) -> np.ndarray:
    """Positions of the ``n_genes`` highest values of each row, highest first.

    With ``tie_order="position"`` (default) equal values are ordered by gene position,
    lower position first, so the result is defined by the data alone. Values that are
    zero (or below, see Notes) come after all positive ones; when a row has fewer than
    ``n_genes`` positive values the remaining slots hold its zero-valued genes in gene
    order. With ``tie_order="authors"`` every row gets exactly what the Cell-o1
    authors' per-cell loop gives with the numpy in use: ``idx = np.argpartition(row,
    -n_genes)[-n_genes:]``, then ``idx[np.argsort(row[idx])[::-1]]``, on the densified
    row in its stored dtype (zero-valued genes fill in that same order).

    Parameters
    ----------
    X
        Cells x genes: a numpy array, a scipy sparse matrix (CSR and CSC are read in
        place; other formats are converted to CSR), an h5py dataset or an anndata backed
        sparse dataset (``adata.X`` of ``anndata.read_h5ad(path, backed='r')``).
    n_genes
        How many genes per row; at most the number of columns.
    rows
        Row positions (or a boolean mask) to compute; ``None`` computes every row. The
        output follows this order, duplicates included.
    chunk_size
        Rows read and processed at a time (columns for CSC matrices with
        ``tie_order="position"``). Bounds the memory of backed and dense inputs; the
        whole matrix is never densified.
    tie_order
        ``"position"`` or ``"authors"``, see above. ``"authors"`` densifies blocks of
        rows (about 16 MiB each, with numpy's positions), so it costs a numpy
        ``argpartition`` of every full row: 40 to 75 times slower than ``"position"``
        on CELLxGENE-shaped sparse data (``benchmarks/README.md``), and its order among
        equal values depends on the numpy version and on the CPU features numpy
        dispatches to.

    Returns
    -------
    Array of ``int32``, ``len(rows) x n_genes``: column positions.

    Notes
    -----
    The matrix is assumed to hold expression values: call
    :func:`sc_cello1._validate.check_nonnegative` first. ``"position"`` treats negative
    values as zeros; ``"authors"`` ranks the values as they are, as the authors' loop
    did. Sparse inputs with duplicate entries are summed (chunk by chunk).

    Examples
    --------
    >>> import numpy as np
    >>> from sc_cello1.pp._top_genes import top_gene_indices
    >>> top_gene_indices(np.array([[0.0, 2.0, 1.0, 2.0]]), 3).tolist()
    [[1, 3, 2]]
    """
    if len(X.shape) != 2:
        msg = f"X must be 2-d (cells x genes), not of shape {X.shape}."
        raise ValueError(msg)
    n_obs, n_vars = X.shape
    _check_sizes(n_genes, chunk_size, n_vars)
    tie_order = _check_tie_order(tie_order)
    n = int(n_genes)
    want = _resolve_rows(rows, n_obs)
    out = np.empty((want.shape[0], n), dtype=INDEX_DTYPE)
    if want.shape[0] == 0:
        return out
    if not (
        sparse.issparse(X)
        or isinstance(X, np.ndarray)
        or _is_backed_sparse(X)
        or hasattr(X, "__getitem__")
    ):
        msg = f"Unsupported matrix type {type(X).__name__}; pass a numpy array, a scipy sparse matrix or a backed AnnData matrix."
        raise TypeError(msg)
    if tie_order == "authors":
        from ._top_genes_authors import top_authors

        return top_authors(X, n, want, out, chunk_size)

    from . import _top_genes_kernels as kernels

    if sparse.issparse(X) and X.format == "csc":
        return _top_csc(X, n, want, out, chunk_size, kernels, backed=False)
    if _is_backed_sparse(X) and X.format == "csc":
        return _top_csc(X, n, want, out, chunk_size, kernels, backed=True)
    if sparse.issparse(X):
        return _top_csr_memory(X, n, want, out, chunk_size, kernels)
    if isinstance(X, np.ndarray):
        return _top_dense_memory(np.asarray(X), n, want, out, chunk_size, kernels)
    return _top_backed_rows(X, n, want, out, chunk_size, kernels)


def _top_csr_memory(X, n, want, out, chunk_size, kernels):
    m = sparse.csr_matrix(X if X.format == "csr" else X.tocsr())
    data = _as_kernel_values(np.asarray(m.data))
    with _progress(want.shape[0], "top genes") as bar:
        for start in range(0, want.shape[0], chunk_size):
            stop = min(start + chunk_size, want.shape[0])
            _csr_top(m, data, want[start:stop], n, out[start:stop], kernels)
            bar.update(stop - start)
    return out


def _top_dense_memory(X, n, want, out, chunk_size, kernels):
    with _progress(want.shape[0], "top genes") as bar:
        for start in range(0, want.shape[0], chunk_size):
            stop = min(start + chunk_size, want.shape[0])
            block = _as_kernel_values(np.ascontiguousarray(X[want[start:stop]]))
            local = np.arange(stop - start, dtype=np.int64)
            kernels.dense_top(block, local, n, out[start:stop])
            bar.update(stop - start)
    return out


def _top_backed_rows(X, n, want, out, chunk_size, kernels):
    """Backed CSR or dense (h5py) matrices: read sorted unique rows chunk by chunk."""
    uniq, inverse = np.unique(want, return_inverse=True)
    uniq_out = out if uniq.shape[0] == want.shape[0] else np.empty((uniq.shape[0], n), INDEX_DTYPE)
    with _progress(uniq.shape[0], "top genes") as bar:
        for start in range(0, uniq.shape[0], chunk_size):
            stop = min(start + chunk_size, uniq.shape[0])
            chunk = uniq[start:stop]
            lo, hi = int(chunk[0]), int(chunk[-1]) + 1
            if hi - lo <= 2 * chunk.shape[0]:
                block = X[lo:hi]
                local = chunk - lo
            else:
                block = X[chunk]
                local = np.arange(chunk.shape[0], dtype=np.int64)
            if sparse.issparse(block):
                block = sparse.csr_matrix(block)
                data = _as_kernel_values(np.asarray(block.data))
                _csr_top(block, data, local, n, uniq_out[start:stop], kernels)
            else:
                block = _as_kernel_values(np.ascontiguousarray(np.asarray(block)))
                kernels.dense_top(block, local, n, uniq_out[start:stop])
            bar.update(stop - start)
    if uniq_out is not out:
        out[:] = uniq_out[inverse.reshape(-1)]
    return out


def _top_csc(X, n, want, out, chunk_size, kernels, *, backed):
    """CSC matrices: stream column blocks into a running top ``n`` per wanted row."""
    n_obs, n_vars = X.shape
    uniq, inverse = np.unique(want, return_inverse=True)
    slot_of_row = np.full(n_obs, -1, dtype=np.int64)
    slot_of_row[uniq] = np.arange(uniq.shape[0])
    vals = np.empty((uniq.shape[0], n), dtype=np.float64)
    cols = np.empty((uniq.shape[0], n), dtype=np.int64)
    counts = np.zeros(uniq.shape[0], dtype=np.int64)
    if not backed:
        m = _canonical_csc(X)
        data = _as_kernel_values(np.asarray(m.data))
    with _progress(n_vars, "top genes (genes of a CSC matrix)") as bar:
        for c0 in range(0, n_vars, chunk_size):
            c1 = min(c0 + chunk_size, n_vars)
            if backed:
                block = X[:, c0:c1]
                block = _canonical_csc(block)
                kernels.csc_update(
                    _as_kernel_values(np.asarray(block.data)), block.indices, block.indptr,
                    c0, slot_of_row, vals, cols, counts, n,
                )  # fmt: skip
            else:
                kernels.csc_update(
                    data, m.indices, m.indptr[c0 : c1 + 1], c0, slot_of_row, vals, cols, counts, n
                )
            bar.update(c1 - c0)
    uniq_out = out if uniq.shape[0] == want.shape[0] else np.empty((uniq.shape[0], n), INDEX_DTYPE)
    kernels.csc_finish(vals, cols, counts, n, uniq_out)
    if uniq_out is not out:
        out[:] = uniq_out[inverse.reshape(-1)]
    return out


def _canonical_csc(m):
    """CSC without duplicate entries: a column's row indices are checked like CSR rows."""
    from ._top_genes_kernels import csr_has_duplicates

    m = sparse.csc_matrix(m)
    if m.has_sorted_indices and m.has_canonical_format:
        return m
    if csr_has_duplicates(m.indices, m.indptr, m.shape[0]):
        m = m.copy()
        m.sum_duplicates()
    return m


def top_genes(
    adata: AnnData,
    n_genes: int = 50,
    *,
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    key_added: str = "top_genes",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    tie_order: str = "position",
    copy: bool = False,
) -> AnnData | None:
    """Find each cell's top expressed genes, highest first, as Cell-o1 prompts list them.

    For every cell, the positions of the ``n_genes`` genes with the highest values in
    its row of the expression matrix, highest first. By default equal values are
    ordered by gene position, lower position first (raw and log-normalised counts tie a
    lot), so the lists are defined by the data alone. A cell with fewer than
    ``n_genes`` nonzero genes gets all of them first and then zero-valued genes. Works
    on dense, CSR, CSC and backed (``backed='r'``) matrices chunk by chunk, without
    densifying the matrix. Read the names with :func:`sc_cello1.get.top_genes`.

    ``tie_order="authors"`` reproduces, gene by gene, the lists of the Cell-o1 authors'
    ``build_context.py`` loop run with the numpy installed here (see Notes).

    Parameters
    ----------
    adata
        Annotated data matrix (cells x genes), in memory or backed.
    n_genes
        Genes per cell (the authors used 50).
    layer
        Read ``adata.layers[layer]`` instead of ``adata.X``.
    use_raw
        ``True`` reads ``adata.raw.X``; the stored positions then index
        ``adata.raw.var_names``. ``None`` (default) or ``False`` read ``adata.X`` (or
        the layer): ``.raw`` is used only when asked for.
    gene_symbols
        Column of ``var`` (``raw.var`` with ``use_raw``) whose values name the genes
        (the authors used ``'feature_name'``); checked here and recorded for
        :func:`sc_cello1.get.top_genes`. ``None`` uses ``var_names``. Names that
        repeat are kept, each column ranked on its own, so a cell's list can name a
        gene twice; a warning says so (``adata.var_names_make_unique()`` avoids it).
    key_added
        Where results go: ``adata.obsm[key_added]`` and ``adata.uns[key_added]``.
    chunk_size
        Cells read and processed at a time (genes, for CSC matrices with
        ``tie_order="position"``).
    tie_order
        How equal values are ordered. ``"position"`` (default): lower gene position
        first, and zero-valued genes fill in gene order. ``"authors"``: the order of the
        authors' loop, ``idx = np.argpartition(row, -n_genes)[-n_genes:]`` then
        ``idx[np.argsort(row[idx])[::-1]]`` on each densified row in its stored dtype,
        zero-valued genes included. Much slower (a numpy selection over every full row)
        and not portable, see Notes.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or a copy of ``adata`` when ``copy=True``. Writes

    ``adata.obsm[key_added]``
        ``int32`` array, ``n_obs x n_genes``: gene positions into ``adata.var_names``
        (``adata.raw.var_names`` with ``use_raw=True``), highest value first.
    ``adata.uns[key_added]['params']``
        ``n_genes``, ``layer``, ``use_raw``, ``gene_symbols``, ``key_added``,
        ``chunk_size``, ``tie_order``, ``numpy_version`` (which sets the order
        among equal values with ``tie_order="authors"``), ``var_source`` (``'raw'``, ``'X'`` or ``'layers'``), ``n_vars``
        and the sc-cello1 ``version``. Arguments that are ``None`` are stored as ``''``
        (``uns`` cannot hold ``None`` in an ``.h5ad`` file); ``use_raw`` is stored as a
        bool.

    Raises
    ------
    ValueError
        ``n_genes`` above the number of genes, a matrix with negative or NaN values
        (scaled data: pass ``layer=`` or ``use_raw=True``), an unknown ``tie_order``,
        or ``copy=True`` on backed AnnData.
    KeyError
        A missing layer, ``.raw`` or ``var`` column.

    Notes
    -----
    Parity with the authors: their ``build_context.py`` took, per cell, the densified
    row, ``idx = np.argpartition(row, -50)[-50:]`` and ``idx[np.argsort(row[idx])[::-1]]``.
    With either tie order the value at every rank is theirs, and so is the gene
    wherever that value is unique in the row. Among equal values their order is what
    numpy's introselect and (unstable) default sort leave: not defined by the data,
    and not the same everywhere: numpy dispatches these routines to SIMD code chosen
    by the CPU (x86-simd-sort's AVX2 or AVX-512 paths), and they change between numpy
    versions. On PBMC 3k raw counts, turning off numpy's AVX2 path
    (``NPY_DISABLE_CPU_FEATURES=X86_V3``) changes the top-50 list of every cell, and
    the set of 50 genes in 77% of cells. ``"position"`` is therefore the default: the
    same lists on every machine and numpy, and 40 to 75 times faster than
    ``"authors"`` on CELLxGENE-shaped sparse data (``"authors"`` runs numpy's
    selection over every full row; ``"position"`` reads each stored value once).
    ``"authors"`` gives exactly what their loop gives with the numpy and CPU at hand,
    for comparisons with that loop; it cannot recover the order of the published
    CellPuzzles unless run on a numpy and CPU that behave like the authors'.

    Examples
    --------
    >>> import scanpy as sc
    >>> import sc_cello1 as cello1
    >>> adata = sc.datasets.pbmc68k_reduced()
    >>> cello1.pp.top_genes(adata, use_raw=True)
    >>> adata.obsm["top_genes"].shape
    (700, 50)
    >>> cello1.get.top_genes(adata).iloc[0, :3].tolist()  # doctest: +SKIP
    ['MALAT1', 'TMSB4X', 'B2M']
    """
    from .._version import __version__

    if not isinstance(key_added, str) or not key_added:
        msg = f"key_added must be a non-empty string, not {key_added!r}."
        raise TypeError(msg)
    if copy and adata.isbacked:
        msg = "copy=True is not supported for backed AnnData; call adata.to_memory() first, or pass copy=False."
        raise ValueError(msg)
    tie_order = _check_tie_order(tie_order)
    X, var_names, var = expression_matrix(adata, layer=layer, use_raw=use_raw)
    n_vars = X.shape[1]
    _check_sizes(n_genes, chunk_size, n_vars)
    names = gene_names(var, var_names, gene_symbols)
    what = (
        "adata.raw.X"
        if use_raw
        else (f"adata.layers[{layer!r}]" if layer is not None else "adata.X")
    )
    check_nonnegative(X, what=what)
    warn_duplicate_gene_names(
        names, source=_names_source(use_raw=bool(use_raw), gene_symbols=gene_symbols)
    )

    with log_elapsed("top %d genes of %d cells (%s order)", n_genes, adata.n_obs, tie_order):
        positions = top_gene_indices(
            X, int(n_genes), chunk_size=int(chunk_size), tie_order=tie_order
        )

    target = adata.copy() if copy else adata
    target.obsm[key_added] = positions
    target.uns[key_added] = {
        "params": {
            "n_genes": int(n_genes),
            "layer": layer if layer is not None else "",
            "use_raw": bool(use_raw),
            "gene_symbols": gene_symbols if gene_symbols is not None else "",
            "key_added": key_added,
            "chunk_size": int(chunk_size),
            "tie_order": tie_order,
            "numpy_version": np.__version__,
            "var_source": "raw" if use_raw else ("layers" if layer is not None else "X"),
            "n_vars": int(n_vars),
            "version": __version__,
        }
    }
    logger.debug("stored obsm[%r] and uns[%r]", key_added, key_added)
    return target if copy else None

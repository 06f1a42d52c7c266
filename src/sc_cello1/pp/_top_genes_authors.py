"""``tie_order="authors"``: the Cell-o1 authors' per-cell numpy loop, on blocks of rows.

Their ``build_context.py`` did, for every cell, ``idx = np.argpartition(row, -50)[-50:]``
then ``idx = idx[np.argsort(row[idx])[::-1]]`` on the densified row ``X[i, :]``. Among
equal values the result is whatever numpy's selection and default sort leave, so the
only way to get it exactly is to call the same numpy functions on the same values:
here on a dense block of rows at once, along ``axis=1``. numpy applies the same 1-d
routine to each row of the block (tests check row for row against the 1-d calls, on
tie-heavy rows of float32, float64 and integer dtypes), and values keep the matrix's
stored dtype, as ``X[i, :]`` did. numpy releases the GIL in these calls, so blocks
run on ``numba.get_num_threads()`` threads.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy import sparse

from .._validate import _is_backed_sparse
from ._top_genes_common import _AUTHORS_BLOCK_BYTES, DEFAULT_CHUNK_SIZE, INDEX_DTYPE, _progress

#: Bytes of sparse rows gathered per pass over a backed CSC file.
_CSC_PASS_BYTES = 256 << 20


def authors_block(dense: np.ndarray, n: int) -> np.ndarray:
    """Apply the authors' two lines to every row of ``dense``: top ``n`` positions, highest first."""
    idx = np.argpartition(dense, -n, axis=1)[:, -n:]
    order = np.argsort(np.take_along_axis(dense, idx, axis=1), axis=1)[:, ::-1]
    return np.take_along_axis(idx, order, axis=1)


def _block_rows(n_vars: int, itemsize: int) -> int:
    """Rows per dense block: the values and numpy's int64 positions in about 16 MiB."""
    return max(1, _AUTHORS_BLOCK_BYTES // (n_vars * (itemsize + 8)))


def _threads() -> int:
    import numba

    return max(1, int(numba.get_num_threads()))


def _dense(block: Any) -> np.ndarray:
    """Return a block of rows as a C-contiguous array of its stored dtype (like ``X[i, :]``)."""
    if sparse.issparse(block):
        return np.asarray(block.toarray(order="C"))
    return np.ascontiguousarray(np.asarray(block))


def _run_sparse(m, n: int, dst: np.ndarray, pool: ThreadPoolExecutor) -> None:
    """Top ``n`` of every row of the in-memory CSR ``m`` into ``dst``, block by block."""
    step = _block_rows(m.shape[1], m.dtype.itemsize)

    def one(b0: int) -> None:
        b1 = min(b0 + step, m.shape[0])
        dst[b0:b1] = authors_block(_dense(m[b0:b1]), n)

    list(pool.map(one, range(0, m.shape[0], step)))


def top_authors(X: Any, n: int, want: np.ndarray, out: np.ndarray, chunk_size: int) -> np.ndarray:
    """Fill ``out`` (``len(want) x n``) with the authors' top ``n`` of rows ``want`` of ``X``."""
    with ThreadPoolExecutor(_threads()) as pool:
        if isinstance(X, np.ndarray):
            return _dense_memory(X, n, want, out, chunk_size, pool)
        if sparse.issparse(X) and X.format != "csc":
            m = X if X.format == "csr" else X.tocsr()
            return _sparse_rows(m, n, want, out, chunk_size, pool)
        uniq, inverse = np.unique(want, return_inverse=True)
        uniq_out = (
            out if uniq.shape[0] == want.shape[0] else np.empty((uniq.shape[0], n), INDEX_DTYPE)
        )
        if sparse.issparse(X):
            _csc_memory(X, n, uniq, uniq_out, chunk_size, pool)
        elif _is_backed_sparse(X) and X.format == "csc":
            _csc_backed(X, n, uniq, uniq_out, chunk_size, pool)
        else:
            _backed_rows(X, n, uniq, uniq_out, chunk_size, pool)
    if uniq_out is not out:
        out[:] = uniq_out[inverse.reshape(-1)]
    return out


def _dense_memory(X, n, want, out, chunk_size, pool):
    step = _block_rows(X.shape[1], X.dtype.itemsize)

    def one(b0: int) -> None:
        b1 = min(b0 + step, want.shape[0])
        out[b0:b1] = authors_block(_dense(X[want[b0:b1]]), n)

    with _progress(want.shape[0], "top genes (authors' order)") as bar:
        for start in range(0, want.shape[0], chunk_size * 4):
            stop = min(start + chunk_size * 4, want.shape[0])
            list(pool.map(one, range(start, stop, step)))
            bar.update(stop - start)
    return out


def _sparse_rows(m, n, want, out, chunk_size, pool):
    """In-memory CSR: gather ``chunk_size`` wanted rows, then densify them block by block."""
    with _progress(want.shape[0], "top genes (authors' order)") as bar:
        for start in range(0, want.shape[0], chunk_size):
            stop = min(start + chunk_size, want.shape[0])
            rows = want[start:stop]
            contiguous = rows[-1] - rows[0] == rows.shape[0] - 1 and bool(
                np.all(np.diff(rows) == 1)
            )
            sub = m[int(rows[0]) : int(rows[-1]) + 1] if contiguous else m[rows]
            _run_sparse(sparse.csr_matrix(sub), n, out[start:stop], pool)
            bar.update(stop - start)
    return out


def _csc_memory(X, n, uniq, out, chunk_size, pool):
    """In-memory CSC: rows are gathered ``chunk_size`` at a time (each a scan of the matrix)."""
    with _progress(uniq.shape[0], "top genes (authors' order, CSC)") as bar:
        for start in range(0, uniq.shape[0], chunk_size):
            stop = min(start + chunk_size, uniq.shape[0])
            sub = sparse.csr_matrix(X[uniq[start:stop]])
            _run_sparse(sub, n, out[start:stop], pool)
            bar.update(stop - start)


def _backed_rows(X, n, uniq, out, chunk_size, pool):
    """Backed CSR or dense (h5py): read sorted unique rows ``chunk_size`` at a time."""
    with _progress(uniq.shape[0], "top genes (authors' order)") as bar:
        for start in range(0, uniq.shape[0], chunk_size):
            stop = min(start + chunk_size, uniq.shape[0])
            chunk = uniq[start:stop]
            lo, hi = int(chunk[0]), int(chunk[-1]) + 1
            if hi - lo <= 2 * chunk.shape[0]:
                block = X[lo:hi]
                local = chunk - lo
            else:
                block = X[chunk]
                local = None
            if sparse.issparse(block):
                block = sparse.csr_matrix(block)
                _run_sparse(block if local is None else block[local], n, out[start:stop], pool)
            else:
                block = np.asarray(block)
                _dense_memory(
                    block, n, np.arange(block.shape[0]) if local is None else local,
                    out[start:stop], chunk_size, pool,
                )  # fmt: skip
            bar.update(stop - start)


def _stored_values(X) -> int:
    for path in ("group", "_group"):
        group = getattr(X, path, None)
        if group is not None and "data" in group:
            return int(group["data"].shape[0])
    return X.shape[0] * X.shape[1]


def _csc_backed(X, n, uniq, out, chunk_size, pool):
    """Backed CSC: each pass reads every column block once and keeps the rows of the pass.

    A pass gathers as many wanted rows as fit in about 256 MiB of sparse values (at
    least ``chunk_size``), so the file is read ``ceil(rows' bytes / 256 MiB)`` times,
    in blocks of at least ``DEFAULT_CHUNK_SIZE`` columns.
    """
    n_obs, n_vars = X.shape
    width = max(chunk_size, DEFAULT_CHUNK_SIZE)
    per_row = max(1.0, _stored_values(X) / max(1, n_obs)) * (X.dtype.itemsize + 8)
    rows_per_pass = max(chunk_size, int(_CSC_PASS_BYTES // per_row))
    with _progress(uniq.shape[0], "top genes (authors' order, backed CSC)") as bar:
        for start in range(0, uniq.shape[0], rows_per_pass):
            stop = min(start + rows_per_pass, uniq.shape[0])
            rows = uniq[start:stop]
            pieces = []
            for c0 in range(0, n_vars, width):
                block = sparse.csc_matrix(X[:, c0 : min(c0 + width, n_vars)])
                pieces.append(sparse.csr_matrix(block[rows]))
            sub = sparse.hstack(pieces, format="csr")
            _run_sparse(sub, n, out[start:stop], pool)
            bar.update(stop - start)

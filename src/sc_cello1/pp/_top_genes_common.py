"""Constants and the progress bar shared by both top-gene orders (no cycle between them)."""

from __future__ import annotations

import numpy as np

from .._logging import progress_bar

#: Rows (columns for CSC matrices) read and processed at a time.
DEFAULT_CHUNK_SIZE = 2048

#: Seconds of work before the progress bar of :func:`~sc_cello1.pp.top_genes` appears.
PROGRESS_DELAY = 2.0

#: dtype of the returned gene positions.
INDEX_DTYPE = np.int32

#: The tie orders :func:`~sc_cello1.pp._top_genes.top_gene_indices` knows.
TIE_ORDERS = ("position", "authors")

#: Bytes of one dense block (its values and numpy's int64 positions) in ``tie_order="authors"``.
_AUTHORS_BLOCK_BYTES = 16 << 20


def _progress(total: int, desc: str):
    # Shown only when the work takes more than a few seconds (large matrices).
    return progress_bar(total=total, desc=desc, unit="cells", delay=PROGRESS_DELAY)

"""A prior per query cluster by label transfer from a labelled reference.

Two methods, both on the genes the query and the reference share:

- ``"ingest"`` (default, scanpy only): both sides log-normalised (``log1p`` of counts per
  10k when a matrix holds integers, else taken as log-normalised already), the
  ``n_top_genes`` shared genes of highest variance in the reference kept, a PCA of the
  reference (scanpy, on the sparse matrix: never densified), its kNN graph, then
  :func:`scanpy.tl.ingest` maps each query cell to the majority label of its reference
  neighbours. scanpy's ingest densifies the *query* on the kept genes (cells x
  ``n_top_genes``) and centres it by its own mean.
- ``"scanvi"`` (the ``scvi`` extra): scArches-style query mapping with scvi-tools. A
  trained ``scvi.model.SCANVI`` passed as ``reference_model`` is used as is; otherwise
  scVI then scANVI are trained on the reference counts. The query is mapped with
  ``SCANVI.load_query_data`` and a short fine-tune (``weight_decay=0``), then
  ``predict()`` labels each query cell. Both matrices must hold raw counts.

Per cluster the prior is the most frequent transferred label, its share of the
cluster's cells, and the whole distribution. It orders puzzles and is shown as a second
opinion; it is never a vote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from sc_cello1._logging import logger

if TYPE_CHECKING:
    from ._reference import Reference

#: The label transfer methods.
PRIOR_METHODS = ("ingest", "scanvi")

#: Extra that brings scvi-tools.
SCVI_EXTRA = "pip install 'sc-cello1[scvi]'"

_CHUNK = 8192
_SCANVI_UNLABELED = "__cello1_unlabelled__"


@dataclass
class Prior:
    """Transferred labels per query cell and their summary per cluster."""

    method: str
    cell_labels: np.ndarray
    label: list[str]
    share: list[float]
    distribution: list[dict[str, float]]
    ref_rep: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    def as_uns(self, clusters: list[str]) -> dict[str, Any]:
        """Per cluster: label, share and distribution (as labels and shares)."""
        return {
            "cluster": list(clusters),
            "label": list(self.label),
            "share": [float(s) for s in self.share],
            "distribution_labels": [list(d) for d in self.distribution],
            "distribution_shares": [[float(v) for v in d.values()] for d in self.distribution],
        }


def check_prior_args(method: Any, reference_model: Any, max_epochs: Any) -> str:
    """Reject an unknown method, a model without scANVI, or scANVI without scvi-tools."""
    import importlib.util

    from sc_cello1._validate import check_int

    if method not in PRIOR_METHODS:
        msg = f"`reference_prior` must be one of {list(PRIOR_METHODS)}, got {method!r}."
        raise ValueError(msg)
    if max_epochs is not None:
        check_int("reference_max_epochs", max_epochs, 1)
    if reference_model is not None and method != "scanvi":
        msg = "`reference_model` is a scANVI model: pass it with reference_prior='scanvi'."
        raise ValueError(msg)
    if method == "ingest":
        _check_pynndescent()
    if method == "scanvi":
        if importlib.util.find_spec("scvi") is None:
            msg = f"reference_prior='scanvi' needs scvi-tools: {SCVI_EXTRA} (or use 'ingest')."
            raise ImportError(msg)
        if reference_model is not None:
            kind = type(reference_model).__name__
            if kind != "SCANVI" or not getattr(reference_model, "is_trained", False):
                msg = (
                    f"`reference_model` must be a trained `scvi.model.SCANVI`, got {kind}; train "
                    "it on the reference (or pass reference_model=None to train one here)."
                )
                raise TypeError(msg)
    return str(method)


def _check_pynndescent() -> None:
    """Raise before any work where scanpy's ingest would fail (pynndescent 0.7)."""
    try:
        major, minor = (int(v) for v in version("pynndescent").split(".")[:2])
    except (ValueError, ImportError):  # pragma: no cover - not installed or odd version
        return
    if (major, minor) >= (0, 7):
        msg = (
            f"reference_prior='ingest' runs `sc.tl.ingest`, which fails with pynndescent "
            f"{version('pynndescent')} (its search forest is built with defaults that 0.7 "
            "leaves unset); install an earlier one: pip install 'pynndescent<0.7' (or use "
            "reference_prior='scanvi')."
        )
        raise ImportError(msg)


def _is_counts(X: Any, n_rows: int = 2000) -> bool:
    """Whether the first rows hold only whole numbers (raw counts)."""
    block = X[: min(n_rows, X.shape[0])]
    values = block.data if sparse.issparse(block) else np.asarray(block).ravel()
    return bool(np.all(np.mod(values, 1) == 0))


def _rows(X: Any, start: int, stop: int) -> sparse.csr_matrix:
    block = X[start:stop]
    return sparse.csr_matrix(block, dtype=np.float32)


def _lognorm(block: sparse.csr_matrix) -> sparse.csr_matrix:
    """``log1p`` of counts per 10k, row by row (sums over all genes of the row)."""
    sums = np.asarray(block.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    scale = (1e4 / sums).astype(np.float32)
    out = sparse.csr_matrix(sparse.diags(scale) @ block, dtype=np.float32)
    np.log1p(out.data, out=out.data)
    return out


def _prepared(X: Any, cols: np.ndarray, *, counts: bool, log: bool) -> sparse.csr_matrix:
    """Rows of ``X`` on columns ``cols``, log-normalised from counts if asked; chunked."""
    parts = []
    for start in range(0, X.shape[0], _CHUNK):
        block = _rows(X, start, min(start + _CHUNK, X.shape[0]))
        if log and counts:
            block = _lognorm(block)
        parts.append(block[:, cols])
    return sparse.csr_matrix(sparse.vstack(parts, format="csr"), dtype=np.float32)


def top_variance_genes(X: Any, cols: np.ndarray, *, counts: bool, n_top: int) -> np.ndarray:
    """Positions (into ``cols``) of the ``n_top`` columns of highest variance, log scale."""
    total = np.zeros(cols.size)
    total_sq = np.zeros(cols.size)
    for start in range(0, X.shape[0], _CHUNK):
        block = _rows(X, start, min(start + _CHUNK, X.shape[0]))
        if counts:
            block = _lognorm(block)
        block = block[:, cols]
        total += np.asarray(block.sum(axis=0)).ravel()
        total_sq += np.asarray(block.multiply(block).sum(axis=0)).ravel()
    n = X.shape[0]
    var = total_sq / n - (total / n) ** 2
    if cols.size <= n_top:
        return np.arange(cols.size)
    return np.sort(np.argsort(-var, kind="stable")[:n_top])


def summarise(
    cell_labels: np.ndarray, codes: np.ndarray, n_clusters: int
) -> tuple[list[str], list[float], list[dict[str, float]]]:
    """Per cluster: the most frequent label (ties: first in sorted order), its share, all shares."""
    label: list[str] = []
    share: list[float] = []
    dist: list[dict[str, float]] = []
    for k in range(n_clusters):
        values, counts = np.unique(cell_labels[codes == k].astype(str), return_counts=True)
        if values.size == 0:
            label.append("")
            share.append(0.0)
            dist.append({})
            continue
        order = np.lexsort((values, -counts))
        shares = counts[order] / counts.sum()
        label.append(str(values[order[0]]))
        share.append(float(shares[0]))
        dist.append({str(values[i]): float(s) for i, s in zip(order, shares, strict=True)})
    return label, share, dist


def _reference_pca(
    ref_x: sparse.csr_matrix, labels: np.ndarray, *, n_pcs: int, n_neighbors: int | None, seed: int
) -> Any:
    import anndata as ad
    import pandas as pd
    import scanpy as sc

    ref_small = ad.AnnData(X=ref_x, obs=pd.DataFrame({"label": pd.Categorical(labels)}, index=None))
    ref_small.obs_names = [str(i) for i in range(ref_small.n_obs)]
    sc.pp.pca(ref_small, n_comps=n_pcs, random_state=seed)
    if n_neighbors is not None:
        sc.pp.neighbors(ref_small, n_neighbors=n_neighbors, n_pcs=n_pcs, random_state=seed)
    return ref_small


def _label_transfer_failed(method: str, err: Exception) -> RuntimeError:
    msg = (
        f"Label transfer from the reference ({method}) failed: {type(err).__name__}: {err}. "
        "Check that the reference matrix holds expression of the same kind as the query's "
        "(`reference_layer=` / `reference_use_raw=`), try fewer `reference_n_pcs=` or "
        "`reference_n_neighbors=`, or the other `reference_prior=`."
    )
    return RuntimeError(msg)


def transfer_labels(
    query_X: Any,
    ref: Reference,
    *,
    codes: np.ndarray,
    n_clusters: int,
    method: str = "ingest",
    n_top_genes: int = 2000,
    n_pcs: int = 50,
    n_neighbors: int = 15,
    reference_model: Any = None,
    max_epochs: int | None = None,
    seed: int = 0,
) -> Prior:
    """Transfer the reference labels onto every query cell; summarise per cluster.

    ``query_X`` is the query matrix whose columns ``ref.query_cols`` index (in memory or
    backed: read in row chunks). Neither AnnData is written: the work is on new,
    smaller matrices of the kept genes.
    """
    started = time.perf_counter()
    q_counts = _is_counts(query_X)
    r_counts = _is_counts(ref.X)
    if method == "scanvi":
        _counts_or_raise(q_counts, "the query matrix", "layer")
        if reference_model is None:
            _counts_or_raise(r_counts, ref.where, "reference_layer")
    sel = top_variance_genes(ref.X, ref.ref_cols, counts=r_counts, n_top=n_top_genes)
    ref_x = _prepared(ref.X, ref.ref_cols[sel], counts=r_counts, log=True)
    n_comps = int(min(n_pcs, ref_x.shape[0] - 1, sel.size - 1))
    k = int(n_neighbors)
    if method == "ingest" and k >= ref.adata.n_obs:
        msg = (
            f"`reference_n_neighbors`={k} needs a reference of more than {k} cells "
            f"(it has {ref.adata.n_obs}); lower `reference_n_neighbors=`."
        )
        raise ValueError(msg)
    params: dict[str, Any] = {
        "method": method,
        "n_genes": int(sel.size),
        "gene_rule": "shared genes of highest variance of log1p(CP10k) in the reference",
        "query_log_normalised_here": bool(q_counts),
        "reference_log_normalised_here": bool(r_counts),
        "n_pcs": n_comps,
        "seed": int(seed),
    }
    try:
        ref_small = _reference_pca(
            ref_x,
            ref.labels,
            n_pcs=n_comps,
            n_neighbors=k if method == "ingest" else None,
            seed=seed,
        )
        if method == "ingest":
            params["n_neighbors"] = k
            params["scanpy_version"] = version("scanpy")
            cell_labels = _ingest(query_X, ref, ref_small, sel, q_counts)
        else:
            cell_labels = _scanvi(
                query_X, ref, sel, reference_model, max_epochs, seed, q_counts, r_counts, params
            )
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as err:
        raise _label_transfer_failed(method, err) from err
    label, share, dist = summarise(cell_labels, codes, n_clusters)
    params["seconds"] = round(time.perf_counter() - started, 3)
    logger.info(
        "annotate: reference prior by %s on %d genes in %.1f s",
        method,
        sel.size,
        params["seconds"],
    )
    return Prior(
        method=method,
        cell_labels=cell_labels,
        label=label,
        share=share,
        distribution=dist,
        ref_rep=np.asarray(ref_small.obsm["X_pca"]),
        params=params,
    )


def _obs_frame(n: int, prefix: str) -> Any:
    import pandas as pd

    return pd.DataFrame(index=pd.Index([f"{prefix}{i}" for i in range(n)]))


def _ingest(
    query_X: Any, ref: Reference, ref_small: Any, sel: np.ndarray, q_counts: bool
) -> np.ndarray:
    import anndata as ad
    import scanpy as sc

    q_x = _prepared(query_X, ref.query_cols[sel], counts=q_counts, log=True)
    names = [ref.shared_genes[j] for j in sel]
    ref_small.var_names = names
    query_small = ad.AnnData(X=q_x, obs=_obs_frame(q_x.shape[0], "q"))
    query_small.var_names = names
    sc.tl.ingest(query_small, ref_small, obs="label", embedding_method="pca")
    return np.asarray(query_small.obs["label"].astype(str), dtype=object)


def _counts_or_raise(counts: bool, what: str, arg: str) -> None:
    if not counts:
        msg = (
            f"reference_prior='scanvi' needs raw counts, but {what} holds non-integer values; "
            f"pass `{arg}='counts'` (a layer of raw counts), or use reference_prior='ingest'."
        )
        raise ValueError(msg)


def _scanvi(
    query_X: Any,
    ref: Reference,
    sel: np.ndarray,
    reference_model: Any,
    max_epochs: int | None,
    seed: int,
    q_counts: bool,
    r_counts: bool,
    params: dict[str, Any],
) -> np.ndarray:
    import anndata as ad
    import pandas as pd
    import scvi

    from sc_cello1._logging import progress_disabled

    scvi.settings.seed = int(seed)
    bar = not progress_disabled()
    epochs = int(max_epochs) if max_epochs is not None else None
    params["scvi_version"] = scvi.__version__
    if reference_model is None:
        names = [ref.shared_genes[j] for j in sel]
        ref_counts = ad.AnnData(
            X=_prepared(ref.X, ref.ref_cols[sel], counts=True, log=False),
            obs=pd.DataFrame(
                {"label": ref.labels.astype(str)},
                index=pd.Index([f"r{i}" for i in range(ref.adata.n_obs)]),
            ),
        )
        ref_counts.var_names = names
        scvi.model.SCVI.setup_anndata(ref_counts)
        vae = scvi.model.SCVI(ref_counts, n_latent=10)
        vae.train(max_epochs=epochs, enable_progress_bar=bar, accelerator="cpu")
        model = scvi.model.SCANVI.from_scvi_model(
            vae, unlabeled_category=_SCANVI_UNLABELED, labels_key="label"
        )
        model.train(max_epochs=epochs, enable_progress_bar=bar, accelerator="cpu")
        params["reference_model"] = "trained here: scVI then scANVI, n_latent=10"
    else:
        model = reference_model
        names = [ref.shared_genes[j] for j in sel]
        params["reference_model"] = "passed by the user"
    labels_key = model.adata_manager.registry["setup_args"]["labels_key"]
    unlabeled = model.unlabeled_category_
    cols = ref.query_cols[sel] if reference_model is None else ref.query_cols
    q_names = names if reference_model is None else list(ref.shared_genes)
    q_x = _prepared(query_X, cols, counts=True, log=False)
    query = ad.AnnData(X=q_x, obs=_obs_frame(q_x.shape[0], "q"))
    query.var_names = q_names
    query.obs[labels_key] = unlabeled
    scvi.model.SCANVI.prepare_query_anndata(query, model)
    mapped = scvi.model.SCANVI.load_query_data(query, model)
    mapped.train(
        max_epochs=epochs,
        plan_kwargs={"weight_decay": 0.0},
        enable_progress_bar=bar,
        accelerator="cpu",
        check_val_every_n_epoch=None,
    )
    params["max_epochs"] = epochs if epochs is not None else "scvi-tools default"
    return np.asarray(mapped.predict(), dtype=object).astype(str).astype(object)

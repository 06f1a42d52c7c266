"""A labelled reference for ``tl.annotate``: checks, candidates, known-answer cells, provenance.

Everything here reads the query and the reference and writes neither. The label
transfer that gives each query cluster a prior lives in :mod:`._reference_prior`.

Rules (also in ``docs/reference.md``):

- **Genes.** Query and reference genes are paired by name: each side's gene symbols
  (``gene_symbols`` / ``reference_gene_symbols``, else ``var_names``), ``_ENSG`` suffixes
  cut as in prompts; a name that repeats on one side pairs through its first column.
- **Candidates.** Without ``candidates`` the reference's labels are the candidates. With
  them, each candidate is matched onto one reference label by the rule that matches
  answers (:class:`._names.NameMatcher`: normalised names, Cell Ontology labels and exact
  synonyms); unmatched candidates and reference labels no candidate names are warned
  about and recorded.
- **Known-answer cells.** Per reference type, sample 0 is the cell nearest the type's
  centroid in the reference PCA of the prior; later samples are distinct random cells
  of that type (seeded), as many as the type has. Their top genes follow
  :func:`sc_cello1.pp.top_genes` on the reference's own expression (``reference_layer``
  / ``reference_use_raw``, scaled data rejected), ranked over the genes shared with the
  query, so a known cell lists only genes a query cell could list.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sc_cello1._logging import logger
from sc_cello1._validate import check_int, check_obs_key

if TYPE_CHECKING:
    from anndata import AnnData

#: Fewest genes the query and the reference must share (a prior and known cells from
#: fewer genes say little); ``min_shared_genes=`` changes it.
MIN_SHARED_GENES = 200


@dataclass
class Reference:
    """What the checks read from a reference (views into it; nothing is copied but labels)."""

    adata: AnnData
    label_key: str
    labels: np.ndarray
    types: list[str]
    codes: np.ndarray
    X: Any
    where: str
    genes: list[str]
    shared_genes: list[str]
    query_cols: np.ndarray
    ref_cols: np.ndarray
    labels_sha256: str
    layer: str | None = None
    use_raw: bool = False
    gene_symbols: str | None = None


@dataclass
class CandidateMap:
    """The candidates shown to the model and the reference label each one stands for."""

    candidates: list[str]
    type_of: dict[str, str]
    unmatched: list[str] = field(default_factory=list)
    unused_types: list[str] = field(default_factory=list)

    @property
    def candidate_of(self) -> dict[str, str]:
        """Reference label -> candidate name (labels no candidate names are absent)."""
        return {t: c for c, t in self.type_of.items()}

    def as_uns(self) -> dict[str, Any]:
        """Return the mapping as ``uns`` can store it (lists of strings)."""
        names = list(self.type_of)
        return {
            "candidates": names,
            "reference_labels": [self.type_of[c] for c in names],
            "unmatched_candidates": list(self.unmatched),
            "unused_reference_labels": list(self.unused_types),
        }


def labels_sha256(labels: np.ndarray) -> str:
    """Return the sha256 of the labels: UTF-8, in cell order, one per line (joined by newlines)."""
    return hashlib.sha256("\n".join(str(v) for v in labels).encode("utf-8")).hexdigest()


def _check_anndata(reference: Any) -> None:
    from anndata import AnnData

    if not isinstance(reference, AnnData):
        msg = (
            f"`reference` must be an AnnData with labelled cells, got {type(reference).__name__}; "
            "read it with `sc.read_h5ad(path)`."
        )
        raise TypeError(msg)
    if reference.is_view:
        msg = (
            "`reference` is a view of another AnnData (e.g. `ref[mask]`); pass a copy: "
            "`reference=ref[mask].copy()`."
        )
        raise ValueError(msg)
    if reference.isbacked:
        msg = (
            "`reference` is backed (opened with backed='r'); load it into memory first: "
            "`reference = sc.read_h5ad(path)` or `reference.to_memory()` (a sparse matrix "
            "of 100k cells fits: the prior never densifies it)."
        )
        raise ValueError(msg)
    if reference.n_obs == 0:
        msg = "`reference` has no cells."
        raise ValueError(msg)


def _reference_labels(reference: AnnData, reference_key: Any) -> tuple[np.ndarray, list[str]]:
    """Each reference cell's label (as ``str``) and the sorted distinct labels; checked."""
    from .._answer import normalize_label
    from ._annotate_config import check_candidates

    if reference_key is None:
        msg = (
            "`reference_key` is needed with `reference`: the obs column of the reference "
            f"that holds its cell type labels (obs columns: {list(reference.obs.columns)[:20]})."
        )
        raise ValueError(msg)
    check_obs_key(
        reference,
        reference_key,
        "reference_key",
        "pass the reference's obs column of cell type labels as `reference_key=` "
        f"(obs columns of the reference: {list(reference.obs.columns)[:20]}).",
    )
    column = reference.obs[reference_key]
    missing = int(column.isna().sum())
    if missing:
        msg = (
            f"`reference.obs[{reference_key!r}]` has {missing} missing labels; every reference "
            f"cell needs its type. Drop those cells: "
            f"`reference = reference[reference.obs[{reference_key!r}].notna()].copy()`."
        )
        raise ValueError(msg)
    labels = np.asarray(column.astype(str), dtype=object)
    types = sorted(set(labels.tolist()))
    if len(types) < 2:
        msg = (
            f"`reference.obs[{reference_key!r}]` has one type ({types[0]!r}); a reference needs at "
            "least two labelled types to tell clusters apart. Use a reference of more types, or "
            "annotate without one (reference=None)."
        )
        raise ValueError(msg)
    try:
        check_candidates(types)
    except ValueError as err:
        err.add_note(
            f"(in the labels of `reference.obs[{reference_key!r}]`, which become candidates: "
            "rename or merge those labels in a copy of the reference)"
        )
        raise
    keys = {normalize_label(t) for t in types}
    if len(keys) != len(types):  # pragma: no cover - check_candidates rejects these first
        msg = f"`reference.obs[{reference_key!r}]` has labels equal after normalisation."
        raise ValueError(msg)
    return labels, types


def _pair_genes(
    query_genes: list[str], ref_genes: list[str]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Genes of both sides, in reference order, with their column in each matrix."""
    first_q: dict[str, int] = {}
    for j, g in enumerate(query_genes):
        first_q.setdefault(g, j)
    seen: set[str] = set()
    names, q_cols, r_cols = [], [], []
    for j, g in enumerate(ref_genes):
        if g in seen or g not in first_q:
            continue
        seen.add(g)
        names.append(g)
        q_cols.append(first_q[g])
        r_cols.append(j)
    return names, np.asarray(q_cols, dtype=np.int64), np.asarray(r_cols, dtype=np.int64)


def _shared_genes_error(
    n_shared: int,
    minimum: int,
    query_genes: list[str],
    ref_genes: list[str],
    reference: AnnData,
    reference_gene_symbols: str | None,
) -> ValueError:
    hint = ""
    if reference_gene_symbols is None:
        symbol_columns = [
            c
            for c in reference.var.columns
            if reference.var[c].dtype == object or str(reference.var[c].dtype) == "category"
        ]
        if symbol_columns:
            hint = (
                f" If the reference names genes in a var column (it has {symbol_columns[:5]}), "
                "pass `reference_gene_symbols=` that column (and `gene_symbols=` for the query)."
            )
    msg = (
        f"The query and the reference share {n_shared} gene names (at least {minimum} are "
        f"needed): query genes look like {query_genes[:3]}, reference genes like "
        f"{ref_genes[:3]}.{hint} Use the same gene naming on both sides (symbols or Ensembl "
        "IDs), or lower `min_shared_genes=`."
    )
    return ValueError(msg)


def check_reference(
    reference: Any,
    *,
    reference_key: Any,
    query_genes: list[str],
    n_genes: int,
    reference_layer: Any = None,
    reference_use_raw: Any = None,
    reference_gene_symbols: Any = None,
    min_shared_genes: Any = MIN_SHARED_GENES,
) -> Reference:
    """Check a reference against the query's genes; reads both, writes neither.

    Parameters
    ----------
    reference
        The labelled AnnData (in memory, not a view).
    reference_key
        Column of ``reference.obs`` with the cell type labels.
    query_genes
        The query's gene names, one per column of the matrix its top genes come from.
    n_genes
        Top genes per cell (known cells need at least this many shared genes).
    reference_layer, reference_use_raw, reference_gene_symbols
        Which reference matrix and gene names to read, as ``layer`` / ``use_raw`` /
        ``gene_symbols`` of :func:`sc_cello1.pp.top_genes`.
    min_shared_genes
        Fewest genes both sides must share.
    """
    from ._annotate_checks import expression

    _check_anndata(reference)
    minimum = check_int("min_shared_genes", min_shared_genes, 1)
    labels, types = _reference_labels(reference, reference_key)
    try:
        X, genes, where = expression(
            reference,
            layer=reference_layer,
            use_raw=reference_use_raw,
            gene_symbols=reference_gene_symbols,
        )
    except (KeyError, ValueError, TypeError) as err:
        err.add_note(
            "(this is the reference: choose its matrix and gene names with `reference_layer=`, "
            "`reference_use_raw=` and `reference_gene_symbols=`)"
        )
        raise
    where = where.replace("adata", "reference", 1)
    shared, q_cols, r_cols = _pair_genes(query_genes, genes)
    needed = max(minimum, int(n_genes))
    if len(shared) < needed:
        raise _shared_genes_error(
            len(shared), needed, query_genes, genes, reference, reference_gene_symbols
        )
    codes = np.searchsorted(np.asarray(types, dtype=object), labels).astype(np.int64)
    logger.info(
        "annotate: reference of %d cells, %d types (obs[%r]), %d genes shared with the query",
        reference.n_obs,
        len(types),
        reference_key,
        len(shared),
    )
    return Reference(
        adata=reference,
        label_key=str(reference_key),
        labels=labels,
        types=types,
        codes=codes,
        X=X,
        where=where,
        genes=genes,
        shared_genes=shared,
        query_cols=q_cols,
        ref_cols=r_cols,
        labels_sha256=labels_sha256(labels),
        layer=reference_layer,
        use_raw=bool(reference_use_raw),
        gene_symbols=reference_gene_symbols,
    )


def map_candidates(
    types: list[str], candidates: list[str] | None, *, ontology: bool
) -> CandidateMap:
    """Candidates for the puzzles, each standing for one reference label.

    ``candidates=None``: the reference labels themselves. Otherwise each candidate is
    matched onto a reference label by the rule that matches answers (normalised name,
    then Cell Ontology label or exact synonym); a label claimed by an earlier candidate
    is not given to a later one.
    """
    from ._names import NameMatcher

    if candidates is None:
        return CandidateMap(candidates=list(types), type_of={t: t for t in types})
    matcher = NameMatcher(types, ontology=ontology)
    type_of: dict[str, str] = {}
    unmatched: list[str] = []
    claimed: dict[str, str] = {}
    for c in candidates:
        hit = matcher.match(c)
        if hit is None:
            unmatched.append(c)
            continue
        label = types[hit]
        if label in claimed:
            logger.warning(
                "annotate: candidates %r and %r both name the reference label %r; only %r "
                "gets that label's reference cells and prior",
                claimed[label],
                c,
                label,
                claimed[label],
            )
            unmatched.append(c)
            continue
        claimed[label] = c
        type_of[c] = label
    unused = [t for t in types if t not in claimed]
    if unmatched:
        logger.warning(
            "annotate: %d candidate(s) name no reference label: %s; they stay candidates but no "
            "reference cell or prior stands for them (reference labels: %s)",
            len(unmatched),
            unmatched,
            types,
        )
    if unused:
        logger.warning(
            "annotate: %d reference label(s) match no candidate: %s; their cells are not used "
            "as known-answer cells, and a prior naming them is not used for the layout",
            len(unused),
            unused,
        )
    return CandidateMap(
        candidates=list(candidates), type_of=type_of, unmatched=unmatched, unused_types=unused
    )


def known_cells(
    ref: Reference,
    rep: np.ndarray,
    *,
    n_samples: int,
    seed: int,
    types: list[str] | None = None,
) -> dict[str, list[int]]:
    """Known-answer cells per reference type: rows of the reference, distinct.

    Sample 0 is the cell nearest the type's centroid in ``rep`` (the reference PCA);
    the others are random cells of the type drawn without replacement (``seed``), up
    to ``n_samples`` in all (fewer when the type has fewer cells).
    """
    from ._cluster_puzzles import nearest_to_centroid

    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {}
    for t in types if types is not None else ref.types:
        code = ref.types.index(t)
        members = np.flatnonzero(ref.codes == code)
        first = nearest_to_centroid(rep, members)
        rest = rng.permutation(members[members != first])[: max(n_samples - 1, 0)]
        out[t] = [first, *(int(r) for r in rest)]
    return out


def known_top_genes(
    ref: Reference, rows: list[int], *, n_genes: int, tie_order: str = "position"
) -> dict[int, list[str]]:
    """Top genes of reference rows, ranked over the genes shared with the query.

    The rules of :func:`sc_cello1.pp.top_genes` (``n_genes``, ``tie_order``) on the
    reference's matrix (``reference_layer`` / ``reference_use_raw``); only the listed
    rows are read.
    """
    from scipy import sparse

    from sc_cello1.pp._top_genes import top_gene_indices

    if not rows:
        return {}
    uniq = np.asarray(sorted(set(rows)), dtype=np.int64)
    block = ref.X[uniq]
    block = block[:, ref.ref_cols] if sparse.issparse(block) else np.asarray(block)[:, ref.ref_cols]
    top = top_gene_indices(block, n_genes, tie_order=tie_order)
    return {int(r): [ref.shared_genes[j] for j in top[i]] for i, r in enumerate(uniq)}


def reference_params(
    ref: Reference,
    cmap: CandidateMap,
    prior: dict[str, Any],
    *,
    n_known_per_type: int,
    seed: int,
) -> dict[str, Any]:
    """Provenance of the reference for ``uns[key]['params']['reference']`` (no ``None``)."""
    return {
        "n_cells": int(ref.adata.n_obs),
        "n_types": len(ref.types),
        "types": list(ref.types),
        "label_key": ref.label_key,
        "labels_sha256": ref.labels_sha256,
        "matrix": ref.where,
        "layer": ref.layer or "",
        "use_raw": bool(ref.use_raw),
        "gene_symbols": ref.gene_symbols or "",
        "n_shared_genes": len(ref.shared_genes),
        "candidates": cmap.as_uns(),
        "prior": dict(prior),
        "known_cells": {
            "rule": (
                "per type: the cell nearest the type centroid in the reference PCA, then "
                "distinct random cells of the type; top genes ranked over the shared genes"
            ),
            "per_type": int(n_known_per_type),
            "seed": int(seed),
        },
    }

"""Trained-like simulated models for annotate-with-a-reference tests, and real-data splits.

:class:`TruthModel` is a Backend that recognises each cell by its top-gene list (the
list the prompt shows) and answers as a model trained on CellPuzzles: each candidate at
most once per puzzle (``"permutation"``), or every candidate once (``"n-items"``, as
trained for N cells and N candidates). Each cell's type is known with chance ``p``;
a known cell gets its type if still free, any other cell a random unused candidate.
"""

from __future__ import annotations

import numpy as np

from sc_cello1.data import SYSTEM_MSG
from sc_cello1.data._prompts import parse_user_msg
from sc_cello1.inference import Generation

#: The 5 types kept in the fewer-types-than-candidates partition.
KEEP_FEWER = ["B", "CD14+ Mono", "CD8 T", "NK", "Naive CD4 T"]


class TruthModel:
    """A Backend answering from the cells' true types (see the module docstring)."""

    name = "truth"

    def __init__(self, truth_by_genes, *, behaviour="permutation", p=1.0, seed=0):
        self.truth_by_genes = truth_by_genes
        self.behaviour = behaviour
        self.p = p
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def _answer(self, truths, candidates):
        out: list[str | None] = [None] * len(truths)
        used: set[str] = set()
        for i in self.rng.permutation(len(truths)):
            t = truths[i]
            if t in candidates and t not in used and self.rng.random() < self.p:
                out[i] = t
                used.add(t)
        for i in range(len(truths)):
            if out[i] is None:
                free = [c for c in candidates if c not in used] or list(candidates)
                out[i] = str(free[self.rng.integers(len(free))])
                used.add(out[i])
        items = [str(o) for o in out]
        if self.behaviour == "n-items":
            rest = [c for c in candidates if c not in used]
            items += [rest[i] for i in self.rng.permutation(len(rest))]
        return items

    def generate(
        self, messages, *, n=1, temperature=0.0, max_new_tokens=3500, seed=None, constraints=None
    ):
        result = []
        for conv in messages:
            self.calls += 1
            user = conv[-1]["content"].removesuffix("\n" + SYSTEM_MSG)
            _, genes, candidates = parse_user_msg(user)
            truths = [self.truth_by_genes[tuple(g)] for g in genes]
            text = (
                "<think>t</think>\n<answer>"
                + " | ".join(self._answer(truths, candidates))
                + "</answer>"
            )
            result.append(
                [Generation(text=text, finish_reason="stop", n_tokens=1) for _ in range(n)]
            )
        return result

    def provenance(self):
        return {"backend": "truth", "model": f"truth-{self.behaviour}-p{self.p}"}


def truth_by_genes(adata, key="cell_type"):
    """Each cell's top-50 gene tuple -> its type (over all genes of ``adata.X``)."""
    from sc_cello1.pp._top_genes import top_gene_indices

    genes = list(adata.var_names)
    top = top_gene_indices(adata.X, 50)
    return {tuple(genes[j] for j in top[i]): t for i, t in enumerate(adata.obs[key].astype(str))}


def half_split(full, seed=0):
    """A reference and a query: two halves of a real dataset, split by cells."""
    half = np.random.default_rng(seed).permutation(full.n_obs) < full.n_obs // 2
    return full[half].copy(), full[~half].copy()


def partitions(query, seed=0):
    """Over-clustered (each type split by k-means, about 50 cells per cluster) and fewer types."""
    import scanpy as sc
    from sklearn.cluster import KMeans

    sc.pp.pca(query, random_state=seed)
    types = query.obs["cell_type"].astype(str)
    sub = np.empty(query.n_obs, dtype=object)
    for t in sorted(types.unique()):
        idx = np.flatnonzero(types == t)
        k = max(1, round(idx.size / 50))
        lab = KMeans(k, n_init=4, random_state=seed).fit_predict(query.obsm["X_pca"][idx, :20])
        sub[idx] = [f"{t} #{j + 1}" for j in lab]
    query.obs["over"] = sub
    query.obs["over"] = query.obs["over"].astype("category")
    query.obs["fewer"] = (
        query.obs["over"].astype(object).where(types.isin(KEEP_FEWER)).astype("category")
    )
    return query

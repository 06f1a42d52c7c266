"""How well ``tl.annotate`` turns answers into cluster labels, for models that answer as trained.

Simulated models answer each puzzle from the cells' true types; each time a cell is
shown, its type is *known* with probability ``p``. Three behaviours:

- ``per-cell``: a known cell gets its type; any other cell a wrong candidate or a name
  that is no candidate ("Hepatocyte", ...), with equal chance. Labels may repeat.
- ``permutation``: Cell-o1's trained rule, each candidate at most once per puzzle. The
  cells are visited in random order; a known cell gets its type if still free, any
  other cell a random unused candidate.
- ``n-items``: as ``permutation``, but the answer lists every candidate once (the
  cells' items first, then the unused candidates): the trained N cells / N candidates
  answer, which gives more items than cells whenever a puzzle has fewer cells.

The model recognises a cell by its top-gene list (the list the prompt shows).

Partitions of ``../shared/data/pbmc3k_clustifyr_9types.h5ad`` (2,638 cells, 9 types):

- ``1:1``: one cluster per type; candidates: the 9 types;
- ``over-clustered``: each type split by k-means on PCA into ``round(n / 100)``
  subclusters (29 pure clusters, deterministic); candidates: the 9 types;
- ``superset``: over-clustered, candidates: the 9 types + 3 absent ones;
- ``fewer-types``: the over-clustered clusters of 5 types only; candidates: all 9.

Per row: clusters right (pooled over reps), mean confidence of right and of wrong labels,
wrong labels above confidence 0.5, unlabelled clusters, cells asked per cluster.

Usage::

    python benchmarks/bench_aggregation.py             # writes benchmarks/results/aggregation.json
    python benchmarks/bench_aggregation.py --reps 1    # quicker

The code before issue 17 (commit f434edd), for comparison::

    git archive f434edd src | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/src python benchmarks/bench_aggregation.py --reps 3 \
        --out benchmarks/results/aggregation_before.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pbmc3k_clustifyr_9types.h5ad"
NON_CANDIDATES = ["Hepatocyte", "Neuron", "Keratinocyte", "Adipocyte", "Cardiomyocyte"]
ABSENT = ["Erythrocyte", "Plasma cell", "Mast cell"]
KEEP_FEWER = ["B", "CD14+ Mono", "CD8 T", "NK", "Naive CD4 T"]
BEHAVIOURS = ("per-cell", "permutation", "n-items")
WORK = Path(tempfile.gettempdir()) / "cello1_bench_aggregation"


class SimulatedModel:
    """A Backend (``generate`` + ``provenance``) answering from the cells' true types."""

    name = "simulated"

    def __init__(self, truth_by_genes, behaviour, p, seed):
        self.truth_by_genes = truth_by_genes
        self.behaviour = behaviour
        self.p = p
        self.rng = np.random.default_rng(seed)

    def _per_cell(self, truths, candidates):
        out = []
        for t in truths:
            if self.rng.random() < self.p:
                out.append(t)
            elif self.rng.random() < 0.5:
                out.append(str(self.rng.choice([c for c in candidates if c != t])))
            else:
                out.append(str(self.rng.choice(NON_CANDIDATES)))
        return out

    def _permutation(self, truths, candidates):
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
        from sc_cello1.data import SYSTEM_MSG
        from sc_cello1.data._prompts import parse_user_msg
        from sc_cello1.inference import Generation

        result = []
        for conv in messages:
            user = conv[-1]["content"].removesuffix("\n" + SYSTEM_MSG)
            _, genes, candidates = parse_user_msg(user)
            truths = [self.truth_by_genes[tuple(g)] for g in genes]
            if self.behaviour == "per-cell":
                items = self._per_cell(truths, candidates)
            else:
                items = self._permutation(truths, candidates)
            text = "<think>simulated</think>\n<answer>" + " | ".join(items) + "</answer>"
            result.append(
                [Generation(text=text, finish_reason="stop", n_tokens=1) for _ in range(n)]
            )
        return result

    def provenance(self):
        return {"backend": "simulated", "model": f"simulated-{self.behaviour}-p{self.p}"}


def prepare():
    """The four partitions: an AnnData with ``obs`` columns per partition, and their specs."""
    import anndata as ad
    import scanpy as sc
    from sklearn.cluster import KMeans

    a = ad.read_h5ad(DATA)
    sc.pp.pca(a, random_state=0)
    types = a.obs["cell_type"].astype(str)
    a.obs["one_to_one"] = types.astype("category")
    sub = np.empty(a.n_obs, dtype=object)
    for t in sorted(types.unique()):
        idx = np.flatnonzero(types == t)
        k = max(1, round(idx.size / 100))
        lab = KMeans(k, n_init=4, random_state=0).fit_predict(a.obsm["X_pca"][idx, :20])
        sub[idx] = [f"{t} #{j + 1}" for j in lab]
    a.obs["over"] = sub
    a.obs["over"] = a.obs["over"].astype("category")
    fewer = a.obs["over"].astype(object).where(types.isin(KEEP_FEWER))
    a.obs["fewer"] = fewer.astype("category")
    nine = sorted(types.unique())
    specs = {
        "1:1": ("one_to_one", nine),
        "over-clustered": ("over", nine),
        "superset": ("over", sorted(nine + ABSENT)),
        "fewer-types": ("fewer", nine),
    }
    return a, specs


def run(ps, reps, n_samples, behaviours, partitions):
    import sc_cello1 as cello1
    from sc_cello1.pp._top_genes import top_gene_indices

    cello1.settings.progress = False
    adata, specs = prepare()
    genes = list(adata.var_names)
    top = top_gene_indices(adata.X, 50)
    truth_by_genes = {
        tuple(genes[j] for j in top[i]): t for i, t in enumerate(adata.obs["cell_type"].astype(str))
    }
    rows = []
    for part in partitions:
        groupby, candidates = specs[part]
        cells = adata[adata.obs[groupby].notna()].copy()
        truth = cells.obs.groupby(groupby, observed=True)["cell_type"].first().astype(str)
        for behaviour in behaviours:
            for p in ps:
                right_n, total, conf_right, conf_wrong, wrong_hi, unlabelled = 0, 0, [], [], 0, 0
                cells_asked, warnings_seen = [], set()
                t0 = time.perf_counter()
                for rep in range(reps):
                    model = SimulatedModel(truth_by_genes, behaviour, p, seed=1000 * rep + 7)
                    handler = _Capture()
                    logging.getLogger("sc_cello1").addHandler(handler)
                    try:
                        out = cello1.tl.annotate(
                            cells,
                            groupby,
                            candidates=candidates,
                            model=model,
                            n_samples=n_samples,
                            seed=rep,
                            ontology=False,
                            copy=True,
                        )
                    finally:
                        logging.getLogger("sc_cello1").removeHandler(handler)
                    warnings_seen |= handler.kinds
                    table = out.uns["cello1"]["clusters"].reindex(truth.index)
                    labels = table["label"].astype(object)
                    right = (labels == truth.values).to_numpy()
                    labelled = labels.notna().to_numpy()
                    conf = table["confidence"].to_numpy()
                    right_n += int(right.sum())
                    total += len(truth)
                    conf_right += conf[right].tolist()
                    conf_wrong += conf[~right & labelled].tolist()
                    wrong_hi += int((conf[~right & labelled] > 0.5).sum())
                    unlabelled += int((~labelled).sum())
                    # from the puzzles table: also works for the code before issue 17
                    n_shown = out.uns["cello1"]["puzzles"]["n_cells"].sum()
                    cells_asked.append(float(n_shown) / len(truth))
                rows.append(
                    {
                        "partition": part,
                        "behaviour": behaviour,
                        "p": p,
                        "n_clusters": len(truth),
                        "n_candidates": len(candidates),
                        "right": right_n / total,
                        "conf_right": float(np.mean(conf_right)) if conf_right else None,
                        "conf_wrong": float(np.mean(conf_wrong)) if conf_wrong else None,
                        "wrong_above_0.5": wrong_hi / reps,
                        "unlabelled": unlabelled / reps,
                        "cells_per_cluster": float(np.mean(cells_asked)),
                        "warnings": sorted(warnings_seen),
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


class _Capture(logging.Handler):
    """Which kinds of warnings ``annotate`` gave (first words of each)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.kinds: set[str] = set()

    def emit(self, record):
        msg = record.getMessage()
        if "gave no votes" in msg:
            self.kinds.add("answers gave no votes")
        elif "got no label" in msg:
            self.kinds.add("clusters got no label")
        elif "tie" in msg:
            self.kinds.add("ties")
        else:
            self.kinds.add(msg[:40])


def _fmt(x, spec):
    return "–" if x is None else format(x, spec)


def table(rows) -> str:
    lines = [
        "| partition | behaviour | p | clusters right | conf. right / wrong | wrong > 0.5 | unlabelled | cells / cluster |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['partition']} ({r['n_clusters']} cl., {r['n_candidates']} cand.) "
            f"| {r['behaviour']} | {r['p']:.1f} | {r['right']:.0%} "
            f"| {_fmt(r['conf_right'], '.2f')} / {_fmt(r['conf_wrong'], '.2f')} "
            f"| {r['wrong_above_0.5']:.1f} | {r['unlabelled']:.1f} | {r['cells_per_cluster']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=2, help="annotate seeds per row")
    ap.add_argument("--ps", type=float, nargs="+", default=[1.0, 0.7, 0.5])
    ap.add_argument("--n-samples", type=int, default=5)
    ap.add_argument("--behaviours", nargs="+", default=list(BEHAVIOURS))
    ap.add_argument(
        "--partitions", nargs="+", default=["1:1", "over-clustered", "superset", "fewer-types"]
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "aggregation.json"))
    args = ap.parse_args()
    logging.getLogger("sc_cello1").setLevel(logging.WARNING)
    logging.getLogger("sc_cello1").propagate = False
    t0 = time.perf_counter()
    rows = run(args.ps, args.reps, args.n_samples, args.behaviours, args.partitions)
    pooled = {}
    for p in args.ps:
        sel = [r for r in rows if r["p"] == p]
        pooled[str(p)] = {
            b: float(np.mean([r["right"] for r in sel if r["behaviour"] == b]))
            for b in args.behaviours
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "command": " ".join(["python", "benchmarks/bench_aggregation.py", *sys.argv[1:]]),
                "reps": args.reps,
                "n_samples": args.n_samples,
                "rows": rows,
                "pooled_right_by_p": pooled,
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=1,
        )
    )
    print(table(rows))
    print("\npooled clusters right (mean over partitions):", json.dumps(pooled))
    print(f"took {time.perf_counter() - t0:.0f} s; written to {out}")


if __name__ == "__main__":
    main()

"""How well ``tl.annotate`` turns noisy answers into cluster labels: new default vs old code.

A simulated model answers each cell of a puzzle with the true type of the cell's cluster
with probability ``p``; otherwise, with equal chance, a wrong candidate or a name that
is no candidate ("Hepatocyte", "Neuron", ...). It recognises a cell by its top-gene list
(the same list the prompt shows). A second model, the *permutation oracle*, is Cell-o1's
trained behaviour taken to the limit: it gives every cell its true type but uses each
candidate at most once per puzzle (a cell whose type is taken gets a random unused
candidate), which is what over-clustering runs into.

Partitions (real data):

- ``pbmc68k``: scanpy's ``pbmc68k_reduced`` grouped by ``bulk_labels`` (10 clusters,
  one type each; candidates: the 10 labels);
- ``pbmc3k-leiden``: ``../shared/data/pbmc3k_clustifyr_9types.h5ad``, leiden at resolution
  2 (over-clustered: several clusters per type); truth is each cluster's majority
  ``cell_type``; candidates: the 9 types.

"old" runs the code of commit 9693672 (before issue 8: votes from repaired answers,
distinct labels by assignment, all clusters in one puzzle) in a subprocess, exported with
``git archive``; "new" runs this checkout with its defaults.

Usage::

    python benchmarks/bench_aggregation.py            # full grid, writes benchmarks/results/aggregation.json
    python benchmarks/bench_aggregation.py --reps 1   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "9693672"
NON_CANDIDATES = ["Hepatocyte", "Neuron", "Keratinocyte", "Adipocyte", "Cardiomyocyte"]
WORK = Path(tempfile.gettempdir()) / "cello1_bench_aggregation"


class SimulatedModel:
    """A Backend (``generate`` + ``provenance``) answering from the cells' true types."""

    name = "simulated"

    def __init__(self, truth_by_genes, p, seed, permutation=False):
        self.truth_by_genes = truth_by_genes
        self.p = p
        self.rng = np.random.default_rng(seed)
        self.permutation = permutation

    def _answer(self, genes, candidates):
        truths = [self.truth_by_genes[tuple(g)] for g in genes]
        if self.permutation:
            used, out = set(), []
            for t in truths:
                if t not in used:
                    used.add(t)
                    out.append(t)
                else:
                    out.append(None)
            free = [c for c in candidates if c not in used]
            self.rng.shuffle(free)
            return [o if o is not None else free.pop() for o in out]
        out = []
        for t in truths:
            if self.rng.random() < self.p:
                out.append(t)
            elif self.rng.random() < 0.5:
                out.append(str(self.rng.choice([c for c in candidates if c != t])))
            else:
                out.append(str(self.rng.choice(NON_CANDIDATES)))
        return out

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
            text = (
                "<think>simulated</think>\n<answer>"
                + " | ".join(self._answer(genes, candidates))
                + "</answer>"
            )
            result.append(
                [Generation(text=text, finish_reason="stop", n_tokens=1) for _ in range(n)]
            )
        return result

    def provenance(self):
        return {"backend": "simulated", "model": f"simulated-p{self.p}", "revision": "0"}


def prepare() -> dict[str, dict]:
    """Write the two partitions as h5ad files (computed once, read by both codes)."""
    import anndata as ad
    import scanpy as sc

    WORK.mkdir(parents=True, exist_ok=True)
    out = {}
    a = sc.datasets.pbmc68k_reduced()
    a.obs["cluster"] = a.obs["bulk_labels"].astype(str).astype("category")
    a.obs["truth"] = a.obs["bulk_labels"].astype(str)
    a.uns.pop("bulk_labels_colors", None)
    path = WORK / "pbmc68k.h5ad"
    a.write_h5ad(path)
    out["pbmc68k"] = {
        "path": str(path),
        "use_raw": True,
        "candidates": sorted(a.obs["truth"].unique()),
    }

    b = ad.read_h5ad(ROOT.parent / "shared" / "data" / "pbmc3k_clustifyr_9types.h5ad")
    sc.pp.pca(b, random_state=0)
    sc.pp.neighbors(b, random_state=0)
    sc.tl.leiden(
        b, resolution=2.0, random_state=0, flavor="igraph", n_iterations=2, key_added="cluster"
    )
    majority = b.obs.groupby("cluster", observed=True)["cell_type"].agg(
        lambda s: s.value_counts().index[0]
    )
    b.obs["truth"] = b.obs["cluster"].map(majority).astype(str)
    path = WORK / "pbmc3k_leiden.h5ad"
    b.write_h5ad(path)
    out["pbmc3k-leiden"] = {
        "path": str(path),
        "use_raw": False,
        "candidates": sorted(b.obs["cell_type"].astype(str).unique()),
        "n_clusters": int(b.obs["cluster"].nunique()),
        "n_types_shared": int((majority.value_counts() > 1).sum()),
    }
    return out


def run_grid(impl: str, datasets: dict, ps, ns, reps) -> list[dict]:
    import anndata as ad

    import sc_cello1 as cello1
    from sc_cello1.pp._top_genes import top_gene_indices

    if hasattr(cello1.settings, "progress"):
        cello1.settings.progress = False
    rows = []
    for name, spec in datasets.items():
        adata = ad.read_h5ad(spec["path"])
        X = adata.raw.X if spec["use_raw"] else adata.X
        genes = list(adata.raw.var_names if spec["use_raw"] else adata.var_names)
        top = top_gene_indices(X, 50)
        truth_by_genes = {}
        for i in range(adata.n_obs):
            truth_by_genes[tuple(genes[j] for j in top[i])] = adata.obs["truth"].iloc[i]
        clusters = adata.obs["cluster"].cat.categories
        truth = adata.obs.groupby("cluster", observed=True)["truth"].first().reindex(clusters)
        for model_kind in ("noisy", "permutation-oracle"):
            for p in ps if model_kind == "noisy" else [1.0]:
                for n in ns:
                    acc, conf_right, conf_wrong, unlabelled = [], [], [], []
                    for rep in range(reps):
                        model = SimulatedModel(
                            truth_by_genes,
                            p,
                            seed=1000 * rep + n,
                            permutation=model_kind != "noisy",
                        )
                        kwargs = dict(
                            candidates=spec["candidates"],
                            model=model,
                            use_raw=spec["use_raw"] or None,
                            n_samples=n,
                            seed=rep,
                            copy=True,
                        )
                        out = cello1.tl.annotate(adata, "cluster", **kwargs)
                        table = out.uns["cello1"]["clusters"].reindex(clusters)
                        labels = table["label"].astype(object)
                        right = (labels == truth.values).to_numpy()
                        acc.append(right.mean())
                        conf = table["confidence"].to_numpy()
                        labelled = labels.notna().to_numpy()
                        conf_right += conf[right].tolist()
                        conf_wrong += conf[~right & labelled].tolist()
                        unlabelled.append(int((~labelled).sum()))
                    rows.append(
                        {
                            "impl": impl,
                            "data": name,
                            "model": model_kind,
                            "p": p,
                            "n_samples": n,
                            "accuracy": float(np.mean(acc)),
                            "conf_right": float(np.mean(conf_right))
                            if conf_right
                            else float("nan"),
                            "conf_wrong": float(np.mean(conf_wrong))
                            if conf_wrong
                            else float("nan"),
                            "n_wrong_labelled": len(conf_wrong) / reps,
                            "unlabelled": float(np.mean(unlabelled)),
                            "n_clusters": len(clusters),
                        }
                    )
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--reps", type=int, default=3, help="repetitions (annotate seeds) per cell of the grid"
    )
    ap.add_argument("--ps", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    ap.add_argument("--ns", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--impl", choices=["both", "new", "old"], default="both")
    ap.add_argument("--datasets", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "aggregation.json"))
    args = ap.parse_args()
    import logging

    logging.getLogger("sc_cello1").setLevel(logging.ERROR)
    if args.impl in ("new", "old") and args.datasets:
        rows = run_grid(
            args.impl, json.loads(Path(args.datasets).read_text()), args.ps, args.ns, args.reps
        )
        print(json.dumps(rows))
        return
    t0 = time.perf_counter()
    datasets = prepare()
    spec_file = WORK / "datasets.json"
    spec_file.write_text(json.dumps(datasets))
    rows = []
    if args.impl in ("both", "new"):
        rows += run_grid("new", datasets, args.ps, args.ns, args.reps)
    if args.impl in ("both", "old"):
        old_src = WORK / "old"
        if not (old_src / "src" / "sc_cello1").is_dir():
            old_src.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", OLD_COMMIT, "src"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
        env = dict(os.environ, PYTHONPATH=str(old_src / "src"))
        cmd = [
            sys.executable,
            __file__,
            "--impl",
            "old",
            "--datasets",
            str(spec_file),
            "--reps",
            str(args.reps),
            "--ps",
            *map(str, args.ps),
            "--ns",
            *map(str, args.ns),
        ]
        res = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        rows += json.loads(res.stdout.strip().splitlines()[-1])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "datasets": datasets,
                "rows": rows,
                "reps": args.reps,
                "seconds": time.perf_counter() - t0,
            },
            indent=1,
        )
    )
    print(
        "| data | model | p | n_samples | new: accuracy | new: conf right / wrong | new: unlabelled | old: accuracy | old: conf right / wrong | old: unlabelled |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    key = lambda r: (r["data"], r["model"], r["p"], r["n_samples"])  # noqa: E731
    old = {key(r): r for r in rows if r["impl"] == "old"}
    for r in rows:
        if r["impl"] != "new":
            continue
        o = old.get(key(r))
        cells = [
            r["data"],
            r["model"],
            f"{r['p']:.1f}",
            str(r["n_samples"]),
            f"{r['accuracy']:.1%}",
            f"{r['conf_right']:.2f} / {r['conf_wrong']:.2f}",
            f"{r['unlabelled']:.1f}",
        ]
        if o:
            cells += [
                f"{o['accuracy']:.1%}",
                f"{o['conf_right']:.2f} / {o['conf_wrong']:.2f}",
                f"{o['unlabelled']:.1f}",
            ]
        print("| " + " | ".join(cells) + " |")
    print(
        f"\n{json.dumps({k: {kk: vv for kk, vv in v.items() if kk != 'path'} for k, v in datasets.items()})}"
    )
    print(f"took {time.perf_counter() - t0:.0f} s; written to {out}")


if __name__ == "__main__":
    main()

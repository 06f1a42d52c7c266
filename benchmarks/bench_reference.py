"""``tl.annotate`` with and without a labelled reference, for models that answer as trained.

PBMC 3k (``../shared/data/pbmc3k_clustifyr_9types.h5ad``, 9 types) split by cells into
a reference half and a query half (seed 0). Query partitions: ``over-clustered`` (each
type split by k-means on PCA into pure clusters of about 50 cells) and ``fewer-types``
(the clusters of 5 types only); candidates: the 9 types (without a reference, given as
``candidates``; with one, the reference labels). Models: the simulated ``permutation``
and ``n-items`` behaviours of ``bench_aggregation.py`` (each cell's type known with
chance ``p``; a cell is recognised by its top-gene list, reference cells included).

Per row: clusters right, mean confidence of right / wrong labels, wrong labels above
0.5, query cells and known (reference) cells asked per cluster.

    python benchmarks/bench_reference.py            # writes benchmarks/results/reference.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_aggregation import DATA, SimulatedModel  # noqa: E402
from tests.tl._reference_backends import half_split, partitions, truth_by_genes  # noqa: E402


def run(ps, behaviours, reps):
    import anndata as ad

    import sc_cello1 as cello1

    cello1.settings.progress = False
    full = ad.read_h5ad(DATA)
    tbg = truth_by_genes(full)
    ref, query = half_split(full)
    query = partitions(query)
    nine = sorted(full.obs["cell_type"].astype(str).unique())
    rows = []
    for part, groupby in (("over-clustered", "over"), ("fewer-types", "fewer")):
        q = query[query.obs[groupby].notna()].copy()
        truth = q.obs.groupby(groupby, observed=True)["cell_type"].first().astype(str)
        for with_ref in (False, True):
            for behaviour in behaviours:
                for p in ps:
                    right_n, total, c_right, c_wrong, wrong_hi, q_cells, k_cells = (
                        0,
                        0,
                        [],
                        [],
                        0,
                        [],
                        [],
                    )
                    t0 = time.perf_counter()
                    for rep in range(reps):
                        model = SimulatedModel(tbg, behaviour, p, seed=1000 * rep + 7)
                        kwargs = (
                            {"reference": ref, "reference_key": "cell_type"}
                            if with_ref
                            else {"candidates": nine}
                        )
                        out = cello1.tl.annotate(
                            q, groupby, model=model, ontology=False, copy=True, seed=rep, **kwargs
                        )
                        table = out.uns["cello1"]["clusters"].reindex(truth.index)
                        labels = table["label"].astype(object)
                        right = (labels == truth.values).to_numpy()
                        labelled = labels.notna().to_numpy()
                        conf = table["confidence"].to_numpy()
                        right_n += int(right.sum())
                        total += len(truth)
                        c_right += conf[right].tolist()
                        c_wrong += conf[~right & labelled].tolist()
                        wrong_hi += int((conf[~right & labelled] > 0.5).sum())
                        params = out.uns["cello1"]["params"]
                        known = int(params["n_known_cells_asked"])
                        q_cells.append((params["n_cells_asked"] - known) / len(truth))
                        k_cells.append(known / len(truth))
                    rows.append(
                        {
                            "partition": part,
                            "reference": with_ref,
                            "behaviour": behaviour,
                            "p": p,
                            "n_clusters": len(truth),
                            "right": right_n / total,
                            "conf_right": float(np.mean(c_right)) if c_right else None,
                            "conf_wrong": float(np.mean(c_wrong)) if c_wrong else None,
                            "wrong_above_0.5": wrong_hi / reps,
                            "query_cells_per_cluster": float(np.mean(q_cells)),
                            "known_cells_per_cluster": float(np.mean(k_cells)),
                            "seconds": round(time.perf_counter() - t0, 1),
                        }
                    )
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _f(x, spec):
    return "–" if x is None else format(x, spec)


def table(rows) -> str:
    lines = [
        "| partition | reference | behaviour | p | clusters right | conf. right / wrong | wrong > 0.5 | query / known cells per cluster |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['partition']} ({r['n_clusters']} cl.) | {'yes' if r['reference'] else 'no'} "
            f"| {r['behaviour']} | {r['p']:.1f} | {r['right']:.0%} "
            f"| {_f(r['conf_right'], '.2f')} / {_f(r['conf_wrong'], '.2f')} "
            f"| {r['wrong_above_0.5']:.1f} | {r['query_cells_per_cluster']:.1f} / "
            f"{r['known_cells_per_cluster']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--ps", type=float, nargs="+", default=[1.0, 0.7, 0.5])
    ap.add_argument("--behaviours", nargs="+", default=["permutation", "n-items"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reference.json"))
    args = ap.parse_args()
    logging.getLogger("sc_cello1").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    rows = run(args.ps, args.behaviours, args.reps)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "benchmarks/bench_reference.py", *sys.argv[1:]])
    out.write_text(json.dumps({"command": command, "reps": args.reps, "rows": rows}, indent=1))
    print(table(rows))
    print(f"took {time.perf_counter() - t0:.0f} s; written to {out}")


if __name__ == "__main__":
    main()

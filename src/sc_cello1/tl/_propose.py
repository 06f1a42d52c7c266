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
    from anndata import AnnData

    from ._annotate_checks import Checked
    from ._annotate_config import AnnotateConfig
    from ._annotate_plan import Cells

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
    from sc_cello1._answer import strict_answer

    strict = strict_answer(text)
    if strict is None:
        return "", "no <answer> tag" if "<answer>" not in text else "no </answer> tag"
    answer = strict.strip().rstrip(".").strip()
    if "\n" in answer:
        return "", "more than one line"
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
    answer_dir: Any,
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
        answer_dir=answer_dir,
        desc=desc,
        unit="question",
    )
    if outcome.failed:
        raise failure_error(outcome, len(prompts), answer_dir, unit="question")
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
    answer_dir: Any,
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
        answer_dir=answer_dir,
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
    for old, new in near_duplicates(groups, [n for n in names if n], key_of):
        logger.warning(
            "annotate: proposed name %r merged into %r (one letter apart, %r proposed more "
            "often or first); see the `name` column of uns[key]['proposals']",
            display[old],
            display[new],
            display[new],
        )
        for s, k in list(key_of.items()):
            if k == old:
                key_of[s] = new
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


def propose_stage(
    adata: AnnData,
    checked: Checked,
    cells: Cells,
    runner: Any,
    config: AnnotateConfig,
    *,
    ontology: bool,
) -> Proposals:
    """Run the proposal stage: one question per representative cell, merged into candidates."""
    from ._annotate_plan import cell_context

    obs_names = adata.obs_names.astype(str)
    questions = []
    for (_, cluster), rows in sorted(cells.reps.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        for sample, row in enumerate(rows):
            text = cell_context(
                adata,
                row,
                context=config.context,
                context_fields=config.context_fields,
                has_cellxgene=cells.has_cellxgene,
            )
            prompt = proposal_prompt(text, cells.top_genes[row])
            questions.append((cluster, sample, row, obs_names[row], prompt))
    proposals = propose_candidates(
        questions,
        runner,
        clusters=checked.clusters,
        ontology=ontology,
        temperature=config.temperature,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
        batch_size=config.batch_size or 8,
        answer_dir=config.answer_dir,
    )
    if len(proposals.candidates) < 2:
        said = (
            f"only one cell type name ({proposals.candidates[0]!r})"
            if proposals.candidates
            else "no usable cell type name"
        )
        msg = (
            f"The model proposed {said} in {len(questions)} answers (see the warnings "
            "above); a puzzle needs at least two distinct candidates. Pass "
            "`candidates=[...]`, or a larger `max_new_tokens` if answers were cut off; the "
            "answers are cached in `answer_dir` when given."
        )
        raise RuntimeError(msg)
    logger.info(
        "annotate: %d proposals (%d from cache) gave %d candidates: %s",
        len(proposals.table),
        proposals.n_from_cache,
        len(proposals.candidates),
        proposals.candidates,
    )
    return proposals


def _one_edit(a: str, b: str) -> bool:
    """Whether two words are one substitution, insertion, deletion or swap apart."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and (a[diff[1]] == b[diff[0]])
        )
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def is_near_duplicate(a: str, b: str) -> bool:
    """Whether two normalised names differ by one typo inside one word of 4+ letters.

    Only letters count: "CD4 T cell" and "CD8 T cell", or "B cell" and "T cell", are
    different types, not typos.
    """
    wa, wb = a.split(" "), b.split(" ")
    if len(wa) != len(wb):
        return False
    diff = [(x, y) for x, y in zip(wa, wb, strict=True) if x != y]
    if len(diff) != 1:
        return False
    x, y = diff[0]
    return min(len(x), len(y)) >= 4 and x.isalpha() and y.isalpha() and _one_edit(x, y)


def near_duplicates(
    groups: Sequence[tuple[str, str, list[str]]], names: Sequence[str], key_of: dict[str, str]
) -> list[tuple[str, str]]:
    """Pairs ``(merged, kept)`` of proposal groups whose names are one typo apart.

    The group proposed more often is kept (ties: the first proposed).
    """
    count: dict[str, int] = {}
    for n in names:
        count[key_of[n]] = count.get(key_of[n], 0) + 1
    order = {key: i for i, (key, _, _) in enumerate(groups)}
    norm = {key: normalize_label(shown) for key, shown, _ in groups}
    keys = sorted(order, key=lambda k: (-count.get(k, 0), order[k]))
    merged: dict[str, str] = {}
    for i, keep in enumerate(keys):
        if keep in merged or keep.startswith("CL:"):
            continue
        for other in keys[i + 1 :]:
            if other in merged or other.startswith("CL:"):
                continue
            if is_near_duplicate(norm[keep], norm[other]):
                merged[other] = keep
    return list(merged.items())

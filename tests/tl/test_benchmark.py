"""cello1.tl.benchmark / `cello1 benchmark` on the public-layout stand-in of CellPuzzles."""

from __future__ import annotations

import collections
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests._cellpuzzles_hub import COMMIT, served_cellpuzzles
from tests.fixtures.make_cellpuzzles import RANKED_LEAKS, SET_LEAKS, TEST_SIZES
from tests.models._servers import sha256

from sc_cello1 import data, tl
from sc_cello1.tl._benchmark import stratified_subset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub(tmp_path):
    with served_cellpuzzles(tmp_path / "srv") as served:
        yield served


def test_stratified_subset_is_proportional_deterministic_and_covers_every_n():
    sizes = [8] * 40 + [9] * 20 + [10] * 10 + [15] * 2
    chosen = stratified_subset(sizes, 18, seed=3)
    assert len(chosen) == 18 and chosen == sorted(set(chosen))
    counts = collections.Counter(sizes[i] for i in chosen)
    assert counts == {8: 10, 9: 5, 10: 2, 15: 1}
    assert stratified_subset(sizes, 18, seed=3) == chosen
    assert stratified_subset(sizes, 18, seed=4) != chosen
    assert set(collections.Counter(sizes[i] for i in stratified_subset(sizes, 4))) == {8, 9, 10, 15}
    assert stratified_subset(sizes, 100) == list(range(len(sizes)))
    assert stratified_subset(sizes, None) == list(range(len(sizes)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data_revision": None}, ValueError, "must be a commit of ncbi/CellPuzzles or 'main'"),
        ({"split": "validation"}, ValueError, "not a CellPuzzles split"),
        ({"limit": 0}, ValueError, "limit=0"),
        ({"limit": True}, ValueError, "limit=True"),
        ({"leakage_by": "rank"}, ValueError, "leakage_by"),
        ({"max_new_tokens": 0}, ValueError, "max_new_tokens"),
        ({"model": "cell-o2"}, ValueError, "not a registered name"),
        ({"model": "cellpuzzles"}, ValueError, "is a registered dataset, not a model"),
        ({"backend": "tgi"}, ValueError, "backend='tgi'"),
    ],
)
def test_benchmark_bad_input_fails_before_any_download(kwargs, error, match, tmp_path):
    args = {"model": "cell-o1", "output_dir": tmp_path / "out", "data_revision": "main"}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        tl.benchmark(**args, cache_dir=tmp_path / "cache", mirror="http://127.0.0.1:9")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_benchmark_output_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        tl.benchmark(model="cell-o1", output_dir=tmp_path / "f", data_revision="main")


@pytest.mark.slow  # the tiny Qwen2 answers every puzzle of the stand-in split
def test_benchmark_python_api_full_split_and_clean_subset(hub, tiny_qwen2, tmp_path):
    out = tmp_path / "out"
    result = tl.benchmark(
        model=tiny_qwen2,
        output_dir=out,
        data_revision="main",
        max_new_tokens=4,
        backend="transformers",
        mirror=hub.url,
        cache_dir=tmp_path / "cache",
    )
    table = result.table
    n_sizes = len(set(TEST_SIZES))
    assert len(table) == 2 * (n_sizes + 1)
    t = table.set_index(["subset", "n"])
    assert t.loc[("full", "all"), "n_puzzles"] == len(TEST_SIZES)
    assert t.loc[("clean", "all"), "n_puzzles"] == len(TEST_SIZES) - len(RANKED_LEAKS)
    prov = result.provenance
    assert prov["dataset"]["revision"] == COMMIT
    assert prov["dataset"]["files"]["data/test-00000-of-00001.parquet"] == sha256(
        hub.folder / "data/test-00000-of-00001.parquet"
    )
    assert prov["model"]["source"] == "local" and prov["model"]["revision"].startswith("local-")
    assert prov["comparable_to_reported"] is False  # 4 new tokens, not the paper's 3,500
    assert prov["n_clean_split"] == len(TEST_SIZES) - len(RANKED_LEAKS)
    assert set(result.files) == {"csv", "json", "png", "predictions"}

    by_set = tl.benchmark(
        model=tiny_qwen2,
        output_dir=out,
        data_revision=COMMIT,
        max_new_tokens=4,
        backend="transformers",
        leakage_by="set",
        cache_dir=tmp_path / "cache",
        download=False,
    )
    assert by_set.provenance["n_clean"] == len(TEST_SIZES) - len(RANKED_LEAKS) - len(SET_LEAKS)
    assert by_set.provenance["n_from_cache"] == len(TEST_SIZES)  # every answer reused
    assert by_set.table["n_puzzles"].iloc[-1] == by_set.provenance["n_clean"]


@pytest.mark.slow  # SmolLM2-135M on CPU, a subprocess, twice
def test_cli_benchmark_with_smollm2_on_a_stratified_subset(hub, smollm2, tmp_path):
    from sc_cello1 import models
    from sc_cello1.models._resolve import _gguf_out_dir

    cache = tmp_path / "cache"  # the GGUF of SmolLM2 converted once already (fixture)
    converted = _gguf_out_dir(models.smollm2_gguf_path(), cache)
    converted.parent.mkdir(parents=True)
    converted.symlink_to(smollm2, target_is_directory=True)
    out = tmp_path / "bench"
    cmd = [
        sys.executable,
        "-m",
        "sc_cello1.cli",
        "benchmark",
        "--model",
        "smollm2-135m",
        "--limit",
        "3",
        "--max-new-tokens",
        "8",
        "-o",
        str(out),
        "--cache-dir",
        str(cache),
        "--mirror",
        hub.url,  # holds the dataset; not SmolLM2, which falls back to its GGUF
        "--backend",
        "transformers",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    env.pop("CELLO1_MIRROR", None)
    env.pop("CELLO1_CACHE_DIR", None)
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    # printed: the table by N for full and clean, the reported figures, the files
    assert "OpenAI o1" in run.stdout and "19.0%" in run.stdout and "32.9%" in run.stdout
    assert f"@ {COMMIT}" in run.stdout and "not comparable" in run.stdout
    for name in ("benchmark.csv", "benchmark.json", "benchmark.png", "predictions.jsonl"):
        assert (out / name).is_file(), name

    doc = json.loads((out / "benchmark.json").read_text())
    prov = doc["provenance"]
    gguf = models.smollm2_gguf_path()
    assert prov["model"]["name"] == "smollm2-135m" and prov["model"]["source"] == "gguf"
    assert prov["model"]["files"] == {gguf.name: sha256(gguf)}
    assert prov["model"]["revision"]
    assert Path(prov["model"]["path"]).resolve() == smollm2.resolve()  # from --cache-dir
    assert prov["dataset"] == {
        "repo": "ncbi/CellPuzzles",
        "revision": COMMIT,
        "split": "test",
        "files": {
            f"data/{s}-00000-of-00001.parquet": sha256(
                hub.folder / f"data/{s}-00000-of-00001.parquet"
            )
            for s in ("test", "train")
        },
    }
    assert prov["prompt_style"] == "eval" and prov["prompt_version"] == data.PROMPT_VERSION
    assert prov["greedy"] is True and prov["max_new_tokens"] == 8
    import sc_cello1

    assert prov["sc_cello1"] == sc_cello1.__version__
    assert (
        prov["limit"] == 3 and prov["n_puzzles"] == 3 and prov["n_puzzles_split"] == len(TEST_SIZES)
    )

    # a stratified subset: every N of the split
    chosen = prov["puzzles"]
    assert {TEST_SIZES[i] for i in chosen} == set(TEST_SIZES)
    # the clean subset is the chosen puzzles without a cell planted in train
    leaked = {k for k, _ in RANKED_LEAKS}
    assert prov["n_clean"] == sum(i not in leaked for i in chosen)
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["split_row"] for p in preds] == chosen
    assert [p["clean"] for p in preds] == [i not in leaked for i in chosen]

    rows = list(csv.DictReader((out / "benchmark.csv").open()))
    sizes = sorted({TEST_SIZES[i] for i in chosen})
    assert [(r["subset"], r["n"]) for r in rows] == [
        (s, n) for s in ("full", "clean") for n in [*map(str, sizes), "all"]
    ]
    assert {r["model"] for r in rows} == {"smollm2-135m"}
    assert {r["dataset_revision"] for r in rows} == {COMMIT}
    full_all = next(r for r in rows if r["subset"] == "full" and r["n"] == "all")
    assert int(full_all["n_puzzles"]) == 3
    clean_all = next(r for r in rows if r["subset"] == "clean" and r["n"] == "all")
    assert int(clean_all["n_puzzles"]) == prov["n_clean"]
    assert doc["reported"][0]["source"].startswith("reported")

    # resumable: the same command again answers every puzzle from the cache
    first_csv = (out / "benchmark.csv").read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "benchmark.json").read_text())["provenance"]["n_from_cache"] == 3
    assert (out / "benchmark.csv").read_text() == first_csv


@pytest.mark.slow  # two servers on 127.0.0.1, the tiny Qwen2 answers 3 puzzles
def test_benchmark_registered_model_at_main_records_commit_and_hashes(hub, tiny_qwen2, tmp_path):
    from tests.models._servers import MODEL_FILES, HubServer, lay_out

    from sc_cello1 import models

    commit = "beef" * 10
    lay_out(tiny_qwen2, tmp_path / "msrv", "lab/tiny-bench", commit)
    served = tmp_path / "msrv" / "lab/tiny-bench" / "resolve" / commit
    server = HubServer(tmp_path / "msrv", refs={"main": commit})
    models.register(
        "test-bench-tiny",
        base_url=server.url,
        repo="lab/tiny-bench",
        revision="0" * 40,
        files=dict.fromkeys(MODEL_FILES),
    )
    args = {
        "model": "test-bench-tiny@main",
        "output_dir": tmp_path / "out",
        "data_revision": "main",
        "limit": 3,
        "max_new_tokens": 4,
        "backend": "transformers",
        "cache_dir": tmp_path / "cache",
        "mirror": hub.url,
    }
    try:
        result = tl.benchmark(**args)
        heads = [p for (m, p) in server.log if m == "HEAD"]
        n = len(server.log)
        offline = tl.benchmark(**{**args, "download": False})
    finally:
        models.unregister("test-bench-tiny")
        server.stop()
    model = result.provenance["model"]
    assert model["name"] == "test-bench-tiny" and model["revision"] == commit
    assert model["source"] == "registry" and model["repo"] == "lab/tiny-bench"
    assert model["files"] == {f: sha256(served / f) for f in MODEL_FILES}
    assert heads == ["/lab/tiny-bench/resolve/main/config.json"]  # `main` resolved once
    assert len(server.log) == n  # offline: no request at all
    assert offline.provenance["model"] == model
    assert offline.provenance["n_from_cache"] == 3

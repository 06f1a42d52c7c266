"""cello1.data.cellpuzzles (fetched through the registry) and cello1.data.leakage."""

from __future__ import annotations

import json

import pytest

from sc_cello1 import data, models
from sc_cello1.cli import main
from tests._cellpuzzles_hub import COMMIT, served_cellpuzzles
from tests.fixtures.make_cellpuzzles import RANKED_LEAKS, SET_LEAKS, TEST_SIZES
from tests.models._servers import closed_port_url, sha256


@pytest.fixture
def hub(tmp_path):
    with served_cellpuzzles(tmp_path / "srv") as served:
        yield served


def test_cellpuzzles_main_is_resolved_fetched_verified_and_recorded(hub, tmp_path):
    cache = tmp_path / "cache"
    test = data.cellpuzzles("test", revision="main", mirror=hub.url, cache_dir=cache)

    assert [p.n_cells for p in test] == list(TEST_SIZES)
    assert all(p.answer is not None for p in test)
    file = "data/test-00000-of-00001.parquet"
    digest = sha256(hub.folder / file)
    assert test[3].meta == {
        "dataset": "ncbi/CellPuzzles",
        "revision": COMMIT,
        "split": "test",
        "row": 3,
        "sha256": digest,
    }
    # only the split asked for, from the dataset URL of the commit `main` named
    assert hub.gets() == [f"/datasets/ncbi/CellPuzzles/resolve/{COMMIT}/{file}"]
    folder = cache / "datasets" / "ncbi" / "CellPuzzles"
    manifest = json.loads((folder / f"{COMMIT}.manifest.json").read_text())
    assert manifest["files"][file]["sha256"] == digest and "main" in manifest["resolved_from"]
    assert (folder / "refs" / "main").read_text().strip() == COMMIT

    # offline: the cache alone, by commit or by the recorded `main`; no request
    hub.server.stop()
    again = data.cellpuzzles("test", revision=COMMIT, cache_dir=cache, download=False)
    assert [p.user_msg for p in again] == [p.user_msg for p in test]
    assert (
        data.cellpuzzles("test", revision="main", cache_dir=cache, download=False)[0].meta[
            "revision"
        ]
        == COMMIT
    )
    with pytest.raises(data.DatasetNotCachedError, match="train-00000-of-00001"):
        data.cellpuzzles("train", revision="main", cache_dir=cache, download=False)
    with pytest.raises(models.ModelDownloadError, match="CELLO1_MIRROR"):
        data.cellpuzzles("train", revision=COMMIT, cache_dir=cache, mirror=closed_port_url())
    row = models.available(cache_dir=cache).set_index("name").loc["cellpuzzles"]
    assert not row["cached"] and row["cached_as"] == ""  # not every split is there


def test_cellpuzzles_corrupted_file_is_fetched_again(hub, tmp_path):
    cache = tmp_path / "cache"
    path = models.fetch("cellpuzzles", revision=COMMIT, mirror=hub.url, cache_dir=cache)
    assert sorted(p.name for p in (path / "data").iterdir()) == [
        "reasoning-00000-of-00001.parquet",
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]
    row = models.available(cache_dir=cache).set_index("name").loc["cellpuzzles"]
    assert row["cached"] and row["cached_as"] == f"files @ {COMMIT[:12]}"
    target = path / "data" / "reasoning-00000-of-00001.parquet"
    raw = bytearray(target.read_bytes())
    raw[-20] ^= 0xFF
    target.write_bytes(bytes(raw))
    n = len(hub.gets())
    reasoning = data.cellpuzzles("reasoning", revision=COMMIT, mirror=hub.url, cache_dir=cache)
    assert hub.gets()[n:] == [
        f"/datasets/ncbi/CellPuzzles/resolve/{COMMIT}/data/reasoning-00000-of-00001.parquet"
    ]
    assert reasoning[0].assistant_msg.startswith("<think>")


def test_cellpuzzles_404_on_a_named_commit(hub, tmp_path):
    with pytest.raises(models.RevisionNotFoundError, match="revision 1234567") as err:
        data.cellpuzzles("test", revision="1234567" + "0" * 33, mirror=hub.url, cache_dir=tmp_path)
    assert "cellpuzzles@main" in str(err.value)


def test_cli_fetch_cellpuzzles(hub, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    assert main(["fetch", "cellpuzzles", "--mirror", hub.url, "--cache-dir", cache]) == 2
    assert (
        "No revision of the dataset 'cellpuzzles' (ncbi/CellPuzzles) is pinned"
        in capsys.readouterr().err
    )
    argv = ["fetch", "cellpuzzles@main", "--mirror", hub.url, "--cache-dir", cache, "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "cache" / "datasets" / "ncbi" / "CellPuzzles" / COMMIT)


def test_cellpuzzles_bad_input(tmp_path):
    with pytest.raises(ValueError, match="not a CellPuzzles split"):
        data.cellpuzzles("validation", revision="main", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="cellpuzzles@main"):
        data.cellpuzzles("test", cache_dir=tmp_path)
    with pytest.raises(TypeError, match="download and verify"):
        data.cellpuzzles("test", revision="main", download="no", cache_dir=tmp_path)
    assert not (tmp_path / "datasets").exists()


def _public(split):
    from tests.fixtures.make_cellpuzzles import public_dataset_records

    return [data.Puzzle.from_record(r) for r in public_dataset_records()[split]]


def test_leakage_marks_shared_ranked_lists_and_sets():
    train, test = _public("train"), _public("test")
    ranked = data.leakage(train, test)
    assert list(ranked.columns) == ["n_cells", "n_shared_cells", "leaked"]
    assert ranked.index.name == "puzzle" and len(ranked) == len(test)
    assert set(ranked.index[ranked["leaked"]]) == {k for k, _ in RANKED_LEAKS}
    assert ranked["n_shared_cells"].sum() == len(RANKED_LEAKS)
    by_set = data.leakage(train, test, by="set")
    assert set(by_set.index[by_set["leaked"]]) == {k for k, _ in RANKED_LEAKS + SET_LEAKS}
    # a train split that is the test split itself leaks everything
    assert data.leakage(test, test)["leaked"].all()


def test_leakage_bad_input():
    test = _public("test")
    with pytest.raises(ValueError, match="by='rank'"):
        data.leakage(test, test, by="rank")
    with pytest.raises(ValueError, match="`train` is empty"):
        data.leakage([], test)
    with pytest.raises(TypeError, match=r"list of cello1\.data\.Puzzle"):
        data.leakage("train.parquet", test)
    with pytest.raises(TypeError, match=r"test\[0\] is a dict"):
        data.leakage(test, [{"user_msg": "x"}])


def test_missing_dataset_raises_its_own_error_not_a_model_error(hub, tmp_path):
    cache = tmp_path / "empty"
    with pytest.raises(data.DatasetNotCachedError, match=r"Dataset 'cellpuzzles'") as err:
        data.cellpuzzles("test", revision=COMMIT, cache_dir=cache, download=False)
    assert not isinstance(err.value, models.ModelNotCachedError)
    assert isinstance(err.value, models.NotCachedError | FileNotFoundError)
    assert (
        main(["fetch", "cellpuzzles", "--revision", COMMIT, "--cache-dir", str(cache), "--offline"])
        == 1
    )

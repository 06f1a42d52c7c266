"""``annotate`` through a real loopback server: bad input stopped first, faults survived.

Each bad input is refused before any request (the server counts them) and leaves the
AnnData as it was; a flaky server gives the labels of a clean run; a puzzle that keeps
failing costs only itself.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
from tests.inference._servers import FaultyChatServer
from tests.tl.test_annotate import TYPES, marker_adata, snapshot

import sc_cello1 as cello1
from sc_cello1.tl._solve_run import SolveError

ROOT = Path(__file__).resolve().parents[2]


def assert_unchanged(adata, before):
    """obs, uns and X as they were (NaN equal to NaN)."""
    import pandas as pd

    pd.testing.assert_frame_equal(adata.obs, before.obs)
    assert set(adata.uns) == set(before.uns)

    def dense(X):
        return X.toarray() if hasattr(X, "toarray") else np.asarray(X)

    assert np.array_equal(dense(adata.X), dense(before.X), equal_nan=True)


def annotate(adata, url, **kwargs):
    backend_kwargs = {"base_url": url, "max_retries": 8, "timeout": 0.5, "max_concurrency": 4}
    backend_kwargs.update(kwargs.pop("backend_kwargs", {}))
    args = {"candidates": TYPES[:6], "n_samples": 2, "n_genes": 10, "ontology": False}
    args["model"] = "served"
    args.update(kwargs)
    return cello1.tl.annotate(
        adata, "leiden", backend="openai", backend_kwargs=backend_kwargs, **args
    )


def _with_value(value):
    def change(adata):
        X = adata.X.toarray()
        X[3, 2] = value
        adata.X = X
        return {}

    return change


def _int_var_names(adata):
    adata.var_names = [str(i) for i in range(adata.n_vars)]
    return {}


def _louvain(adata):
    adata.obs["louvain"] = adata.obs["leiden"]
    return {"key_added": "louvain"}


def _cache_under_file(tmp_path):
    def change(adata):
        (tmp_path / "file").write_text("x")
        return {"answer_dir": tmp_path / "file" / "cache"}

    return change


BAD = {
    "+inf in X": (_with_value(np.inf), ValueError, "infinite values"),
    "-inf in X": (_with_value(-np.inf), ValueError, "infinite values"),
    "NaN in X": (_with_value(np.nan), ValueError, "NaN"),
    "integer var_names": (_int_var_names, ValueError, "var_names are numbers"),
    "key_added is groupby": (
        lambda a: {"key_added": "leiden"},
        ValueError,
        r"would write obs\['leiden'\], the clusters",
    ),
    "key_added is another result": (_louvain, ValueError, "overwrite=True"),
    "candidate with <answer>": (
        lambda a: {"candidates": ["B cell", "T <answer> cell"]},
        ValueError,
        "tag of the answer format",
    ),
    "candidate with </answer>": (
        lambda a: {"candidates": ["B cell</answer>", "T cell"]},
        ValueError,
        "tag of the answer format",
    ),
    "200 candidates": (
        lambda a: {"candidates": [f"type {i}" for i in range(200)]},
        ValueError,
        "200 candidates is more than 100",
    ),
    "unknown backend_kwargs key": (
        lambda a: {"backend_kwargs": {"retries": 3}},
        TypeError,
        r"\['retries'\] are not settings",
    ),
}


@pytest.mark.parametrize("case", [*BAD, "answer_dir under a file"])
def test_bad_input_is_refused_before_any_request(case, tmp_path):
    adata, _ = marker_adata()
    if case == "answer_dir under a file":
        change, error, match = _cache_under_file(tmp_path), ValueError, "under the file"
    else:
        change, error, match = BAD[case]
    kwargs = change(adata)
    before = snapshot(adata)
    with FaultyChatServer() as srv:
        with pytest.raises(error, match=match):
            annotate(adata, srv.url, **kwargs)
    assert srv.requests == 0
    assert_unchanged(adata, before)


def test_backed_data_with_copy_is_refused_before_any_request(tmp_path):
    adata, _ = marker_adata()
    adata.write_h5ad(tmp_path / "a.h5ad")
    backed = ad.read_h5ad(tmp_path / "a.h5ad", backed="r")
    with FaultyChatServer() as srv:
        with pytest.raises(ValueError, match="backed"):
            annotate(backed, srv.url, copy=True)
    assert srv.requests == 0 and "cello1" not in backed.obs


def test_overwrite_true_replaces_another_result(tmp_path):
    adata, _ = marker_adata()
    kwargs = _louvain(adata)
    with FaultyChatServer() as srv:
        annotate(adata, srv.url, overwrite=True, **kwargs)
    assert "louvain" in adata.uns and adata.uns["louvain"]["params"]["overwrite"] is True
    assert set(adata.obs["louvain"].dropna()) <= set(TYPES[:6])


def test_many_candidates_warn(caplog):
    adata, _ = marker_adata()
    with FaultyChatServer() as srv, caplog.at_level("WARNING"):
        annotate(adata, srv.url, candidates=[f"type {i}" for i in range(40)])
    assert "40 candidates" in caplog.text


def test_flaky_server_gives_the_labels_of_a_clean_run(tmp_path):
    adata, _ = marker_adata()
    with FaultyChatServer() as srv:
        clean = annotate(adata, srv.url, copy=True)
    for seed in (1, 2):
        with FaultyChatServer(rate=0.6, seed=seed) as srv:
            cache = tmp_path / f"cache{seed}"
            try:
                got = annotate(adata, srv.url, copy=True, answer_dir=cache)
            except SolveError:
                got = annotate(
                    adata, srv.url, copy=True, answer_dir=cache, backend_kwargs={"max_retries": 20}
                )
        assert got.obs["cello1"].tolist() == clean.obs["cello1"].tolist()
        assert sum(srv.faults.values()) > 0


def test_a_puzzle_that_keeps_failing_costs_only_itself(tmp_path):
    adata, _ = marker_adata()
    before = snapshot(adata)
    cache = tmp_path / "cache"
    with FaultyChatServer(always_fail="MK0") as srv:
        with pytest.raises(SolveError, match="failed") as info:
            annotate(
                adata,
                srv.url,
                answer_dir=cache,
                max_cells_per_puzzle=3,
                n_genes=1,
                backend_kwargs={"max_retries": 1},
            )
    assert_unchanged(adata, before)
    n_failed = len(info.value.failed)
    assert 0 < n_failed < info.value.n_total
    assert len(list(cache.glob("*.json"))) == info.value.n_total - n_failed
    n_kept = len(list(cache.glob("*.json")))
    # a clean run of the same call: how many prompts it asks in all (rounds included)
    with FaultyChatServer() as srv:
        clean = annotate(
            adata,
            srv.url,
            answer_dir=tmp_path / "clean",
            max_cells_per_puzzle=3,
            n_genes=1,
            copy=True,
        )
    n_clean = srv.requests
    # the rerun asks only what the first run did not keep: the failed puzzle and the
    # later rounds that never ran
    with FaultyChatServer() as srv:
        annotate(adata, srv.url, answer_dir=cache, max_cells_per_puzzle=3, n_genes=1)
    assert srv.requests == n_clean - n_kept
    assert adata.obs["cello1"].notna().all()
    assert adata.obs["cello1"].astype(str).equals(clean.obs["cello1"].astype(str))


def test_the_backend_annotate_builds_is_closed():
    adata, _ = marker_adata()
    with FaultyChatServer() as srv, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        annotate(adata, srv.url)
        gc.collect()
    assert not [w for w in seen if issubclass(w.category, ResourceWarning)]


def _cli(tmp_path, *extra):
    adata, _ = marker_adata()
    adata.write_h5ad(tmp_path / "in.h5ad")
    return [
        sys.executable,
        "-m",
        "sc_cello1.cli",
        "annotate",
        str(tmp_path / "in.h5ad"),
        "--backend",
        "openai",
        "--model",
        "served",
        *extra,
    ]


@pytest.mark.parametrize("case", ["output is a folder", "empty candidates file"])
def test_cli_bad_input_fails_before_any_request(case, tmp_path):
    with FaultyChatServer() as srv:
        if case == "output is a folder":
            (tmp_path / "out").mkdir()
            extra = ["-o", str(tmp_path / "out"), "--candidates", "B cell", "T cell"]
            match = "is a folder"
        else:
            (tmp_path / "c.txt").write_text("# nothing\n\n")
            extra = ["-o", str(tmp_path / "o.h5ad"), "--candidates-file", str(tmp_path / "c.txt")]
            match = "lists no cell type"
        run = subprocess.run(
            _cli(tmp_path, "--base-url", srv.url, *extra),
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
            timeout=120,
        )
    assert run.returncode == 2, run.stderr[-2000:]
    assert match in run.stderr
    assert srv.requests == 0


def test_secrets_never_reach_uns_or_the_h5ad(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    adata, _ = marker_adata()
    with FaultyChatServer() as srv:
        url = srv.url.replace("http://", "http://me:PW-in-url@")
        extra = {"headers": {"Authorization": "Bearer sk-deep"}, "top_p": 0.9}
        annotate(adata, url, backend_kwargs={"api_key": "sk-top", "extra_body": extra})
    adata.write_h5ad(tmp_path / "out.h5ad")
    stored = (tmp_path / "out.h5ad").read_bytes()
    shown = repr(adata.uns["cello1"]["params"])
    for secret in ("PW-in-url", "sk-deep", "sk-top"):
        assert secret not in shown and secret.encode() not in stored
    assert srv.url in shown

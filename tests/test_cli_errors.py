"""What every ``cello1`` subcommand shares: -v/-q anywhere, clean errors, flag names.

Run as a new user would: the ``cello1`` program in a subprocess, no model cache and no
route to the model hub.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sc_cello1.cli import build_parser, flag_names, translate
from tests.models._servers import closed_port_url

ROOT = Path(__file__).resolve().parents[1]
PUZZLES = ROOT / "tests" / "fixtures" / "cellpuzzles" / "test-00000-of-00001.parquet"


def cello1(*argv: str, cache: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "CELLO1_CACHE_DIR": str(cache),
        "CELLO1_MIRROR": closed_port_url(),
        **env,
    }
    environ.pop("HF_HUB_OFFLINE", None)
    return subprocess.run(
        [sys.executable, "-m", "sc_cello1.cli", *argv],
        capture_output=True,
        text=True,
        env=environ,
        timeout=600,
    )


def _one_clean_line(res: subprocess.CompletedProcess, command: str) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"cello1 {command}: error: ")]
    assert len(errors) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return errors[0]


def test_annotate_without_model_cache_or_network(tmp_path):
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    argv = [
        "annotate", "scanpy:pbmc68k_reduced", "--groupby", "louvain",
        "--candidates-from", "bulk_labels", "--use-raw", "--model", "cell-o1",
        "-o", str(tmp_path / "out.h5ad"),
    ]  # fmt: skip
    res = cello1(*argv, cache=cache)
    assert res.returncode == 1, res.stderr
    line = _one_clean_line(res, "annotate")
    assert "cell-o1" in line and "CELLO1_MIRROR" in line
    assert not (tmp_path / "out.h5ad").exists()
    # -v after the subcommand is accepted and adds the traceback
    res = cello1(*argv, "-v", cache=cache)
    assert res.returncode == 1
    assert "Traceback" in res.stderr and "unrecognized arguments" not in res.stderr


def test_solve_without_model_cache_or_network(tmp_path):
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    out = tmp_path / "p.jsonl"
    res = cello1("solve", str(PUZZLES), "-o", str(out), "--model", "cell-o1", cache=cache)
    assert res.returncode == 1, res.stderr
    assert "cell-o1" in _one_clean_line(res, "solve")
    assert not out.exists()


def test_bad_input_exit_2_with_flag_names(tmp_path):
    argv = [
        "annotate", "scanpy:pbmc68k_reduced", "--groupby", "nope", "--candidates", "a", "b",
        "--model", "cell-o1", "-o", str(tmp_path / "out.h5ad"),
    ]  # fmt: skip
    res = cello1(*argv, cache=tmp_path)
    assert res.returncode == 2, res.stderr
    line = _one_clean_line(res, "annotate")
    assert "--groupby" in line and "groupby=" not in line


def test_warnings_shown_by_default_and_hidden_by_q(shared_data, tmp_path):
    # kang2018 has no CELLxGENE context columns: every prompt would read "The cell is
    # from", which build-puzzles must say (issue 11, item 1).
    argv = [
        "build-puzzles", str(shared_data / "kang2018_muscat_example.h5ad"), "--layer",
        "counts", "--n-cells", "3", "4", "--per-size", "4",
    ]  # fmt: skip
    res = cello1(*argv, "-o", str(tmp_path / "a"), cache=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "WARNING: none of the CELLxGENE context columns" in res.stderr
    assert "pass --context" in res.stderr  # the flag, not `context=`
    res = cello1("-q", *argv, "-o", str(tmp_path / "b"), cache=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "WARNING" not in res.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "evaluate", "p.jsonl"],
        ["evaluate", "p.jsonl", "-v"],
        ["evaluate", "-vv", "p.jsonl"],
        ["train", "merge", "a", "-o", "b", "--quiet"],
        ["fetch", "cell-o1", "-q"],
        ["models", "-v"],
    ],
)
def test_verbosity_flags_anywhere(argv):
    build_parser().parse_args(argv)  # no SystemExit


def test_translate_python_names_to_flags():
    parser = build_parser()
    args = parser.parse_args(["annotate", "in.h5ad", "-o", "out.h5ad"])
    sub = parser._subparsers._group_actions[0].choices["annotate"]  # type: ignore[union-attr]
    assert args.command == "annotate"
    names = flag_names(sub, "annotate")
    cases = {
        "run `sc.tl.leiden` first or pass `groupby=`.": "run `sc.tl.leiden` first or pass `--groupby`.",
        "negative values; pass use_raw=True or layer='counts'.": "negative values; pass --use-raw or --layer 'counts'.",
        "n_genes=60 is more than 50": "--n-genes 60 is more than 50",
        "or pass gene_symbols=None to use var_names.": "or omit --gene-symbols to use var_names.",
        "unique=False allows repeats": "--no-unique allows repeats",
        "`key_added` exists in adata.uns['key_added']": "`--key-added` exists in adata.uns['key_added']",
        "max_new_tokens must be at least 8": "--max-new-tokens must be at least 8",
        "file /data/n_genes/x.h5ad, obs['n_genes'] and model=None": "file /data/n_genes/x.h5ad, obs['n_genes'] and no --model",
        "pass mirror= or set CELLO1_MIRROR": "pass mirror= or set CELLO1_MIRROR",  # not a flag here
    }  # fmt: skip
    for python, cli in cases.items():
        assert translate(python, names) == cli

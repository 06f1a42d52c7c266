"""Every keyword of tl.annotate, tl.solve and tl.benchmark a command-line user can set has a
flag with the same default (the options are generated from the verbs' configs)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest

import sc_cello1 as cello1
from sc_cello1.tl._annotate_cli import add_annotate_parser
from sc_cello1.tl._annotate_config import AnnotateConfig
from sc_cello1.tl._benchmark_cli import register as register_benchmark
from sc_cello1.tl._benchmark_config import BenchmarkConfig
from sc_cello1.tl._cli import register as register_solve
from sc_cello1.tl._solve_config import SolveConfig

#: Keywords the command line does not offer, each with its reason.
NOT_ON_THE_COMMAND_LINE = {
    "annotate": {
        "adata": "the IN.h5ad argument",
        "copy": "the command writes OUT.h5ad; the input file is never changed",
        "backend_kwargs": "set in parts: --base-url, --api-key, --timeout, --max-retries, ...",
        "unique": "deprecated alias of one_to_one",
        "cache_dir": "deprecated alias of answer_dir",
        "reference_model": "a Python object (a trained model)",
    },
    "solve": {
        "puzzles": "the PUZZLES argument",
        "backend_kwargs": "set in parts: --base-url, --api-key, --timeout, --max-retries, ...",
        "unique": "deprecated alias of one_to_one",
        "n_samples": "deprecated alias of num_generations",
        "cache_dir": "deprecated alias of answer_dir",
    },
    "benchmark": {
        "download": "--offline",
        "backend_kwargs": "set in parts: --base-url, --api-key, --timeout, --max-retries, ...",
    },
}

VERBS = {
    "annotate": (cello1.tl.annotate, AnnotateConfig),
    "solve": (cello1.tl.solve, SolveConfig),
    "benchmark": (cello1.tl.benchmark, BenchmarkConfig),
}


def _parser(verb: str) -> argparse.ArgumentParser:
    sub = argparse.ArgumentParser().add_subparsers()
    if verb == "annotate":
        return add_annotate_parser(sub)
    (register_solve if verb == "solve" else register_benchmark)(sub)
    return sub.choices[verb]


def _config_default(cls: type, name: str):
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return None if f.default is dataclasses.MISSING else f.default


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_keyword_has_a_flag_whose_default_is_the_signatures(verb):
    function, config = VERBS[verb]
    actions = {a.dest: a for a in _parser(verb)._actions}
    skip = NOT_ON_THE_COMMAND_LINE[verb]
    missing, different = [], []
    for name, param in inspect.signature(function).parameters.items():
        if name in skip:
            continue
        if name not in actions:
            missing.append(name)
            continue
        default = actions[name].default
        # a required keyword (solve's model): the flag's default is the config's
        want = _config_default(config, name) if param.default is param.empty else param.default
        if (tuple(default) if isinstance(default, list) else default) != want:
            different.append(f"{name}: flag {default!r}, signature {want!r}")
    assert missing == [], f"keywords without a flag: {missing}"
    assert different == [], "defaults that differ:\n" + "\n".join(different)
    assert set(skip) <= set(inspect.signature(function).parameters)


@pytest.mark.parametrize("verb", list(VERBS))
def test_signature_and_config_name_the_same_settings_with_the_same_defaults(verb):
    function, config = VERBS[verb]
    params = inspect.signature(function).parameters
    old = set(config._OLD_NAMES)
    positional = {"adata", "puzzles"}
    assert set(params) - old - positional == set(config.field_names())
    for name in config.field_names():
        if params[name].default is not params[name].empty:
            assert params[name].default == _config_default(config, name), name


def test_choices_on_the_command_line_come_from_the_literal_types():
    from sc_cello1.data import SPLITS
    from sc_cello1.inference import BACKENDS

    for verb in VERBS:
        actions = {a.dest: a for a in _parser(verb)._actions}
        assert actions["backend"].choices == list(BACKENDS), verb
    bench = {a.dest: a for a in _parser("benchmark")._actions}
    assert bench["split"].choices == list(SPLITS)
    assert bench["leakage_by"].choices == ["ranked", "set"]
    solve = {a.dest: a for a in _parser("solve")._actions}
    assert solve["style"].choices == ["eval", "sft", "rl"]


def test_context_fields_and_use_raw_reach_annotate_as_typed():
    parser = _parser("annotate")
    args = parser.parse_args(["x.h5ad", "-o", "y.h5ad", "--context-fields", "smoker", "stage"])
    assert tuple(args.context_fields) == ("smoker", "stage") and args.use_raw is None
    args = parser.parse_args(["x.h5ad", "-o", "y.h5ad", "--use-raw", "--reference-use-raw"])
    assert args.use_raw is True and args.reference_use_raw is True
    args = parser.parse_args(["x.h5ad", "-o", "y.h5ad", "--candidates", "B cell", "T cell"])
    assert args.candidates == ["B cell", "T cell"] and args.ontology is None


def test_old_flags_are_hidden_and_map_to_the_new_names_with_a_warning():
    from sc_cello1._config import config_from_args

    for verb, cls, argv in [
        ("solve", SolveConfig, ["p.jsonl", "-o", "o.jsonl"]),
        ("annotate", AnnotateConfig, ["x.h5ad", "-o", "y.h5ad"]),
    ]:
        parser = _parser(verb)
        assert "--cache-dir" not in parser.format_help() and "--answer-dir" in parser.format_help()
        args = parser.parse_args([*argv, "--cache-dir", "answers"])
        with pytest.warns(FutureWarning, match="--cache-dir is deprecated.*--answer-dir"):
            config = config_from_args(args, cls)
        assert config.answer_dir == "answers", verb
        args = parser.parse_args([*argv, "--cache-dir", "a", "--answer-dir", "b"])
        with pytest.raises(ValueError, match=r"both --cache-dir \(old name\) and --answer-dir"):
            config_from_args(args, cls)
    parser = _parser("solve")
    args = parser.parse_args(["p.jsonl", "-o", "o.jsonl", "--n-samples", "3", "--no-unique"])
    with pytest.warns(FutureWarning, match="--n-samples is deprecated"):
        config = config_from_args(args, SolveConfig)
    assert config.num_generations == 3 and config.one_to_one is False


def test_benchmark_cache_dir_is_the_weights_root_without_a_warning(recwarn):
    from sc_cello1._config import config_from_args

    parser = _parser("benchmark")
    assert "--cache-dir" in parser.format_help() and "--weights-dir" not in parser.format_help()
    args = parser.parse_args(["--model", "m", "-o", "out", "--cache-dir", "w"])
    assert config_from_args(args, BenchmarkConfig).cache_dir == "w"
    assert BenchmarkConfig.from_call(model="m", output_dir="o", cache_dir="w").cache_dir == "w"
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]
    assert "weights_dir" not in inspect.signature(cello1.tl.benchmark).parameters

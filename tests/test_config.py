"""The per-verb config machinery (``sc_cello1._config``): fields, checks, params, CLI, docs."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from sc_cello1._config import (
    SHARED_DOCS,
    VerbConfig,
    add_config_options,
    choices_of,
    config_from_args,
    doc_params,
    option,
)

Backend = Literal["auto", "transformers", "vllm", "openai"]


@dataclasses.dataclass(frozen=True)
class DemoConfig(VerbConfig):
    _VERB: ClassVar[str] = "demo"
    _OLD_NAMES: ClassVar[dict[str, str]] = {"n_samples": "num_generations", "unique": "one_to_one"}

    backend: Backend = option("auto", help="Where the model runs.")
    num_generations: int = option(
        1, help="Samples per puzzle.", check=lambda v: None if v >= 1 else "pass 1 or more."
    )
    one_to_one: bool = option(False, help="Distinct labels.")
    temperature: float | None = option(None, help="Sampling temperature.")
    key_added: str = option("cello1", help="Where results go.")
    answer_dir: Path | None = option(None, help="Answer cache.")
    groups: tuple[str, ...] = option((), help="Clusters to label.")
    backend_kwargs: dict[str, Any] = option(factory=dict, help="Backend arguments.")
    runner: Any = option(None, help="A built backend.", cli=False, params=False)


def test_fields_are_checked_with_the_field_named():
    with pytest.raises(ValueError, match=r"demo: `backend='gpu'` is not valid; use one of 'auto'"):
        DemoConfig(backend="gpu")
    with pytest.raises(TypeError, match=r"`one_to_one` must be bool, got int 1"):
        DemoConfig(one_to_one=1)
    with pytest.raises(TypeError, match=r"`num_generations` must be int, got bool"):
        DemoConfig(num_generations=True)
    with pytest.raises(ValueError, match=r"`num_generations=0`: pass 1 or more\."):
        DemoConfig(num_generations=0)
    with pytest.raises(TypeError, match=r"`key_added` must not be None"):
        DemoConfig(key_added=None)
    assert DemoConfig(temperature=1).temperature == 1  # an int is a float
    with pytest.raises(dataclasses.FrozenInstanceError):
        DemoConfig().backend = "vllm"  # type: ignore[misc]


def test_from_call_maps_old_keywords_with_a_future_warning_and_rejects_unknown_ones():
    with pytest.warns(FutureWarning, match=r"n_samples= -> num_generations="):
        cfg = DemoConfig.from_call(n_samples=3, backend="vllm")
    assert cfg.num_generations == 3 and cfg.backend == "vllm"
    with pytest.raises(TypeError, match=r"both unique= \(old name\) and one_to_one="):
        DemoConfig.from_call(unique=True, one_to_one=True)
    with pytest.raises(
        TypeError, match=r"unknown keyword\(s\) \['nope'\]; the settings are: backend"
    ):
        DemoConfig.from_call(nope=1)
    with pytest.raises(ValueError, match="pass 1 or more"):
        DemoConfig().replace(num_generations=-1)


def test_params_are_json_friendly_and_leave_python_objects_out(tmp_path):
    cfg = DemoConfig(
        answer_dir=tmp_path, groups=("0", "1"), backend_kwargs={"a": (1, 2)}, runner=object()
    )
    params = cfg.params()
    assert params["answer_dir"] == str(tmp_path) and params["groups"] == ["0", "1"]
    assert params["backend_kwargs"] == {"a": [1, 2]} and "runner" not in params
    assert list(params) == [n for n in DemoConfig.field_names() if n != "runner"]


def _parser(**kw):
    parser = argparse.ArgumentParser(exit_on_error=False)
    added = add_config_options(parser, DemoConfig, **kw)
    return parser, added


def test_cli_options_come_from_the_fields_with_their_defaults_and_choices():
    parser, added = _parser()
    assert "runner" not in added and added == [n for n in DemoConfig.field_names() if n != "runner"]
    actions = {a.dest: a for a in parser._actions}
    for f in dataclasses.fields(DemoConfig):
        if f.name in added:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            assert actions[f.name].default == default, f.name
    assert actions["backend"].choices == ["auto", "transformers", "vllm", "openai"]
    assert "Where the model runs. (default: auto)" in parser.format_help()
    args = parser.parse_args(
        ["--backend", "vllm", "--one-to-one", "--num-generations", "4", "--groups", "a, b",
         "--backend-kwargs", '{"x": 1}', "--answer-dir", "c", "--temperature", "0.5"]
    )  # fmt: skip
    cfg = config_from_args(args, DemoConfig, runner="r")
    assert cfg == DemoConfig(
        backend="vllm", one_to_one=True, num_generations=4, groups=("a", "b"),
        backend_kwargs={"x": 1}, answer_dir=Path("c"), temperature=0.5, runner="r",
    )  # fmt: skip
    assert config_from_args(parser.parse_args([]), DemoConfig) == DemoConfig()
    with pytest.raises(argparse.ArgumentError):
        parser.parse_args(["--backend", "gpu"])


def test_old_flags_are_hidden_and_warn_and_only_given_leaves_defaults_out():
    parser, _ = _parser()
    assert "--n-samples" not in parser.format_help()
    with pytest.warns(FutureWarning, match="--n-samples is deprecated"):
        cfg = config_from_args(parser.parse_args(["--n-samples", "2"]), DemoConfig)
    assert cfg.num_generations == 2
    parser, _ = _parser(only_given=True, skip=("key_added",))
    assert vars(parser.parse_args(["--no-one-to-one"])) == {"one_to_one": False}
    assert "--key-added" not in parser.format_help()


def test_a_field_the_cli_cannot_parse_must_say_so():
    @dataclasses.dataclass(frozen=True)
    class Bad(VerbConfig):
        fn: Any = option(None, help="A callable.")

    with pytest.raises(TypeError, match=r"cannot parse field 'fn'.*cli=False"):
        add_config_options(argparse.ArgumentParser(), Bad)


def test_choices_of_literal_types():
    assert choices_of(Backend) == ("auto", "transformers", "vllm", "openai")
    assert choices_of(Literal[1, 2] | None) == (1, 2)
    assert choices_of(int) is None


def test_doc_params_fills_shared_text_once_written_and_leaves_other_braces():
    @doc_params(doc_backend=SHARED_DOCS["doc_backend"])
    def f():
        """Do it with {a, b}.

        Parameters
        ----------
        {doc_backend}
        """

    assert "{a, b}" in f.__doc__ and "{doc_backend}" not in f.__doc__
    assert "settings.default_backend" in f.__doc__

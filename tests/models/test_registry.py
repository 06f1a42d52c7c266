from __future__ import annotations

import re

import pytest

from sc_cello1 import models
from sc_cello1.models._registry import get_spec

FILES = {"config.json": None, "model.safetensors": "A" * 64}


@pytest.fixture
def registered():
    names = []

    def reg(name, **kw):
        kw.setdefault("files", FILES)
        kw.setdefault("revision", "v1")
        spec = models.register(name, **kw)
        names.append(spec.name)
        return spec

    yield reg
    for name in names:
        if name in models.registered_names():
            models.unregister(name)


def test_builtin_models_are_pinned_to_commits_never_branches():
    for name in ("cell-o1", "qwen2.5-7b-instruct", "smollm2-135m"):
        spec = get_spec(name)
        assert re.fullmatch(r"[0-9a-f]{40}", spec.revision), name
        assert "config.json" in spec.files
        assert "/resolve/main/" not in spec.url("config.json")
    cello = get_spec("cell-o1")
    assert cello.repo == "ncbi/Cell-o1"
    assert {
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
        "merges.txt",
        "special_tokens_map.json",
        "added_tokens.json",
    } <= set(cello.files)
    assert (
        cello.url("config.json")
        == f"https://huggingface.co/ncbi/Cell-o1/resolve/{cello.revision}/config.json"
    )
    assert get_spec("qwen2.5-7b-instruct").repo == "Qwen/Qwen2.5-7B-Instruct"
    assert get_spec("smollm2-135m").repo == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert get_spec("ncbi/Cell-o1") is cello  # repository ids work as names
    assert get_spec("Cell-O1") is cello


def test_available_lists_registered_models(tmp_path):
    table = models.available(cache_dir=tmp_path)
    assert list(table.columns) == [
        "name",
        "type",
        "repo",
        "revision",
        "size_gb",
        "licence",
        "cached",
        "cached_as",
        "description",
    ]
    row = table.set_index("name").loc["cell-o1"]
    assert row["repo"] == "ncbi/Cell-o1"
    assert 14 < row["size_gb"] < 16
    assert not row["cached"]
    assert not table["cached"].any()
    assert (table["cached_as"] == "").all()
    data = table.set_index("name").loc["cellpuzzles"]
    assert data["type"] == "dataset" and data["revision"] == "(none pinned)"


def test_register_happy_path(registered, tmp_path):
    spec = registered(
        "my-model", base_url="https://models.example.org/", repo="lab/ft", licence="CC-BY-4.0"
    )
    assert spec.url("config.json") == "https://models.example.org/lab/ft/resolve/v1/config.json"
    assert spec.known_hashes() == {"model.safetensors": "a" * 64}
    assert "my-model" in models.registered_names()
    row = models.available(cache_dir=tmp_path).set_index("name").loc["my-model"]
    assert row["licence"] == "CC-BY-4.0" and row["revision"] == "v1"
    assert models.check_model("my-model") == "registry"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"revision": "main"}, ValueError, "branch"),
        ({"revision": ""}, ValueError, "revision"),
        ({"files": {"model.safetensors": None}}, ValueError, "config.json"),
        ({"files": {}}, ValueError, "non-empty"),
        ({"files": ["config.json"]}, TypeError, "dict"),
        ({"files": {"config.json": "abc"}}, ValueError, "64 hex"),
        ({"files": {"config.json": None, "../x": None}}, ValueError, "'..'"),
        ({"files": {"config.json": None, "/etc/passwd": None}}, ValueError, "relative"),
        ({"base_url": "models.example.org"}, ValueError, "http"),
        ({"repo": "a/b/c"}, ValueError, "owner/name"),
    ],
)
def test_register_bad_input(registered, kwargs, error, match):
    with pytest.raises(error, match=match):
        registered("bad-model", **kwargs)
    assert "bad-model" not in models.registered_names()


def test_register_refuses_to_replace(registered):
    with pytest.raises(ValueError, match="built-in"):
        registered("cell-o1")
    with pytest.raises(ValueError, match="name"):
        registered("has space")
    registered("mine")
    with pytest.raises(ValueError, match="overwrite=True"):
        registered("mine")
    spec = registered("mine", revision="v2", overwrite=True)
    assert get_spec("mine").revision == "v2" == spec.revision


def test_unregister_bad_input():
    with pytest.raises(ValueError, match="built-in"):
        models.unregister("cell-o1")
    with pytest.raises(ValueError, match="Registered models"):
        models.unregister("never-registered")

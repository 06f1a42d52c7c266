from __future__ import annotations

import json
import time

import pytest
from tests.models._servers import MODEL_FILES, CuttingServer, closed_port_url, sha256

from sc_cello1 import models
from sc_cello1.models import _download


def _forget_verified():
    """Forget this process's verification memo, as a new Python session would."""
    _download._VERIFIED.clear()


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_first_fetch_downloads_second_makes_no_request(served_model):
    m = served_model
    path = models.fetch(m.name, cache_dir=m.cache)

    assert path == m.cache / "models" / m.repo / m.revision
    assert sorted(m.get_requests()) == sorted(
        f"/{m.repo}/resolve/{m.revision}/{f}" for f in MODEL_FILES
    )
    for f in MODEL_FILES:
        assert sha256(path / f) == m.hashes[f]
    assert not list(path.glob(".*.part")) and not list(path.glob("tmp*"))

    spec = _spec(m.name)
    manifest = json.loads(models.manifest_path(spec, m.cache).read_text())
    assert manifest["revision"] == m.revision
    assert {f: e["sha256"] for f, e in manifest["files"].items()} == m.hashes
    assert {e["source"] for e in manifest["files"].values()} == {"recorded at first download"}

    _forget_verified()  # a later session: hashes are verified again from the files
    n = len(m.get_requests())
    assert models.fetch(m.name, cache_dir=m.cache) == path
    assert len(m.get_requests()) == n  # no request at all
    assert models.is_cached(spec, m.cache)
    table = models.available(cache_dir=m.cache).set_index("name")
    assert bool(table.loc[m.name, "cached"]) and not bool(table.loc["cell-o1", "cached"])


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_corrupted_cached_file_is_fetched_again(served_model):
    m = served_model
    path = models.fetch(m.name, cache_dir=m.cache)
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[1000] ^= 0xFF  # one flipped byte, same size
    weights.write_bytes(bytes(data))
    _forget_verified()
    n = len(m.get_requests())

    resolved = models.resolve(m.name, cache_dir=m.cache)

    assert m.get_requests()[n:] == [f"/{m.repo}/resolve/{m.revision}/model.safetensors"]
    assert sha256(weights) == m.hashes["model.safetensors"]
    assert resolved.files == m.hashes


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_wrong_known_hash_raises_naming_file_and_both_hashes(served_model, tmp_path):
    m = served_model
    wrong = "0" * 64
    name = m.name + "-pinned"
    files = dict.fromkeys(MODEL_FILES)
    files["config.json"] = wrong
    models.register(name, base_url=m.server.url, repo=m.repo, revision=m.revision, files=files)
    try:
        with pytest.raises(ValueError, match=r"config\.json") as err:
            models.fetch(name, cache_dir=tmp_path / "other-cache")
    finally:
        models.unregister(name)
    assert wrong in str(err.value)
    assert m.hashes["config.json"] in str(err.value)
    folder = tmp_path / "other-cache" / "models" / m.repo / m.revision
    assert not (folder / "config.json").exists()  # the bad download was deleted


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_known_hashes_are_checked_and_recorded_as_known(served_model, tmp_path):
    m = served_model
    name = m.name + "-known"
    models.register(
        name, base_url=m.server.url, repo=m.repo, revision=m.revision, files=dict(m.hashes)
    )
    try:
        resolved = models.resolve(name, cache_dir=tmp_path / "c2")
        spec = _spec(name)
        manifest = json.loads(models.manifest_path(spec, tmp_path / "c2").read_text())
    finally:
        models.unregister(name)
    assert resolved.files == m.hashes
    assert {e["source"] for e in manifest["files"].values()} == {"known"}


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_unreachable_server_with_full_cache_still_loads(served_model):
    m = served_model
    path = models.fetch(m.name, cache_dir=m.cache)
    m.server.stop()
    _forget_verified()

    assert models.fetch(m.name, cache_dir=m.cache) == path
    assert models.fetch(m.name, cache_dir=m.cache, mirror=closed_port_url()) == path
    resolved = models.resolve(m.name, cache_dir=m.cache, download=False)
    assert resolved.path == path and resolved.source == "registry"
    assert resolved.revision == m.revision and resolved.files == m.hashes
    assert models.check_model(m.name, download=False, cache_dir=m.cache) == "registry"


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_offline_without_cache_fails_fast_naming_mirror_and_files(served_model):
    m = served_model
    start = time.perf_counter()
    with pytest.raises(models.ModelDownloadError) as err:
        models.fetch(m.name, cache_dir=m.cache, mirror=closed_port_url())
    assert time.perf_counter() - start < 5
    msg = str(err.value)
    assert "CELLO1_MIRROR" in msg
    assert all(f in msg for f in MODEL_FILES)
    assert m.get_requests() == []

    with pytest.raises(models.ModelNotCachedError, match="CELLO1_MIRROR") as err2:
        models.fetch(m.name, cache_dir=m.cache, download=False)
    assert "model.safetensors" in str(err2.value)
    with pytest.raises(models.ModelNotCachedError, match="download=False"):
        models.check_model(m.name, download=False, cache_dir=m.cache)
    assert m.get_requests() == []


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_missing_file_on_server_names_status_and_file(served_model):
    m = served_model
    (m.served / "tokenizer.json").unlink()
    with pytest.raises(models.ModelDownloadError, match="HTTP 404") as err:
        models.fetch(m.name, cache_dir=m.cache)
    assert "tokenizer.json" in str(err.value)
    assert not models.is_cached(_spec(m.name), m.cache)


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_truncated_part_file_is_not_taken_as_complete(served_model):
    m = served_model
    folder = m.cache / "models" / m.repo / m.revision
    folder.mkdir(parents=True)
    half = (m.served / "model.safetensors").read_bytes()[:1000]
    (folder / ".model.safetensors.part").write_bytes(half)  # left by an interrupted run
    (folder / "tmpab12cd_3").write_bytes(half)  # pooch's temporary file of a killed run
    assert not models.is_cached(_spec(m.name), m.cache)

    path = models.fetch(m.name, cache_dir=m.cache)  # http.server ignores Range: full file again

    assert sha256(path / "model.safetensors") == m.hashes["model.safetensors"]
    assert not (folder / ".model.safetensors.part").exists()
    assert not (folder / "tmpab12cd_3").exists()


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_download_cut_half_way_is_not_complete_and_resumes(served_model, tmp_path):
    m = served_model
    server = CuttingServer(tmp_path / "srv", cut_once={"model.safetensors"})
    name = m.name + "-cut"
    models.register(
        name,
        base_url=server.url,
        repo=m.repo,
        revision=m.revision,
        files=dict.fromkeys(MODEL_FILES),
    )
    cache = tmp_path / "cut-cache"
    try:
        with pytest.raises(models.ModelDownloadError, match=r"model\.safetensors"):
            models.fetch(name, cache_dir=cache)
        spec = _spec(name)
        folder = models.model_dir(spec, cache)
        assert not (folder / "model.safetensors").exists()
        part = folder / ".model.safetensors.part"
        size = (m.served / "model.safetensors").stat().st_size
        kept = part.stat().st_size
        assert 0 < kept < size
        manifest = json.loads(models.manifest_path(spec, cache).read_text())
        assert "model.safetensors" not in manifest["files"]
        assert not models.is_cached(spec, cache)

        resolved = models.resolve(name, cache_dir=cache)
    finally:
        models.unregister(name)
        server.stop()
    ranges = [r for (_, p, r) in server.log if p.endswith("model.safetensors")]
    assert ranges == [None, f"bytes={kept}-"]  # resumed where it stopped
    assert sha256(resolved.path / "model.safetensors") == m.hashes["model.safetensors"]
    assert resolved.files == m.hashes


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_cache_dir_from_environment(served_model, monkeypatch):
    m = served_model
    monkeypatch.setenv("CELLO1_CACHE_DIR", str(m.cache / "env"))
    from sc_cello1 import settings

    monkeypatch.setattr(settings, "_cache_dir", None)
    path = models.fetch(m.name)
    assert path == m.cache / "env" / "models" / m.repo / m.revision


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_mirror_replaces_the_hub_for_hub_models(served_model, monkeypatch):
    m = served_model
    from sc_cello1 import settings

    name = m.name + "-hub"
    models.register(name, repo=m.repo, revision=m.revision, files=dict.fromkeys(MODEL_FILES))
    try:
        spec = _spec(name)
        assert _download.resolve_base_url(spec) == models.HUB_URL
        monkeypatch.setattr(settings, "mirror", m.server.url)
        assert _download.resolve_base_url(spec) == m.server.url
        path = models.fetch(name, cache_dir=m.cache)
    finally:
        models.unregister(name)
    assert sha256(path / "config.json") == m.hashes["config.json"]
    assert len(m.get_requests()) == len(MODEL_FILES)


def test_fetch_bad_input(tmp_path):
    with pytest.raises(ValueError, match="Registered models"):
        models.fetch("no-such-model", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="mirror="):
        models.fetch("cell-o1", mirror="ftp://example.org", cache_dir=tmp_path)
    assert not (tmp_path / "models").exists()


def test_hf_hub_offline_makes_no_request_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sc_cello1 import settings

    monkeypatch.setattr(settings, "mirror", None)
    monkeypatch.delenv("CELLO1_MIRROR", raising=False)
    with pytest.raises(models.ModelNotCachedError, match="HF_HUB_OFFLINE"):
        models.fetch("qwen2.5-7b-instruct", cache_dir=tmp_path)


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_fetched_folder_loads_with_transformers_and_generates(served_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = served_model
    path = models.fetch(m.name, cache_dir=m.cache)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "B cell | T cell"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    assert out.shape[1] == ids["input_ids"].shape[1] + 5
    assert isinstance(tok.decode(out[0, ids["input_ids"].shape[1] :]), str)


def _spec(name):
    from sc_cello1.models._registry import get_spec

    return get_spec(name)


def test_hub_token_goes_to_the_hub_only(monkeypatch):
    from sc_cello1._hub._http import _headers

    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert _headers(models.HUB_URL + "/a/b/resolve/main/x")["Authorization"] == "Bearer hf_secret"
    assert "Authorization" not in _headers("http://127.0.0.1:9/a/b/resolve/main/x")


@pytest.mark.slow  # a real HTTP server on 127.0.0.1
def test_manifest_and_refs_have_the_umask_mode_not_0600(served_model):
    import os
    import stat

    m = served_model
    old = os.umask(0o022)
    try:
        models.fetch(m.name, cache_dir=m.cache)
    finally:
        os.umask(old)
    manifest = models.manifest_path(_spec(m.name), m.cache)
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o644

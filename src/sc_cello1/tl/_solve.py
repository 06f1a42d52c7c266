"""``cello1.tl.solve``: run CellPuzzles through a model, with a resumable cache."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sc_cello1._io import atomic_write
from sc_cello1._logging import logger, progress_bar

if TYPE_CHECKING:
    from sc_cello1.data import Puzzle
    from sc_cello1.inference import Backend, Generation
    from sc_cello1.models import ResolvedModel

#: Version of the cache entry layout (part of every cache key).
CACHE_VERSION = 1

# Prompts per generate call when ``batch_size`` is not given, by backend.
_DEFAULT_BATCH = {"transformers": 8, "vllm": 1024, "openai": 64}


class SolveResult(list):
    """The records of :func:`solve` (a list of dicts) with a :attr:`provenance` dict."""

    def __init__(
        self, records: Sequence[dict[str, Any]] = (), provenance: dict[str, Any] | None = None
    ):
        super().__init__(records)
        self.provenance: dict[str, Any] = dict(provenance or {})

    def to_dataframe(self):
        """Return the records as a :class:`pandas.DataFrame` (one row per puzzle and sample)."""
        import pandas as pd

        return pd.DataFrame(list(self))


def _as_puzzles(puzzles: Any) -> list[Puzzle]:
    from sc_cello1.data import Puzzle

    if isinstance(puzzles, Puzzle):
        return [puzzles]
    if isinstance(puzzles, str | bytes | os.PathLike | Mapping) or not isinstance(
        puzzles, Sequence
    ):
        msg = (
            "`puzzles` must be a list of cello1.data.Puzzle (or CellPuzzles record dicts); "
            "read a file with `cello1.data.read_puzzles(path)` first."
        )
        raise TypeError(msg)
    if len(puzzles) == 0:
        msg = "`puzzles` is empty; give at least one puzzle."
        raise ValueError(msg)
    out = []
    for i, p in enumerate(puzzles):
        if isinstance(p, Puzzle):
            out.append(p)
        elif isinstance(p, Mapping):
            try:
                out.append(Puzzle.from_record(p))
            except (ValueError, TypeError) as e:
                msg = f"puzzles[{i}] is not a valid CellPuzzles record: {e}"
                raise ValueError(msg) from e
        else:
            msg = f"puzzles[{i}] is a {type(p).__name__}; expected a cello1.data.Puzzle or a record dict."
            raise TypeError(msg)
        if not out[-1].candidates or any(
            not isinstance(c, str) or not c.strip() for c in out[-1].candidates
        ):
            msg = f"puzzles[{i}] has no candidates or an empty candidate label; every puzzle needs non-empty labels."
            raise ValueError(msg)
    return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def cache_key(messages: list[dict[str, str]], settings: Mapping[str, Any]) -> str:
    """Hash one puzzle into its cache key: prompt messages, model provenance, sampling settings."""
    blob = json.dumps(
        {"v": CACHE_VERSION, "messages": messages, **settings}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class _Cache:
    """One JSON file per puzzle (all its samples), written atomically."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory).expanduser()
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def get(self, key: str) -> list[dict[str, Any]] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("unreadable cache entry %s; recomputing it", path)
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not entry.get("complete"):
            return None
        return entry["generations"]

    def put(self, key: str, generations: list[dict[str, Any]]) -> None:
        entry = {"key": key, "complete": True, "generations": generations}
        with atomic_write(self._path(key), fsync=True) as f:
            json.dump(entry, f)


def _gen_to_dict(g: Generation) -> dict[str, Any]:
    return {
        "text": g.text,
        "reasoning": g.reasoning,
        "finish_reason": g.finish_reason,
        "n_tokens": g.n_tokens,
    }


def _record(
    puzzle: Puzzle, index: int, sample: int, gen: Mapping[str, Any], *, repair: bool, unique: bool
) -> dict[str, Any]:
    from sc_cello1._answer import (
        THINK_CLOSE,
        THINK_OPEN,
        extract_answer,
        extract_reasoning,
        is_permutation,
        is_valid_format,
        join_items,
        split_items,
    )
    from sc_cello1.inference import repair_items

    content = gen["text"]
    reasoning = gen.get("reasoning")
    if reasoning:
        text = f"{THINK_OPEN}{reasoning}{THINK_CLOSE}\n{content.lstrip()}"
    else:
        text = content
        reasoning = extract_reasoning(text) or None
    answer = extract_answer(text)
    items = split_items(answer)
    cands = puzzle.candidates
    return {
        "puzzle": index,
        "sample": sample,
        "text": text,
        "content": content,
        "reasoning": reasoning,
        "answer": answer,
        "items": items,
        "valid_format": is_valid_format(text),
        "is_permutation": is_permutation(items, cands),
        "repaired": repair_items(items, cands, n_items=puzzle.n_cells, unique=unique)
        if repair
        else None,
        "gold": join_items(puzzle.answer) if puzzle.answer is not None else None,
        "n_cells": puzzle.n_cells,
        "candidates": list(cands),
        "finish_reason": gen.get("finish_reason"),
        "n_tokens": gen.get("n_tokens", 0),
    }


def solve(
    puzzles: Sequence[Puzzle] | Sequence[Mapping[str, Any]],
    *,
    model: str | os.PathLike | ResolvedModel | Backend,
    backend: str = "auto",
    num_generations: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int = 3500,
    seed: int | None = 0,
    style: str = "eval",
    constrained: bool = False,
    repair: bool = True,
    unique: bool = True,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int | None = None,
    backend_kwargs: Mapping[str, Any] | None = None,
    n_samples: int | None = None,
) -> SolveResult:
    r"""Ask a model to solve CellPuzzles; one record per puzzle and sample.

    Every input is validated before any model is loaded. Prompts are sent in batches
    (longest first), so a batched backend pads little. With ``cache_dir``, each finished
    puzzle is written to its own file atomically, so an interrupted run resumes where it
    stopped; the cache key holds the prompt, the model's provenance and every sampling
    setting, so a changed setting is never served from an old entry.

    Parameters
    ----------
    puzzles
        :class:`~sc_cello1.data.Puzzle` objects or CellPuzzles record dicts
        (``system_msg``, ``user_msg``, ``assistant_msg``); read a file with
        :func:`~sc_cello1.data.read_puzzles`.
    model
        A registered model name (``"cell-o1"``, see :mod:`sc_cello1.models`), a local
        model folder, a ``.gguf`` file, a :class:`~sc_cello1.models.ResolvedModel` from
        :func:`~sc_cello1.models.resolve` (used as it is), for ``backend="openai"`` the
        name the server knows, or an already built backend
        (:func:`~sc_cello1.inference.get_backend`) to reuse one loaded model across calls.
    backend
        ``"auto"`` (``settings.default_backend`` when set; else vLLM with CUDA, else
        transformers), ``"transformers"``, ``"vllm"`` or ``"openai"``; ignored when
        ``model`` is a backend.
    num_generations
        Completions per puzzle (use ``temperature > 0`` for different ones); the same
        word as :attr:`~sc_cello1.train.GRPOConfig.num_generations`.
    temperature
        ``0``: greedy, as in the paper's evaluation; above: sampling.
    max_new_tokens
        Cap on generated tokens per completion (the paper: 3,500). With
        ``constrained=True`` it must leave room for the tags and the longest answer;
        that is checked with the tokenizer alone, before the model loads
        (:func:`~sc_cello1.inference.check_answer_budget`).
    seed
        Random seed of sampling. Samples depend on how prompts are batched, so a resumed
        run can differ from an uninterrupted one when sampling (greedy runs do not).
    style
        Prompt layout (:func:`~sc_cello1.data.build_messages`): ``"eval"`` (the paper's
        evaluation prompt, what Cell-o1 expects), ``"sft"`` or ``"rl"``.
    constrained
        Restrict the answer to the candidates: with transformers, each answer is a
        permutation of the candidates by construction (reasoning stays free, up to a
        budget); with vLLM, a structured-output regex guarantees the format and that
        each item is a candidate; the openai backend ignores it.
    repair
        Add ``repaired``: one candidate per cell, near-miss labels mapped to candidates
        and duplicates resolved by a maximum-similarity assignment.
    unique
        Each candidate at most once in ``repaired`` (and in constrained answers) when
        there are no more cells than candidates; ``False`` allows repeats.
    cache_dir
        Folder for the resumable cache (created if needed); ``None``: no cache.
    batch_size
        Prompts per generate call (and per cache commit). Default: 8 for transformers,
        1024 for vLLM, 64 for openai.
    backend_kwargs
        Passed to :func:`~sc_cello1.inference.get_backend` (``device_map``, ``dtype``,
        ``tensor_parallel_size``, ``base_url``, ``api_key``...).
    n_samples
        Deprecated name of ``num_generations`` (warns; removed in the next release).

    Returns
    -------
    A :class:`SolveResult` (a list of dicts, puzzle-major, then sample) with keys
    ``puzzle`` (index), ``sample``, ``text`` (the completion; when a server returned the
    reasoning separately, ``<think>{reasoning}</think>\n{content}``), ``content`` (what
    the server returned as content), ``reasoning`` (the think part, or ``None``),
    ``answer`` (:func:`~sc_cello1.metrics.extract_answer`), ``items`` (raw answer items),
    ``valid_format`` (:func:`~sc_cello1.metrics.is_valid_format`), ``is_permutation``
    (raw items are exactly the candidates, case-insensitive), ``repaired`` (or ``None``
    with ``repair=False``), ``gold`` (the true answer joined by ``" | "``, or ``None``),
    ``n_cells``, ``candidates``, ``finish_reason`` and ``n_tokens``. Its ``provenance``
    attribute records the backend, model, revision, settings and package version.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> puzzles = cello1.data.read_puzzles("test.parquet")  # doctest: +SKIP
    >>> records = cello1.tl.solve(puzzles, model="cell-o1", cache_dir="runs/cache")  # doctest: +SKIP
    >>> cello1.metrics.evaluate([r["text"] for r in records], puzzles)  # doctest: +SKIP
    """
    from sc_cello1._answer import one_each
    from sc_cello1._version import __version__
    from sc_cello1.data import PROMPT_STYLES, PROMPT_VERSION
    from sc_cello1.inference import AnswerConstraint, Backend, check_answer_budget, get_backend
    from sc_cello1.inference._base import check_sampling
    from sc_cello1.inference._factory import check_backend_args

    # -- validate everything before any loading -----------------------------------------
    if n_samples is not None:
        warnings.warn(
            "solve(n_samples=...) is renamed num_generations= (completions per puzzle; "
            "annotate's n_samples is the minimum of cells asked per cluster); n_samples will be removed.",
            FutureWarning,
            stacklevel=2,
        )
        num_generations = n_samples
    if (
        isinstance(num_generations, bool)
        or not isinstance(num_generations, int)
        or num_generations < 1
    ):
        msg = (
            f"num_generations={num_generations!r} must be an integer >= 1 (completions per puzzle)."
        )
        raise ValueError(msg)
    items = _as_puzzles(puzzles)
    check_sampling(
        n=num_generations, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed
    )
    if style not in PROMPT_STYLES:
        msg = f"style={style!r} is not a prompt style; use one of {list(PROMPT_STYLES)}."
        raise ValueError(msg)
    for name, flag in (("constrained", constrained), ("repair", repair), ("unique", unique)):
        if not isinstance(flag, bool):
            msg = f"{name} must be True or False, got {flag!r}."
            raise TypeError(msg)
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        msg = f"batch_size={batch_size!r} must be an integer >= 1 (or None for the backend's default)."
        raise ValueError(msg)
    if backend_kwargs is not None and not isinstance(backend_kwargs, Mapping):
        msg = "backend_kwargs must be a dict of keyword arguments for the backend."
        raise TypeError(msg)
    if cache_dir is not None and not isinstance(cache_dir, str | os.PathLike):
        msg = f"cache_dir must be a folder path, got {type(cache_dir).__name__}."
        raise TypeError(msg)
    if cache_dir is not None and Path(cache_dir).expanduser().is_file():
        msg = f"cache_dir={str(cache_dir)!r} is a file; give a folder."
        raise ValueError(msg)
    kwargs = dict(backend_kwargs or {})
    backend_name = check_backend_args(model, backend, **kwargs)
    if batch_size is None:
        batch_size = _DEFAULT_BATCH.get(backend_name, 8)
    messages = [p.messages(cast("Any", style)) for p in items]  # style checked above
    constraints = None
    if constrained:
        constraints = [
            AnswerConstraint(
                tuple(p.candidates),
                p.n_cells,
                unique=one_each(unique, p.n_cells, len(p.candidates)),
            )
            for p in items
        ]
        if backend_name in ("transformers", "vllm"):
            # Only the tokenizer is read here; the model loads below.
            check_answer_budget(model, constraints, max_new_tokens=max_new_tokens)

    # -- load ---------------------------------------------------------------------------
    if isinstance(model, Backend):
        runner = model
    else:
        if backend_name == "transformers":
            kwargs.setdefault("batch_size", batch_size)
        if backend_name != "openai":
            from sc_cello1.models import resolve

            model = resolve(model)  # once; the backend takes the record as it is
        runner = get_backend(model, backend_name, **kwargs)
    prov = _jsonable(runner.provenance())
    settings = {
        "provenance": {k: v for k, v in prov.items() if k not in ("path", "device")},
        # the cache key's name for num_generations (kept so existing caches stay valid)
        "n_samples": num_generations,
        "temperature": float(temperature),
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "constraint": None,
    }
    keys = []
    for i, m in enumerate(messages):
        s = dict(settings)
        if constraints is not None:
            c = constraints[i]
            s["constraint"] = [list(c.candidates), c.n_items, c.unique]
        keys.append(cache_key(m, s))

    # -- run, resuming from the cache ---------------------------------------------------
    cache = _Cache(cache_dir) if cache_dir is not None else None
    done: dict[int, list[dict[str, Any]]] = {}
    if cache is not None:
        for i, k in enumerate(keys):
            hit = cache.get(k)
            if hit is not None and len(hit) == num_generations:
                done[i] = hit
        if done:
            logger.info("%d of %d puzzles found in the cache %s", len(done), len(items), cache.dir)
    todo = sorted(
        (i for i in range(len(items)) if i not in done), key=lambda i: -len(items[i].user_msg)
    )
    start = time.perf_counter()
    n_tokens = 0
    with progress_bar(
        total=len(todo), desc="solving", unit="puzzle", disable=not todo, dynamic_ncols=True
    ) as bar:
        for b in range(0, len(todo), batch_size):
            chunk = todo[b : b + batch_size]
            gens = runner.generate(
                [messages[i] for i in chunk],
                n=num_generations,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                seed=None if seed is None else seed + b,
                constraints=None if constraints is None else [constraints[i] for i in chunk],
            )
            if len(gens) != len(chunk) or any(len(g) != num_generations for g in gens):
                msg = f"backend {type(runner).__name__} returned the wrong number of completions."
                raise RuntimeError(msg)
            for i, g in zip(chunk, gens, strict=True):
                entry = [_gen_to_dict(x) for x in g]
                n_tokens += sum(x["n_tokens"] for x in entry)
                if cache is not None:
                    cache.put(keys[i], entry)
                done[i] = entry
            seconds = time.perf_counter() - start
            bar.set_postfix_str(
                f"{n_tokens / seconds if seconds else 0:.1f} tokens/s", refresh=False
            )
            bar.update(len(chunk))
    elapsed = time.perf_counter() - start
    if todo:
        logger.info(
            "solved %d puzzles x %d samples in %.1f s (%.1f puzzles/min, %d new tokens)",
            len(todo),
            num_generations,
            elapsed,
            60 * len(todo) / elapsed if elapsed else float("inf"),
            n_tokens,
        )
    records = [
        _record(p, i, j, done[i][j], repair=repair, unique=unique)
        for i, p in enumerate(items)
        for j in range(num_generations)
    ]
    provenance = {
        **prov,
        "num_generations": num_generations,
        "temperature": float(temperature),
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "style": style,
        "constrained": constrained,
        "repair": repair,
        "unique": unique,
        "batch_size": batch_size,
        "prompt_version": PROMPT_VERSION,
        "sc_cello1": __version__,
        "n_puzzles": len(items),
        "n_from_cache": len(items) - len(todo),
        "seconds": elapsed,
    }
    return SolveResult(records, provenance)

"""The resumable run behind ``solve`` and the proposal stage of ``annotate``.

Every finished puzzle is written to its own cache file the moment it arrives (a
temporary file in the same folder, fsynced, then moved into place), whatever happens
to the others. A backend with ``generate_each`` (the OpenAI-compatible one) hands
back each prompt as its requests finish, and a prompt that failed after the client's
retries costs only that prompt; other backends generate a batch at a time and each of
its puzzles is stored as soon as the batch returns. At the end, failures raise one
:class:`SolveError` that says how many failed, which, that the rest are kept and how to
go on. Ctrl-C stops at once and keeps what was answered.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sc_cello1._io import atomic_write
from sc_cello1._logging import logger, progress_bar
from sc_cello1._secrets import redact

#: Version of the cache entry layout (part of every cache key).
CACHE_VERSION = 1

#: Provenance fields that say where a model runs, not what it answers: left out of the
#: cache key, so the same server under another host name or port is not asked again.
_NOT_IN_KEY = ("path", "device", "base_url")


class SolveError(RuntimeError):
    """Some puzzles failed; every other answer is kept (in ``answer_dir`` when given).

    Attributes
    ----------
    failed
        Puzzle index -> the error of that puzzle.
    n_done
        Puzzles answered (from the cache or now).
    n_total
        Puzzles asked for.
    """

    def __init__(self, message: str, *, failed: dict[int, str], n_done: int, n_total: int):
        super().__init__(message)
        self.failed = failed
        self.n_done = n_done
        self.n_total = n_total


def key_settings(provenance: Mapping[str, Any], **settings: Any) -> dict[str, Any]:
    """Return the part of a backend's provenance and settings that a cache key covers."""
    return {
        "provenance": redact({k: v for k, v in provenance.items() if k not in _NOT_IN_KEY}),
        **settings,
    }


def cache_key(messages: list[dict[str, str]], settings: Mapping[str, Any]) -> str:
    """Hash one puzzle into its cache key: prompt messages, model provenance, sampling settings."""
    blob = json.dumps(
        {"v": CACHE_VERSION, "messages": messages, **settings}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class AnswerCache:
    """One JSON file per puzzle (all its samples), written atomically.

    Readers look only at ``<key>.json`` (never at the ``.*.tmp`` files of a write in
    progress) and take an entry only when it parses, names its key and is complete.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory).expanduser()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as e:
            msg = (
                f"answer_dir={str(directory)!r} cannot be a folder: {e.strerror} "
                f"({e.filename}); give a folder path that is not under a file."
            )
            raise ValueError(msg) from None

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
        gens = entry.get("generations")
        return gens if isinstance(gens, list) else None

    def put(self, key: str, generations: list[dict[str, Any]]) -> None:
        entry = {"key": key, "complete": True, "generations": generations}
        with atomic_write(self._path(key), fsync=True) as f:
            json.dump(entry, f)


def check_answer_dir(answer_dir: Any) -> None:
    """Reject an ``answer_dir`` that is not a path, is a file or lies under a file."""
    if answer_dir is None:
        return
    if not isinstance(answer_dir, str | os.PathLike):
        msg = f"answer_dir must be a folder path, got {type(answer_dir).__name__}."
        raise TypeError(msg)
    path = Path(answer_dir).expanduser()
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"is under the file {str(p)!r}"
                msg = f"answer_dir={str(answer_dir)!r} {what}; give a folder path."
                raise ValueError(msg)
            break


def gen_to_dict(g: Any) -> dict[str, Any]:
    """Return a :class:`~sc_cello1.inference.Generation` as the dict stored in the cache."""
    return {
        "text": g.text,
        "reasoning": g.reasoning,
        "finish_reason": g.finish_reason,
        "n_tokens": g.n_tokens,
    }


@dataclass
class RunOutcome:
    """What :func:`run_cached` did."""

    done: dict[int, list[dict[str, Any]]]
    n_from_cache: int
    n_tokens: int = 0
    seconds: float = 0.0
    failed: dict[int, str] = field(default_factory=dict)


def run_cached(
    messages: Sequence[list[dict[str, str]]],
    keys: Sequence[str],
    runner: Any,
    *,
    n: int,
    temperature: float,
    max_new_tokens: int,
    seed: int | None,
    batch_size: int,
    answer_dir: str | os.PathLike | None,
    constraints: Sequence[Any] | None = None,
    order: Callable[[int], Any] | None = None,
    desc: str = "solving",
    unit: str = "puzzle",
    old_keys: Sequence[str] | None = None,
) -> RunOutcome:
    """Answer every prompt not in the cache; store each one as it arrives.

    Returns the answers (prompt index -> its ``n`` generation dicts) and the failures
    (prompt index -> error); an in-process backend's exception, or Ctrl-C, propagates
    after a log line that says what is kept. ``old_keys``: the key an earlier release
    gave each prompt, read when its key is not in the cache (and copied to it).
    """
    cache = AnswerCache(answer_dir) if answer_dir is not None else None
    done: dict[int, list[dict[str, Any]]] = {}
    if cache is not None:
        for i, k in enumerate(keys):
            hit = cache.get(k)
            if hit is None and old_keys is not None:
                hit = cache.get(old_keys[i])
                if hit is not None and len(hit) == n:
                    cache.put(k, hit)  # found under its new key from now on
            if hit is not None and len(hit) == n:
                done[i] = hit
        if done:
            logger.info("%d of %d %ss found in the cache %s", len(done), len(keys), unit, cache.dir)
    out = RunOutcome(done=done, n_from_cache=len(done))
    todo = sorted((i for i in range(len(keys)) if i not in done), key=order)
    start = time.perf_counter()
    streams = callable(getattr(runner, "generate_each", None))

    def keep(i: int, gens: Sequence[Any]) -> None:
        if len(gens) != n:
            msg = f"backend {type(runner).__name__} returned {len(gens)} completions, not {n}."
            raise RuntimeError(msg)
        entry = [gen_to_dict(g) for g in gens]
        if cache is not None:
            cache.put(keys[i], entry)
        done[i] = entry
        out.n_tokens += sum(e["n_tokens"] for e in entry)

    bar = progress_bar(total=len(todo), desc=desc, unit=unit, disable=not todo)
    try:
        for b in range(0, len(todo), batch_size):
            chunk = todo[b : b + batch_size]
            kwargs = {
                "n": n,
                "temperature": temperature,
                "max_new_tokens": max_new_tokens,
                "seed": None if seed is None else seed + b,
                "constraints": None if constraints is None else [constraints[i] for i in chunk],
            }
            if streams:
                results = runner.generate_each([messages[i] for i in chunk], **kwargs)
                try:
                    for k, gens in results:
                        if isinstance(gens, BaseException):
                            out.failed[chunk[k]] = _describe(gens)
                            _log_failure(unit, chunk[k], out.failed[chunk[k]], len(out.failed))
                        else:
                            keep(chunk[k], gens)
                        bar.update()
                finally:
                    results.close()
            else:
                gens_list = runner.generate([messages[i] for i in chunk], **kwargs)
                if len(gens_list) != len(chunk):
                    msg = f"backend {type(runner).__name__} returned {len(gens_list)} answers for {len(chunk)} prompts."
                    raise RuntimeError(msg)
                for i, gens in zip(chunk, gens_list, strict=True):
                    keep(i, gens)
                bar.update(len(chunk))
            seconds = time.perf_counter() - start
            bar.set_postfix_str(
                f"{out.n_tokens / seconds if seconds else 0:.1f} tokens/s", refresh=False
            )
    except BaseException as e:
        kept = (
            f"kept in the cache {str(cache.dir)!r}" if cache is not None else "lost (no answer_dir)"
        )
        logger.warning(
            "%s: %d of %d %ss answered before the stop (%s); rerun with the same answer_dir "
            "to ask only the rest",
            "interrupted" if isinstance(e, KeyboardInterrupt) else f"stopped by {type(e).__name__}",
            len(done),
            len(keys),
            unit,
            kept,
        )
        raise
    finally:
        bar.close()
    out.seconds = time.perf_counter() - start
    return out


#: Failures logged as warnings, one by one; later ones go to info (the final error
#: counts them all).
_WARN_FAILURES = 5


def _describe(error: BaseException) -> str:
    text = str(error)
    if type(error).__name__ == "RequestError" and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _log_failure(unit: str, index: int, error: str, count: int) -> None:
    if count <= _WARN_FAILURES:
        more = "; further failures are logged at info" if count == _WARN_FAILURES else ""
        logger.warning("%s %d failed: %s%s", unit, index, error, more)
    else:
        logger.info("%s %d failed: %s", unit, index, error)


def failure_error(
    outcome: RunOutcome, n_total: int, answer_dir: Any, *, unit: str = "puzzle"
) -> SolveError:
    """Make the one error that ends a run with failures: how many, which, what is kept, the way out."""
    failed = dict(sorted(outcome.failed.items()))
    shown = ", ".join(str(i) for i in list(failed)[:10]) + (", ..." if len(failed) > 10 else "")
    first = next(iter(failed.values()))
    n_ok = n_total - len(failed)
    if answer_dir is not None:
        kept = (
            f"the other {n_ok} answers are kept in answer_dir={str(answer_dir)!r}; rerun with the "
            f"same answer_dir to ask only the {len(failed)} missing"
        )
    else:
        kept = (
            f"the other {n_ok} answers were received but not kept (no answer_dir); pass "
            "answer_dir= so a rerun asks only the missing ones"
        )
    msg = (
        f"{len(failed)} of {n_total} {unit}s failed ({unit}s {shown}; first error: {first}); "
        f"{kept}. If the server is slow or busy, raise backend_kwargs max_retries= or timeout=."
    )
    return SolveError(msg, failed=failed, n_done=n_ok, n_total=n_total)

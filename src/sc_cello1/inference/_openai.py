"""Any OpenAI-compatible chat completions server (``vllm serve``, ``transformers serve``, hosted APIs)."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sc_cello1._logging import logger, progress_bar

from ._base import DEFAULT_MAX_NEW_TOKENS, AnswerConstraint, Generation, check_generate_args

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_INSTALL = "pip install 'sc-cello1[openai]'"


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible HTTP endpoint.

    Requests run concurrently (at most ``max_concurrency`` at a time), each retried with
    exponential backoff (and jitter; ``Retry-After`` is honoured) on HTTP 408/409/425/429/5xx
    and on connection errors and timeouts. A server that returns the reasoning
    separately (``reasoning_content``, as ``vllm serve --reasoning-parser`` or
    ``transformers serve`` do for Qwen-family models) fills :attr:`Generation.reasoning`.
    Each of the ``n`` samples is its own request (not every server supports ``n > 1``);
    with ``seed``, sample ``j`` is sent ``seed + j``.

    Parameters
    ----------
    model
        The model name the server knows.
    base_url
        The API root, e.g. ``"http://127.0.0.1:8000/v1"``; default: environment variable
        ``OPENAI_BASE_URL``.
    api_key
        Bearer token; default: environment variable ``OPENAI_API_KEY`` (none if unset).
    max_concurrency
        Requests in flight at once.
    timeout
        Seconds to wait for one response.
    max_retries
        Retries per request after the first attempt.
    backoff
        First retry delay in seconds; doubles with each retry (capped at 60 s).
    extra_body
        Extra JSON fields sent with every request (e.g. ``{"top_p": 0.95}``).

    Examples
    --------
    >>> backend = cello1.inference.OpenAIBackend("cell-o1", base_url="http://127.0.0.1:8000/v1")  # doctest: +SKIP
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 600.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            msg = "model must be the (non-empty) model name the server knows."
            raise TypeError(msg)
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            msg = "The openai backend needs base_url= (e.g. 'http://127.0.0.1:8000/v1') or OPENAI_BASE_URL."
            raise ValueError(msg)
        if not base_url.startswith(("http://", "https://")):
            msg = f"base_url={base_url!r} must start with http:// or https://."
            raise ValueError(msg)
        for name, value in (("max_concurrency", max_concurrency), ("max_retries", max_retries + 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{name} must be a positive integer (max_retries may be 0)."
                raise ValueError(msg)
        if not (timeout > 0 and backoff >= 0):
            msg = "timeout must be > 0 and backoff >= 0 (seconds)."
            raise ValueError(msg)
        try:
            import httpx
        except ImportError as e:  # pragma: no cover - depends on the environment
            e.add_note(f"The openai backend needs httpx: {_INSTALL}")
            raise
        self.model_name = model
        self.base_url = base_url.rstrip("/")
        self.max_concurrency = max_concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.extra_body = dict(extra_body or {})
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(30.0, self.timeout)),
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
        )
        self._lock = threading.Lock()
        self.n_requests = 0
        self.n_retries = 0

    def provenance(self) -> dict[str, Any]:
        """Backend name, model name and server URL (never the key)."""
        return {
            "backend": self.name,
            "model": self.model_name,
            "revision": "",
            "base_url": self.base_url,
            "extra_body": self.extra_body,
        }

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        attempt = 0
        while True:
            with self._lock:
                self.n_requests += 1
            error: str
            delay = min(60.0, self.backoff * (2**attempt)) * (0.5 + random.random() / 2)
            try:
                r = self._client.post("/chat/completions", json=payload)
            except (httpx.TransportError, httpx.TimeoutException) as e:
                error = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    return r.json()
                if r.status_code not in _RETRY_STATUS:
                    msg = f"{self.base_url}/chat/completions answered HTTP {r.status_code}: {r.text[:500]}"
                    raise RuntimeError(msg)
                error = f"HTTP {r.status_code}"
                after = r.headers.get("retry-after")
                if after is not None:
                    try:
                        delay = min(60.0, max(delay, float(after)))
                    except ValueError:
                        pass
            if attempt >= self.max_retries:
                msg = f"{self.base_url}/chat/completions failed after {attempt + 1} attempts (last: {error})."
                raise RuntimeError(msg)
            with self._lock:
                self.n_retries += 1
            logger.warning(
                "request failed (%s); retry %d/%d in %.1f s",
                error,
                attempt + 1,
                self.max_retries,
                delay,
            )
            time.sleep(delay)
            attempt += 1

    @staticmethod
    def _parse(response: dict[str, Any]) -> Generation:
        choice = response["choices"][0]
        message = choice.get("message") or {}
        reasoning = message.get("reasoning_content")
        if reasoning is None:
            reasoning = message.get("reasoning")
        usage = response.get("usage") or {}
        return Generation(
            text=message.get("content") or "",
            reasoning=reasoning if reasoning else None,
            finish_reason=str(choice.get("finish_reason") or "stop"),
            n_tokens=int(usage.get("completion_tokens") or 0),
        )

    def generate(
        self,
        messages: list[list[dict[str, str]]],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        seed: int | None = None,
        constraints: Sequence[AnswerConstraint | None] | None = None,
    ) -> list[list[Generation]]:
        """Generate ``n`` completions per conversation; see :class:`~sc_cello1.inference.Backend`.

        ``constraints`` cannot be expressed portably over this API and are ignored
        (with a log message); the repair step of :func:`~sc_cello1.tl.solve` still applies.
        """
        check_generate_args(
            messages,
            n=n,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            constraints=constraints,
        )
        if constraints is not None and any(c is not None for c in constraints):
            logger.info(
                "the openai backend does not constrain answers; they are repaired afterwards"
            )
        jobs = []
        for i, conv in enumerate(messages):
            for j in range(n):
                payload: dict[str, Any] = {
                    "model": self.model_name,
                    "messages": conv,
                    "max_tokens": max_new_tokens,
                    "temperature": float(temperature),
                    **self.extra_body,
                }
                if seed is not None:
                    payload["seed"] = seed + j
                jobs.append((i, j, payload))
        out: list[list[Generation | None]] = [[None] * n for _ in messages]
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = {pool.submit(self._post, p): (i, j) for i, j, p in jobs}
            bar = progress_bar(
                total=len(futures), desc="requests", disable=len(futures) < 2, leave=False
            )
            try:
                from concurrent.futures import as_completed

                for fut in as_completed(futures):
                    i, j = futures[fut]
                    out[i][j] = self._parse(fut.result())
                    bar.update()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
            finally:
                bar.close()
        return out  # type: ignore[return-value]

"""Any OpenAI-compatible chat completions server (``vllm serve``, ``transformers serve``, hosted APIs).

Built on the official ``openai`` client: its retries (exponential back-off with jitter,
``Retry-After`` honoured), its timeouts and its connection pool. Requests run in a
bounded thread pool rather than with ``AsyncOpenAI``, so :meth:`OpenAIBackend.generate`
also works where an event loop is already running (Jupyter).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import urllib.parse
import warnings
from collections.abc import Generator, Sequence
from typing import Any, cast

from sc_cello1._logging import logger, progress_bar
from sc_cello1._secrets import redact, redact_text, secret_values, strip_url_credentials

from ._base import DEFAULT_MAX_NEW_TOKENS, AnswerConstraint, Generation, check_generate_args
from ._pool import run_each

_INSTALL = "pip install 'sc-cello1[openai]'"


def _retried_status(status: int) -> bool:
    """Whether the ``openai`` client retries a response with this HTTP status."""
    return status in (408, 409, 429) or status >= 500


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible HTTP endpoint.

    Requests run concurrently (at most ``max_concurrency`` at a time) through the
    official ``openai`` client, which retries each one with exponential back-off and
    jitter (0.5 s doubling up to 8 s; a ``Retry-After`` of up to 120 s is honoured) on
    HTTP 408/409/429/5xx and on connection errors and timeouts. A server that returns
    the reasoning separately (``reasoning_content``, as ``vllm serve --reasoning-parser``
    or ``transformers serve`` do for Qwen-family models) fills
    :attr:`Generation.reasoning`. Each of the ``n`` samples is its own request (not every
    server supports ``n > 1``); with ``seed``, sample ``j`` is sent ``seed + j``.

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
        Seconds to wait for one response (connecting: at most 30 s).
    max_retries
        Retries per request after the first attempt.
    backoff
        Deprecated and ignored (warns): the ``openai`` client's own back-off applies.
    extra_body
        Extra JSON fields sent with every request (e.g. ``{"top_p": 0.95}``).

    Attributes
    ----------
    n_requests
        HTTP requests sent so far (every attempt counts).
    n_retries
        Of these, the repeated attempts.

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
        backoff: float | None = None,
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
            msg = (
                f"base_url={strip_url_credentials(base_url)!r} must start with http:// or https://."
            )
            raise ValueError(msg)
        for name, value in (("max_concurrency", max_concurrency), ("max_retries", max_retries + 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{name} must be a positive integer (max_retries may be 0)."
                raise ValueError(msg)
        if not timeout > 0:
            msg = "timeout must be > 0 (seconds)."
            raise ValueError(msg)
        if backoff is not None:
            warnings.warn(
                "OpenAIBackend(backoff=...) is ignored and will be removed: the openai client "
                "backs off by itself (0.5 s doubling up to 8 s, honouring Retry-After).",
                FutureWarning,
                stacklevel=2,
            )
        try:
            import openai
        except ImportError as e:  # pragma: no cover - depends on the environment
            e.add_note(f"The openai backend needs the openai client: {_INSTALL}")
            raise
        self.model_name = model
        # credentials in the URL (http://user:pw@host) become HTTP basic auth, so the
        # URL the client (and its logging) sees, and everything shown or stored, has none
        self.base_url = strip_url_credentials(base_url).rstrip("/")
        parts = urllib.parse.urlsplit(base_url)
        user, password = parts.username, parts.password
        self.max_concurrency = max_concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.extra_body = dict(extra_body or {})
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._secrets = [s for s in (key, password, *secret_values(self.extra_body)) if s]
        self._lock = threading.Lock()
        self._local = threading.local()
        self.n_requests = 0
        self.n_retries = 0
        self._no_key = not key and user is None
        auth = None
        if user is not None:
            auth = _httpx().BasicAuth(
                urllib.parse.unquote(user), urllib.parse.unquote(password or "")
            )
        self._client = openai.OpenAI(
            base_url=self.base_url,
            # without a key (a local server) the client needs a placeholder; _count drops it
            api_key=key or "no-key",
            timeout=openai.Timeout(self.timeout, connect=min(30.0, self.timeout)),
            max_retries=max_retries,
            http_client=openai.DefaultHttpxClient(
                transport=_logging_transport(self, max_concurrency),
                auth=auth,
                event_hooks={"request": [self._count], "response": [self._report]},
            ),
        )

    def _count(self, request: Any) -> None:
        """Count one HTTP attempt (an httpx request hook; runs in the calling thread).

        Without an API key, it also removes the placeholder ``Authorization`` header, so
        no token at all is sent.
        """
        if self._no_key:
            request.headers.pop("Authorization", None)
        self._local.attempts = getattr(self._local, "attempts", 0) + 1
        with self._lock:
            self.n_requests += 1

    def _will_retry(self, cause: str) -> None:
        """Log, at info, that the client retries the current request and why."""
        attempt = getattr(self._local, "attempts", 1)
        if attempt <= self.max_retries:
            logger.info(
                "request failed (%s); retry %d/%d", self._redact(cause), attempt, self.max_retries
            )

    def _report(self, response: Any) -> None:
        """Log a response the client will retry (an httpx response hook)."""
        if _retried_status(response.status_code):
            after = response.headers.get("retry-after")
            extra = f", Retry-After {after}" if after else ""
            self._will_retry(f"HTTP {response.status_code}{extra}")

    def _redact(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def provenance(self) -> dict[str, Any]:
        """Return the backend name, model name and server URL (never a key or password)."""
        return {
            "backend": self.name,
            "model": self.model_name,
            "revision": "",
            "base_url": self.base_url,
            "extra_body": redact(self.extra_body),
        }

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __del__(self) -> None:
        # a backend dropped without close() (an error in the caller) frees its sockets
        client = getattr(self, "_client", None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one chat completion request; return the response's JSON.

        Raises ``RequestError`` when the request failed after the client's retries
        or the server answered something that is not a chat completion.
        """
        import openai

        url = f"{self.base_url}/chat/completions"
        self._local.attempts = 0
        try:
            raw = self._client.chat.completions.with_raw_response.create(
                **payload, extra_body=self.extra_body or None
            )
            body = raw.http_response.text
        except openai.APIStatusError as e:
            status = e.status_code
            if not _retried_status(status):
                msg = f"{url} answered HTTP {status}: {self._redact(e.response.text[:500])}"
                raise RequestError(msg) from None
            error = f"HTTP {status}"
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            error = f"{type(cause).__name__}: {self._redact(str(cause))}"
        else:
            return _completion_json(body, url)
        finally:
            attempts = self._local.attempts
            with self._lock:
                self.n_retries += max(0, attempts - 1)
        msg = (
            f"{url} failed after {attempts} attempts (last: {error}); raise max_retries= or "
            "timeout= if the server is only slow or busy."
        )
        raise RequestError(msg)

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

    def generate_each(
        self,
        messages: list[list[dict[str, str]]],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        seed: int | None = None,
        constraints: Sequence[AnswerConstraint | None] | None = None,
    ) -> Generator[tuple[int, list[Generation] | BaseException], None, None]:
        """Yield ``(prompt index, its n completions or the error)`` as each prompt finishes.

        The same arguments as :meth:`generate`. A prompt whose request failed after the
        client's retries is yielded with its ``RequestError`` and the others go on.
        Closing the iterator (or Ctrl-C while it waits) returns at once: requests not
        sent yet are cancelled; one in flight finishes in the background, unread.
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
                }
                if seed is not None:
                    payload["seed"] = seed + j
                jobs.append((i, j, payload))
        parts: dict[int, list[Generation | None]] = {}
        failed: set[int] = set()
        results = run_each(
            lambda job: self._parse_checked(self._post(job[2])),
            jobs,
            max_workers=self.max_concurrency,
        )
        try:
            for k, gen, error in results:
                i, j, _ = jobs[k]
                if i in failed:
                    continue
                if error is not None:
                    failed.add(i)
                    parts.pop(i, None)
                    yield i, error
                    continue
                slots = parts.setdefault(i, [None] * n)
                slots[j] = gen
                if all(g is not None for g in slots):
                    del parts[i]
                    yield i, cast("list[Generation]", slots)
        finally:
            results.close()

    def _parse_checked(self, response: dict[str, Any]) -> Generation:
        try:
            return self._parse(response)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
            text = self._redact(json.dumps(response)[:300])
            msg = (
                f"{self.base_url}/chat/completions answered HTTP 200 without a chat completion "
                f"(no choices[0].message; {type(e).__name__}: {e}): {text}"
            )
            raise RequestError(msg) from None

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
        The first request that fails after the client's retries raises
        ``RequestError`` (use :meth:`generate_each` to keep the others).
        """
        out: list[list[Generation] | None] = [None] * len(messages)
        bar = progress_bar(
            total=len(messages), desc="requests", disable=len(messages) * n < 2, leave=False
        )
        it = self.generate_each(
            messages,
            n=n,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=seed,
            constraints=constraints,
        )
        try:
            for i, gens in it:
                if isinstance(gens, BaseException):
                    raise gens
                out[i] = gens
                bar.update()
        finally:
            it.close()
            bar.close()
        return cast("list[list[Generation]]", out)


class RequestError(RuntimeError):
    """A chat completion request that failed after the client's retries, or a bad answer."""


def _completion_json(body: str, url: str) -> dict[str, Any]:
    """Return the JSON object of a 200 answer; raise :class:`RequestError` for anything else."""
    try:
        data = json.loads(body)
    except ValueError:
        msg = (
            f"{url} answered HTTP 200 with a body that is not JSON ({body[:200]!r}); check that "
            "base_url is the root of an OpenAI-compatible API (it usually ends in /v1)."
        )
        raise RequestError(msg) from None
    if not isinstance(data, dict):
        msg = f"{url} answered HTTP 200 with JSON that is not an object: {body[:200]!r}"
        raise RequestError(msg)
    return data


def _logging_transport(backend: OpenAIBackend, max_concurrency: int) -> Any:
    """Make an httpx transport that logs, at info, each connection error or timeout retried."""
    httpx = _httpx()

    class _Transport(httpx.HTTPTransport):  # type: ignore[name-defined,misc]
        def handle_request(self, request: Any) -> Any:
            try:
                return super().handle_request(request)
            except httpx.TransportError as e:
                backend._will_retry(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
                raise

    limits = httpx.Limits(
        max_connections=max(100, max_concurrency),
        max_keepalive_connections=max(20, max_concurrency),
    )
    return _Transport(limits=limits)


def _httpx() -> Any:
    """Return the HTTP library of the installed ``openai`` client (``httpx``, or ``httpx2``)."""
    import importlib

    import openai

    base = next(c for c in openai.DefaultHttpxClient.__mro__ if c.__name__ == "Client")
    return importlib.import_module(base.__module__.split(".")[0])

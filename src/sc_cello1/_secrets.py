"""Keep secrets out of what the package stores or prints (``uns``, logs, errors, caches).

Two helpers on the ground floor, used wherever a user-given setting is recorded:

- :func:`strip_url_credentials` removes ``user:password@`` from a URL;
- :func:`redact` copies a value (dicts and lists at any depth) with every value under a
  secret-looking key (``api_key``, ``token``, ``password``, ``Authorization`` ...)
  replaced by :data:`REDACTED`, and credentials stripped from every URL-like string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "redact", "redact_text", "strip_url_credentials"]

#: What a secret is replaced by.
REDACTED = "<redacted>"

# A key is secret when one of these words is a part of its name (split on _ - . and case).
_SECRET_WORDS = (
    "apikey",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "authorization",
    "auth",
    "bearer",
    "credential",
    "credentials",
    "cookie",
)

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def strip_url_credentials(url: str) -> str:
    """Return ``url`` without ``user:password@`` (any text: every URL in it is stripped).

    Examples
    --------
    >>> strip_url_credentials("http://me:pw@127.0.0.1:8000/v1")
    'http://127.0.0.1:8000/v1'
    """
    return _URL_USERINFO.sub(r"\g<scheme>", url)


def is_secret_key(name: object) -> bool:
    """Whether a mapping key names a secret (``api_key``, ``X-Auth-Token``, ``password`` ...)."""
    if not isinstance(name, str):
        return False
    words = [w for w in re.split(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])", name) if w]
    lowered = [w.lower() for w in words]
    if any(w in _SECRET_WORDS for w in lowered) or name.lower() in _SECRET_WORDS:
        return True
    # "key" alone, or an api/access/private/secret key (not key_added, cache_key ...)
    return lowered == ["key"] or (
        "key" in lowered and bool({"api", "access", "private", "subscription"} & set(lowered))
    )


def redact(value: Any) -> Any:
    """Copy ``value`` with secrets replaced by :data:`REDACTED`, at any depth.

    Values under a secret-looking key are replaced whatever they are; strings anywhere
    lose URL credentials. Mappings become dicts, lists and tuples become lists.

    Examples
    --------
    >>> redact({"base_url": "http://u:pw@host/v1", "extra_body": {"headers": {"api-key": "s"}}})
    {'base_url': 'http://host/v1', 'extra_body': {'headers': {'api-key': '<redacted>'}}}
    """
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_secret_key(k) and v is not None else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return strip_url_credentials(value)
    return value


def secret_values(value: Any) -> list[str]:
    """Every string stored under a secret-looking key of ``value`` (at any depth)."""
    out: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            if is_secret_key(k) and isinstance(v, str) and v:
                out.append(v)
            else:
                out.extend(secret_values(v))
    elif isinstance(value, list | tuple):
        for v in value:
            out.extend(secret_values(v))
    return out


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Strip URL credentials from ``text`` and replace each of ``secrets`` (non-empty) in it."""
    out = strip_url_credentials(text)
    for s in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        out = out.replace(s, REDACTED)
    return out

"""Connection parts -> storage URL: the plan's ``provider``/``host``/``port``/... spelling.

Every cache adapter is built from one URL (:func:`serverless_sessions.factory.open_cache`), so
the parts are only a friendlier way to write that URL. Each provider uses the fixed set of parts
its entry in the backend table (:mod:`serverless_sessions.backends`) names;
a part that does not apply, or a part next to a complete ``url``, is an error rather than being
ignored — the one exception is ``password`` beside a Redis URL without one, so the secret can
live in the environment while a file names the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from serverless_sessions.adapters.cache.urls import mask_url
from serverless_sessions.backends import BACKENDS

__all__ = [
    "CONNECTION_FIELDS",
    "PARTS",
    "PartsError",
    "build_url",
    "check_parts",
    "mask_url",
    "with_password",
]

PARTS: Mapping[str, frozenset[str]] = MappingProxyType({name: b.parts for name, b in BACKENDS.items()})
"""The parts each provider uses (from the backend table)."""

CONNECTION_FIELDS = frozenset({"url", "legacy_url", "provider"}.union(*PARTS.values()))
"""Settings that together say where sessions live (merged as a group, see ``config.layers``)."""


class PartsError(ValueError):
    """Connection settings that contradict each other; ``fields`` names them for the message."""

    def __init__(self, message: str, *fields: str) -> None:
        super().__init__(message)
        self.fields = fields


def _given(parts: Mapping[str, object]) -> set[str]:
    return {name for name, value in parts.items() if value is not None}


def check_parts(url: str | None, provider: str | None, parts: Mapping[str, object]) -> None:
    """Refuse parts that would be ignored or contradict ``url``/``provider`` (PartsError)."""
    given = _given(parts)
    if url is not None:
        scheme = urlsplit(url).scheme.lower()
        if provider is not None and scheme not in BACKENDS[provider].schemes:
            raise PartsError(
                f"provider {provider!r} contradicts the url scheme {scheme!r}", "provider", "url"
            )
        extra = sorted(given - {"password"})
        if extra:
            raise PartsError(
                f"a url is complete: put {', '.join(extra)} in the url or drop the url", "url", *extra
            )
        completes = scheme in BACKENDS["redis"].schemes and urlsplit(url).password is None
        if "password" in given and not completes:
            raise PartsError("password can only complete a Redis url that has none", "url", "password")
        return
    if provider is None:
        unused = sorted(given - {"sqlite_path"})
        if unused:
            raise PartsError(f"{', '.join(unused)} need a provider ({', '.join(PARTS)})", *unused)
        return
    backend = BACKENDS[provider]
    if backend.build_url is None:
        raise PartsError(f"provider {provider!r} is configured by a url only", "provider", "url")
    foreign = sorted(given - backend.parts)
    if foreign:
        raise PartsError(f"{', '.join(foreign)} do not apply to provider {provider!r}", "provider", *foreign)
    missing = sorted(backend.required_parts - given)
    if missing:
        raise PartsError(f"provider {provider!r} needs a {', '.join(missing)}", "provider", *missing)
    if "ssl_cert_path" in given and parts.get("ssl_enabled") is not True:
        raise PartsError("ssl_cert_path needs ssl_enabled: true", "ssl_cert_path", "ssl_enabled")


def build_url(provider: str, parts: Mapping[str, Any]) -> str | None:
    """The storage URL for ``provider`` and its (checked) parts; ``None`` = the SQLite default.

    ``parts`` holds plain values (the password in clear): the result is secret-bearing.
    """
    build = BACKENDS[provider].build_url
    assert build is not None, "check_parts refuses a provider configured by url only"
    return build(parts)


def with_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` added to its user info (``url`` unchanged for ``None``)."""
    if password is None:
        return url
    split = urlsplit(url)
    user, _, hostinfo = split.netloc.rpartition("@")
    netloc = f"{user}:{quote(password, safe='')}@{hostinfo}"
    return urlunsplit(split._replace(netloc=netloc))

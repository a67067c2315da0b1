"""Connection parts -> storage URL: the plan's ``provider``/``host``/``port``/... spelling.

Every cache adapter is built from one URL (:func:`serverless_sessions.factory.open_cache`), so
the parts are only a friendlier way to write that URL. Each provider uses a fixed set of parts;
a part that does not apply, or a part next to a complete ``url``, is an error rather than being
ignored — the one exception is ``password`` beside a Redis URL without one, so the secret can
live in the environment while a file names the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

__all__ = [
    "CONNECTION_FIELDS",
    "PARTS",
    "PartsError",
    "build_url",
    "check_parts",
    "mask_url",
    "with_password",
]

# The parts each provider uses.
PARTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "memory": frozenset(),
        "sqlite": frozenset({"sqlite_path"}),
        "redis": frozenset(
            {"host", "port", "username", "password", "db", "ssl_enabled", "ssl_cert_path", "key_prefix"}
        ),
        "s3": frozenset({"bucket", "prefix", "region", "endpoint_url"}),
    }
)

# The URL schemes each provider may also be written as.
_SCHEMES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "memory": frozenset({"memory"}),
        "sqlite": frozenset({"sqlite"}),
        "redis": frozenset({"redis", "rediss", "redis+sentinel", "unix"}),
        "s3": frozenset({"s3"}),
    }
)

CONNECTION_FIELDS = frozenset({"url", "legacy_url", "provider"}.union(*PARTS.values()))
"""Settings that together say where sessions live (merged as a group, see ``config.layers``)."""


class PartsError(ValueError):
    """Connection settings that contradict each other; ``fields`` names them for the message."""

    def __init__(self, message: str, *fields: str) -> None:
        super().__init__(message)
        self.fields = fields


def mask_url(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***`` (safe for logs, reprs and errors)."""
    if not url:
        return url
    split = urlsplit(url)
    if split.password is None:
        return url
    user, _, hostinfo = split.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(split._replace(netloc=f"{name}:***@{hostinfo}"))


def _given(parts: Mapping[str, object]) -> set[str]:
    return {name for name, value in parts.items() if value is not None}


def check_parts(url: str | None, provider: str | None, parts: Mapping[str, object]) -> None:
    """Refuse parts that would be ignored or contradict ``url``/``provider`` (PartsError)."""
    given = _given(parts)
    if url is not None:
        scheme = urlsplit(url).scheme.lower()
        if provider is not None and scheme not in _SCHEMES[provider]:
            raise PartsError(
                f"provider {provider!r} contradicts the url scheme {scheme!r}", "provider", "url"
            )
        extra = sorted(given - {"password"})
        if extra:
            raise PartsError(
                f"a url is complete: put {', '.join(extra)} in the url or drop the url", "url", *extra
            )
        if "password" in given and (scheme not in _SCHEMES["redis"] or urlsplit(url).password is not None):
            raise PartsError("password can only complete a Redis url that has none", "url", "password")
        return
    if provider is None:
        unused = sorted(given - {"sqlite_path"})
        if unused:
            raise PartsError(f"{', '.join(unused)} need a provider ({', '.join(PARTS)})", *unused)
        return
    foreign = sorted(given - PARTS[provider])
    if foreign:
        raise PartsError(f"{', '.join(foreign)} do not apply to provider {provider!r}", "provider", *foreign)
    if provider == "s3" and "bucket" not in given:
        raise PartsError("provider 's3' needs a bucket", "provider", "bucket")
    if "ssl_cert_path" in given and parts.get("ssl_enabled") is not True:
        raise PartsError("ssl_cert_path needs ssl_enabled: true", "ssl_cert_path", "ssl_enabled")


def _redis_url(parts: Mapping[str, Any]) -> str:
    scheme = "rediss" if parts.get("ssl_enabled") else "redis"
    host = str(parts.get("host") or "localhost")
    host = f"[{host}]" if ":" in host else host
    user = quote(str(parts.get("username") or ""), safe="")
    password = parts.get("password")
    userinfo = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    options = {"ssl_ca_certs": parts.get("ssl_cert_path"), "key_prefix": parts.get("key_prefix")}
    query = urlencode({name: str(value) for name, value in options.items() if value is not None}, safe="/:")
    netloc = f"{userinfo}{host}:{parts.get('port') or 6379}"
    return urlunsplit((scheme, netloc, f"/{parts.get('db') or 0}", query, ""))


def _s3_url(parts: Mapping[str, Any]) -> str:
    prefix = quote(str(parts.get("prefix") or "").strip("/"))
    query = urlencode(
        {name: str(parts[name]) for name in ("region", "endpoint_url") if parts.get(name)}, safe="/:"
    )
    return urlunsplit(("s3", str(parts["bucket"]), f"/{prefix}", query, ""))


def build_url(provider: str, parts: Mapping[str, Any]) -> str | None:
    """The storage URL for ``provider`` and its (checked) parts; ``None`` = the SQLite default.

    ``parts`` holds plain values (the password in clear): the result is secret-bearing.
    """
    if provider == "memory":
        return "memory://"
    if provider == "sqlite":
        path = parts.get("sqlite_path")
        return None if path is None else "sqlite://" + quote(str(Path(path).absolute()))
    if provider == "redis":
        return _redis_url(parts)
    return _s3_url(parts)


def with_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` added to its user info (``url`` unchanged for ``None``)."""
    if password is None:
        return url
    split = urlsplit(url)
    user, _, hostinfo = split.netloc.rpartition("@")
    netloc = f"{user}:{quote(password, safe='')}@{hostinfo}"
    return urlunsplit(split._replace(netloc=netloc))

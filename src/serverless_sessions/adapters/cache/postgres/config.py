"""Settings of the PostgreSQL adapter, and the URLs that carry them.

Accepted URLs (the libpq shape)::

    postgresql://[user[:password]@]host[:port]/database[?query]
    postgres://...                                       the same

Query arguments: ``sslmode`` (``disable``, ``allow``, ``prefer`` — the default, as in libpq —,
``require``, ``verify-ca``, ``verify-full``), ``sslrootcert`` (CA file for the ``verify-*``
modes; without it they verify against the system's trust store), ``schema`` (where the
adapter's tables live, default ``serverless_sessions``), ``timeout`` (seconds bounding each
call, connecting included), ``pool_size`` (connections per cache) and ``statement_cache_size``
(0 for a PgBouncer older than 1.21 in transaction mode, which cannot keep prepared statements).

Every setting passes through ONE read-only table of parsers (:data:`_PARSERS`, read by the shared
:func:`~serverless_sessions.adapters.cache.urls.parse_query`), whether it comes
from a URL, a keyword override or a direct :class:`PostgresSettings` construction, so a bad value
is always refused the same way: a :class:`~serverless_sessions.errors.ConfigurationError` naming
the setting and the value. The password is a ``SecretStr`` (``'**********'`` in ``repr``) and
never reaches a message: errors and health reports use :meth:`PostgresSettings.describe`.
A missing user or password is left to the driver, which reads ``PGUSER``, ``PGPASSWORD`` and
``~/.pgpass`` as libpq does — the way to keep a password out of the URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from serverless_sessions.adapters.cache.urls import (
    Parser,
    check_fields,
    integer_in,
    mask_url,
    non_empty,
    optional_text,
    parse_query,
    replace_checked,
    seconds_in,
    secret,
)
from serverless_sessions.errors import ConfigurationError

__all__ = ["DEFAULT_SCHEMA", "SSL_MODES", "PostgresSettings", "parse_url"]

SCHEMES = ("postgresql", "postgres")
DEFAULT_SCHEMA = "serverless_sessions"
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# A lower-case identifier PostgreSQL needs no quotes for (at most 63 bytes); ``pg_`` is reserved.
_SCHEMA_RE = re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """Where and how to reach PostgreSQL; frozen, so a cache's settings never change under it."""

    host: str
    database: str
    port: int = 5432
    user: str | None = None
    password: SecretStr | None = None
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    schema: str = DEFAULT_SCHEMA
    timeout: float = 5.0
    pool_size: int = 10
    statement_cache_size: int = 100

    def __post_init__(self) -> None:
        check_fields(self, _PARSERS, what="postgres")

    def describe(self) -> str:
        """A password-free address for messages and reports, e.g. ``postgresql://u@h:5432/db``."""
        user = "" if self.user is None else f"{self.user}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{user}{host}:{self.port}/{self.database}?schema={self.schema}"

    def with_overrides(self, **overrides: object) -> PostgresSettings:
        """A copy with some settings replaced (each checked by its parser)."""
        return replace_checked(self, _PARSERS, overrides, what="postgres")


# -- parsers: each takes a raw value (a URL string or a typed value) and returns it checked ---


def _sslmode(value: object) -> str:
    if isinstance(value, str) and value in SSL_MODES:
        return value
    raise ValueError(f"expected one of {', '.join(SSL_MODES)}")


def _schema(value: object) -> str:
    if isinstance(value, str) and _SCHEMA_RE.fullmatch(value):
        return value
    raise ValueError("expected 1-63 characters of a-z 0-9 _, not starting with a digit or pg_")


# The one table: setting name -> parser. Read-only so no caller can loosen a check at run time.
_PARSERS: Mapping[str, Parser] = MappingProxyType(
    {
        "host": non_empty,
        "database": non_empty,
        "port": integer_in(1, 65535),
        "user": optional_text,
        "password": secret,
        "sslmode": _sslmode,
        "sslrootcert": optional_text,
        "schema": _schema,
        "timeout": seconds_in(600),
        "pool_size": integer_in(1, 1000),
        "statement_cache_size": integer_in(0, 10_000),
    }
)

# Settings a URL carries in its own syntax, never as query arguments (a password in a query
# string would end up in access logs).
_URL_PART_SETTINGS = frozenset({"host", "database", "port", "user", "password"})


# -- URLs ----------------------------------------------------------------------------------


def _host_and_port(hostinfo: str, url: str) -> dict[str, str]:
    """``host[:port]`` or ``[v6]:port`` -> raw settings."""
    host, port = hostinfo, ""
    if hostinfo.startswith("["):
        host, _, rest = hostinfo[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ConfigurationError(f"postgres URL {mask_url(url)!r} has a bad host {hostinfo!r}")
        port = rest[1:]
    elif ":" in hostinfo:
        host, _, port = hostinfo.rpartition(":")
    if not host:
        raise ConfigurationError(f"postgres URL {mask_url(url)!r} names no host; write postgresql://HOST/DB")
    return {"host": unquote(host), **({"port": port} if port else {})}


def parse_url(url: str, **overrides: object) -> PostgresSettings:
    """Settings from a ``postgresql://`` URL, then ``overrides`` (names of PostgresSettings).

    Other schemes, a missing host or database, fragments, unknown or repeated query arguments and
    bad values are refused with a ConfigurationError that never shows the password.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 address
        raise ConfigurationError(f"postgres URL {mask_url(url)!r} cannot be parsed: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigurationError(
            f"not a postgres URL: {mask_url(url)!r} (expected postgresql://[user[:password]@]host[:port]/db)"
        )
    if "@" in parts.path:
        # A "/" inside the password ended the host part early: the rest of it is in the path.
        raise ConfigurationError(
            "postgres URL has an '@' after its host part: percent-encode '/', '?', '#' and '@' "
            "in the user name and password (the URL is not shown: it may hold the password)"
        )
    if parts.fragment:
        raise ConfigurationError(f"postgres URL {mask_url(url)!r} has a fragment {parts.fragment!r}")
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    raw: dict[str, Any] = _host_and_port(hostinfo, url)
    if userinfo:
        user, has_password, password = userinfo.partition(":")
        raw["user"] = unquote(user) or None
        if has_password:
            raw["password"] = unquote(password)
    path = parts.path[1:]  # split before decoding: %2F is a slash inside the database name
    if not path or "/" in path:
        raise ConfigurationError(
            f"postgres URL {mask_url(url)!r} needs exactly one database name as its path, got {path!r}"
        )
    raw["database"] = unquote(path)
    where = str(mask_url(url))
    raw.update(parse_query(parts.query, _PARSERS, what="postgres", refused=_URL_PART_SETTINGS, where=where))
    return PostgresSettings(**raw).with_overrides(**overrides)

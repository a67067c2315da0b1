"""Settings of the Redis adapter, and the URLs that carry them.

Accepted URLs (the forms redis-py users already write)::

    redis://[[user]:password@]host[:port][/db][?query]
    rediss://...                               TLS; same shape
    unix://[[user]:password@]/path/to/socket[?db=N&...]
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/MASTER_NAME[/db][?query]

Every setting passes through ONE read-only table of parsers (:data:`_PARSERS`, read by the shared
:func:`~serverless_sessions.adapters.cache.urls.parse_query`), whether it comes from a URL
query, a keyword override or a direct :class:`RedisSettings` construction, so a bad
value is always refused the same way: a :class:`~serverless_sessions.errors.ConfigurationError`
naming the setting. The password is held as a ``SecretStr``: it shows as ``'**********'`` in
``repr``/``str`` and never reaches error messages or health reports (those use :meth:`describe`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from serverless_sessions.adapters.cache.urls import (
    Parser,
    boolean,
    check_fields,
    integer_in,
    non_empty,
    optional_text,
    parse_query,
    parse_setting,
    replace_checked,
    seconds_in,
    secret,
)
from serverless_sessions.errors import ConfigurationError, InvalidSessionIdError
from serverless_sessions.ids import validate_namespace

__all__ = ["RedisSettings", "parse_url"]

_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")
_DEFAULT_PORT = 6379
_DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where and how to reach Redis; frozen and hashable, so equal settings can share one pool.

    Modes: ``sentinels`` non-empty selects Sentinel (``service_name`` is the master's name),
    ``cluster=True`` selects Redis Cluster (``host:port`` is any node), ``unix_socket_path``
    a local socket; otherwise one server at ``host:port``. ``index_grace`` is how long index
    bookkeeping outlives its last member, so :meth:`purge_expired` can still find the index
    entries of keys Redis has already expired.
    """

    host: str = "localhost"
    port: int = _DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: SecretStr | None = None
    unix_socket_path: str | None = None
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str = "required"
    ssl_check_hostname: bool = True
    cluster: bool = False
    sentinels: tuple[tuple[str, int], ...] = ()
    service_name: str | None = None
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 2.0
    max_connections: int = 50
    retry_attempts: int = 2
    retry_backoff: float = 0.05
    retry_backoff_cap: float = 1.0
    sentinel_check_interval: float = 1.0
    key_prefix: str = "ss"
    index_grace: float = 3600.0

    def __post_init__(self) -> None:
        check_fields(self, _PARSERS, what="Redis")
        if self.sentinels and not self.service_name:
            raise ConfigurationError("Redis setting 'service_name' is required with sentinels")
        if self.sentinels and self.cluster:
            raise ConfigurationError("Redis settings 'sentinels' and 'cluster' exclude each other")
        if self.cluster and self.db != 0:
            raise ConfigurationError("Redis setting 'db' must be 0 with cluster=true")

    @property
    def call_timeout(self) -> float:
        """Seconds one adapter call may take in all: connecting, TLS, commands, retries, backoff.

        The larger of the two socket timeouts, so one connect or one command can always use its
        own whole timeout; retries only use what the failures before them left.
        """
        return max(self.socket_timeout, self.socket_connect_timeout)

    @property
    def mode(self) -> str:
        """``"sentinel"``, ``"cluster"`` or ``"standalone"``."""
        if self.sentinels:
            return "sentinel"
        return "cluster" if self.cluster else "standalone"

    def describe(self) -> str:
        """A secret-free address for messages and health reports, e.g. ``rediss://h:6380/0``."""
        if self.sentinels:
            hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"redis+sentinel://{hosts}/{self.service_name}/{self.db}"
        if self.unix_socket_path:
            return f"unix://{self.unix_socket_path}?db={self.db}"
        scheme = "rediss" if self.ssl else "redis"
        suffix = "?cluster=true" if self.cluster else ""
        return f"{scheme}://{self.host}:{self.port}/{self.db}{suffix}"

    def with_overrides(self, **overrides: object) -> RedisSettings:
        """A copy with some settings replaced (each checked by its parser)."""
        return replace_checked(self, _PARSERS, overrides, what="Redis")


# -- parsers: each takes a raw value (a URL string or a typed value) and returns it checked ---


def _cert_reqs(value: object) -> str:
    if isinstance(value, str) and value.lower() in ("none", "optional", "required"):
        return value.lower()
    raise ValueError("expected none, optional or required")


def _prefix(value: object) -> str:
    try:
        return validate_namespace(value)  # type: ignore[arg-type]
    except InvalidSessionIdError:
        raise ValueError("expected 1-64 characters of A-Z a-z 0-9 _ . -") from None


def _sentinels(value: object) -> tuple[tuple[str, int], ...]:
    checked_port = integer_in(1, 65535)
    if isinstance(value, tuple | list):
        pairs = [pair for pair in value if isinstance(pair, tuple | list) and len(pair) == 2]
        if len(pairs) == len(value):
            return tuple((non_empty(host), checked_port(port)) for host, port in pairs)
    raise ValueError("expected a sequence of (host, port) pairs")


# The one table: setting name -> parser. Read-only so no caller can loosen a check at run time.
_PARSERS: Mapping[str, Parser] = MappingProxyType(
    {
        "host": non_empty,
        "port": integer_in(1, 65535),
        "db": integer_in(0, 65535),
        "username": optional_text,
        "password": secret,
        "unix_socket_path": optional_text,
        "ssl": boolean,
        "ssl_ca_certs": optional_text,
        "ssl_certfile": optional_text,
        "ssl_keyfile": optional_text,
        "ssl_cert_reqs": _cert_reqs,
        "ssl_check_hostname": boolean,
        "cluster": boolean,
        "sentinels": _sentinels,
        "service_name": optional_text,
        "socket_timeout": seconds_in(300.0),
        "socket_connect_timeout": seconds_in(60.0),
        "max_connections": integer_in(1, 10_000),
        "retry_attempts": integer_in(0, 10),
        "retry_backoff": seconds_in(10.0, zero=True),
        "retry_backoff_cap": seconds_in(60.0, zero=True),
        "sentinel_check_interval": seconds_in(60.0, zero=True),
        "key_prefix": _prefix,
        "index_grace": seconds_in(30 * 86400.0, zero=True),
    }
)

# Settings a URL carries in its own syntax (authority and path), never as query arguments:
# a password in a query string would end up in access logs.
_URL_PART_SETTINGS = frozenset(
    {"host", "port", "username", "password", "unix_socket_path", "sentinels", "service_name"}
)


def _parse(name: str, value: object) -> Any:
    return parse_setting(_PARSERS, name, value, what="Redis")


# -- URLs ----------------------------------------------------------------------------------


def _split_host(item: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` -> ``(host, port)``."""
    host, port = item, str(default_port)
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else port
    elif ":" in item:
        host, _, port = item.rpartition(":")
    return unquote(host), _parse("port", port)


def parse_url(url: str, **overrides: object) -> RedisSettings:
    """Settings from a Redis URL, then ``overrides`` (same names as :class:`RedisSettings`).

    Unknown schemes, unknown or repeated query arguments and bad values are refused with a
    :class:`~serverless_sessions.errors.ConfigurationError` that never shows the password.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"not a Redis URL (scheme {scheme!r}); use one of {', '.join(s + '://' for s in _SCHEMES)}"
        )
    raw: dict[str, Any] = {"ssl": scheme == "rediss"}
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    if userinfo:
        user, has_password, password = userinfo.partition(":")
        raw["username"] = unquote(user) or None
        if has_password:
            raw["password"] = unquote(password)
    path = [unquote(piece) for piece in parts.path.split("/") if piece]
    if scheme == "unix":
        raw["unix_socket_path"] = unquote(parts.path)
    elif scheme == "redis+sentinel":
        raw["sentinels"] = tuple(
            _split_host(item, _DEFAULT_SENTINEL_PORT) for item in hostinfo.split(",") if item
        )
        if not path or len(path) > 2:
            raise ConfigurationError(
                "Redis Sentinel URL needs a master name: redis+sentinel://host:port/MASTER[/DB]"
            )
        raw["service_name"] = path[0]
        raw.update({"db": path[1]} if len(path) == 2 else {})
    else:
        if hostinfo:
            raw["host"], raw["port"] = _split_host(hostinfo, _DEFAULT_PORT)
        if len(path) > 1:
            raise ConfigurationError("Redis URL path must be at most one database number")
        raw.update({"db": path[0]} if path else {})
    query = parse_query(parts.query, _PARSERS, what="Redis", refused=_URL_PART_SETTINGS)
    twice = sorted(set(query) & set(raw) - {"ssl"})
    if twice:
        raise ConfigurationError(f"Redis URL parameter {twice[0]!r} is given by the path and the query")
    raw.update(query)
    return RedisSettings(**raw).with_overrides(**overrides)

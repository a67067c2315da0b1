"""Settings of the DynamoDB cache adapter and its ``dynamodb://TABLE?param=value`` URLs.

Query parameters go through one read-only table of parsers; an unknown parameter or a bad value is
a :class:`~serverless_sessions.errors.ConfigurationError` naming it. Credentials are refused in the
URL (URLs end up in logs): they come from arguments or botocore's standard chain (environment
variables, shared config files, container and instance roles).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import SecretStr

from serverless_sessions.errors import ConfigurationError

__all__ = ["QUERY_PARSERS", "DynamoDBSettings", "DynamoDBTimeouts", "parse_url"]

_TABLE_RE = re.compile(r"[A-Za-z0-9_.\-]{3,255}")


@dataclass(frozen=True, slots=True)
class DynamoDBTimeouts:
    """Connect and read timeouts (seconds) and botocore's total attempts per request.

    ``table_wait``: how long first use waits for a table being created to become ``ACTIVE``.
    """

    connect: float = 5.0
    read: float = 10.0
    max_attempts: int = 3
    table_wait: float = 300.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "table_wait"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
                raise ConfigurationError(f"DynamoDB timeout {name!r} must be > 0 seconds, got {value!r}")
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigurationError(f"DynamoDB max_attempts must be an integer >= 1, got {attempts!r}")


@dataclass(frozen=True, slots=True)
class DynamoDBSettings:
    """Which table, where, and how to reach it. Secrets are ``SecretStr``, masked in ``repr``.

    ``create_table``: create a missing table (keys, indexes, native TTL) on first use. ``None``
    decides by the endpoint: yes for a loopback emulator (moto, DynamoDB Local), no for AWS, where
    tables belong to infrastructure code and ``dynamodb:CreateTable`` to a deploy role.
    """

    table: str
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    timeouts: DynamoDBTimeouts = field(default_factory=DynamoDBTimeouts)
    create_table: bool | None = None
    max_pool_connections: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.table, str) or not _TABLE_RE.fullmatch(self.table):
            raise ConfigurationError(
                f"DynamoDB table name {self.table!r} is not valid (3-255 characters of A-Z a-z 0-9 _ . -)"
            )
        if self.region is not None and not re.fullmatch(r"[a-z0-9\-]{1,64}", self.region):
            raise ConfigurationError(f"DynamoDB region {self.region!r} is not a region name")
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(
                    f"DynamoDB endpoint_url must be an http(s) URL with a host, got {self.endpoint_url!r}"
                )
            if parts.username or parts.password:
                raise ConfigurationError(
                    "DynamoDB endpoint_url must not carry credentials; pass access_key_id and "
                    "secret_access_key or use the AWS environment variables"
                )
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigurationError(
                "DynamoDB access_key_id and secret_access_key must be given together (or neither)"
            )
        if self.create_table is not None and not isinstance(self.create_table, bool):
            raise ConfigurationError(
                f"DynamoDB create_table must be true or false, got {self.create_table!r}"
            )
        if self.max_pool_connections < 1:
            raise ConfigurationError("DynamoDB max_pool_connections must be >= 1")

    @property
    def may_create_table(self) -> bool:
        """Whether first use creates a missing table (see ``create_table``)."""
        return self.create_table if self.create_table is not None else self.loopback

    @property
    def loopback(self) -> bool:
        """Whether the endpoint is this machine (an emulator), never AWS itself."""
        host = urlsplit(self.endpoint_url).hostname if self.endpoint_url else None
        if host is None:
            return False
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def public(self) -> dict[str, Any]:
        """JSON-safe facts for health and stats output: no credentials, only their source."""
        return {
            "table": self.table,
            "region": self.region,
            "endpoint": self.endpoint_url,
            "credentials": "explicit" if self.access_key_id is not None else "default chain",
        }


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError("must be a positive number")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError("must be true or false")


def _non_empty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


QUERY_PARSERS: Mapping[str, Callable[[str], Any]] = MappingProxyType(
    {
        "region": _non_empty,
        "endpoint_url": _non_empty,
        "create_table": _boolean,
        "connect_timeout": _positive_float,
        "read_timeout": _positive_float,
        "max_attempts": _positive_int,
        "table_wait": _positive_float,
    }
)
"""``dynamodb://`` URL query parameters and how each is parsed (read-only)."""
_TIMEOUT_PARAMS = MappingProxyType(
    {
        "connect_timeout": "connect",
        "read_timeout": "read",
        "max_attempts": "max_attempts",
        "table_wait": "table_wait",
    }
)


def parse_url(url: str) -> dict[str, Any]:
    """Constructor arguments from ``dynamodb://TABLE?param=value&...``; errors name the part."""
    parts = urlsplit(url)
    if parts.scheme != "dynamodb":
        raise ConfigurationError(f"DynamoDB URL must start with dynamodb://, got scheme {parts.scheme!r}")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise ConfigurationError(
            "DynamoDB URL must not carry credentials or a port; use the AWS environment variables "
            "or access_key_id/secret_access_key arguments, and ?endpoint_url=... for a server"
        )
    if parts.path not in ("", "/"):
        raise ConfigurationError(
            f"DynamoDB URL must name only a table (dynamodb://TABLE), got a path {parts.path!r}"
        )
    if parts.fragment:
        raise ConfigurationError("DynamoDB URL must not have a #fragment")
    kwargs: dict[str, Any] = {"table": parts.netloc}
    timeouts: dict[str, Any] = {}
    seen: set[str] = set()
    for name, raw in parse_qsl(parts.query, keep_blank_values=True):
        parser = QUERY_PARSERS.get(name)
        if parser is None:
            raise ConfigurationError(
                f"unknown DynamoDB URL query parameter {name!r}; known: {', '.join(QUERY_PARSERS)}"
            )
        if name in seen:
            raise ConfigurationError(f"DynamoDB URL query parameter {name!r} is given twice")
        seen.add(name)
        try:
            value = parser(raw)
        except ValueError as exc:
            raise ConfigurationError(
                f"DynamoDB URL query parameter {name!r} has a bad value {raw!r}: {exc}"
            ) from exc
        if name in _TIMEOUT_PARAMS:
            timeouts[_TIMEOUT_PARAMS[name]] = value
        else:
            kwargs[name] = value
    if timeouts:
        kwargs["timeouts"] = DynamoDBTimeouts(**timeouts)
    return kwargs

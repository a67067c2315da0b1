"""Settings of the DynamoDB cache adapter and its ``dynamodb://TABLE?param=value`` URLs.

What every AWS adapter shares (region, endpoint, credentials, timeouts, the URL checks) is in
:mod:`serverless_sessions.adapters.cache.aws`; query parameters go through its table on the shared
:func:`~serverless_sessions.adapters.cache.urls.parse_query`, so an unknown parameter or a bad
value is a :class:`~serverless_sessions.errors.ConfigurationError` naming it. Credentials are
refused in the URL (URLs end up in logs).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import urlsplit

from serverless_sessions.adapters.cache.aws import (
    AWSSettings,
    AWSTimeouts,
    parse_url_query,
    query_parsers,
    split_url,
)
from serverless_sessions.adapters.cache.urls import Parser, boolean, positive_float
from serverless_sessions.errors import ConfigurationError

__all__ = ["QUERY_PARSERS", "DynamoDBSettings", "DynamoDBTimeouts", "parse_url"]

_TABLE_RE = re.compile(r"[A-Za-z0-9_.\-]{3,255}")


@dataclass(frozen=True, slots=True)
class DynamoDBTimeouts(AWSTimeouts):
    """The AWS timeouts, and how long first use waits for a new table to become ``ACTIVE``."""

    PARSERS: ClassVar[Mapping[str, Parser]] = MappingProxyType(
        {**AWSTimeouts.PARSERS, "table_wait": positive_float}
    )

    table_wait: float = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamoDBSettings(AWSSettings):
    """Which table, and how to reach it: :class:`~serverless_sessions.adapters.cache.aws.AWSSettings`.

    ``create_table``: create a missing table (keys, indexes, native TTL) on first use. ``None``
    decides by the endpoint: yes for a loopback emulator (moto, DynamoDB Local), no for AWS, where
    tables belong to infrastructure code and ``dynamodb:CreateTable`` to a deploy role.
    """

    WHAT: ClassVar[str] = "DynamoDB"

    table: str
    timeouts: DynamoDBTimeouts = field(default_factory=DynamoDBTimeouts)
    create_table: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.table, str) or not _TABLE_RE.fullmatch(self.table):
            raise ConfigurationError(
                f"DynamoDB table name {self.table!r} is not valid (3-255 characters of A-Z a-z 0-9 _ . -)"
            )
        AWSSettings.__post_init__(self)
        if self.create_table is not None and not isinstance(self.create_table, bool):
            raise ConfigurationError(
                f"DynamoDB create_table must be true or false, got {self.create_table!r}"
            )

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
        return {"table": self.table, **AWSSettings.public(self)}


QUERY_PARSERS = query_parsers(DynamoDBTimeouts, create_table=boolean)
"""``dynamodb://`` URL query parameters and how each is parsed (read-only)."""


def parse_url(url: str) -> dict[str, Any]:
    """Constructor arguments from ``dynamodb://TABLE?param=value&...``; errors name the part."""
    parts = split_url(url, "dynamodb", what="DynamoDB")
    if parts.path not in ("", "/"):
        raise ConfigurationError(
            f"DynamoDB URL must name only a table (dynamodb://TABLE), got a path {parts.path!r}"
        )
    query = parse_url_query(parts.query, QUERY_PARSERS, what="DynamoDB", timeouts=DynamoDBTimeouts)
    return {"table": parts.netloc, **query}

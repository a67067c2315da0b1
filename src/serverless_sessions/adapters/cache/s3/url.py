"""``s3://bucket/prefix?param=value`` URLs for the S3 cache adapter.

Query parameters go through one read-only table of parsers (read by the shared
:func:`~serverless_sessions.adapters.cache.urls.parse_query`); an unknown parameter or a bad value
is a :class:`~serverless_sessions.errors.ConfigurationError` naming it. Credentials are refused in
the URL (URLs end up in logs): they come from arguments or the standard AWS variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

from serverless_sessions.adapters.cache.s3.bucket import S3Timeouts
from serverless_sessions.adapters.cache.urls import (
    Parser,
    non_empty,
    parse_query,
    positive_float,
    positive_int,
)
from serverless_sessions.errors import ConfigurationError

__all__ = ["QUERY_PARSERS", "parse_url"]


def _addressing_style(text: object) -> str:
    if not isinstance(text, str) or text not in ("auto", "path", "virtual"):
        raise ValueError("must be auto, path or virtual")
    return text


QUERY_PARSERS: Mapping[str, Parser] = MappingProxyType(
    {
        "endpoint_url": non_empty,
        "region": non_empty,
        "addressing_style": _addressing_style,
        "connect_timeout": positive_float,
        "read_timeout": positive_float,
        "max_attempts": positive_int,
    }
)
"""``s3://`` URL query parameters and how each is parsed (read-only)."""
_TIMEOUT_PARAMS = MappingProxyType(
    {"connect_timeout": "connect", "read_timeout": "read", "max_attempts": "max_attempts"}
)


def parse_url(url: str) -> dict[str, Any]:
    """Constructor arguments from ``s3://bucket/prefix?param=value&...``; errors name the part."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ConfigurationError(f"S3 URL must start with s3://, got scheme {parts.scheme!r}")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise ConfigurationError(
            "S3 URL must not carry credentials or a port; use the AWS environment variables "
            "or access_key_id/secret_access_key arguments, and ?endpoint_url=... for a server"
        )
    if parts.fragment:
        raise ConfigurationError("S3 URL must not have a #fragment")
    kwargs: dict[str, Any] = {"bucket": parts.netloc, "prefix": unquote(parts.path)}
    timeouts: dict[str, Any] = {}
    for name, value in parse_query(parts.query, QUERY_PARSERS, what="S3").items():
        if name in _TIMEOUT_PARAMS:
            timeouts[_TIMEOUT_PARAMS[name]] = value
        else:
            kwargs[name] = value
    if timeouts:
        kwargs["timeouts"] = S3Timeouts(**timeouts)
    return kwargs

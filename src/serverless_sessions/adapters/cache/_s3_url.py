"""``s3://bucket/prefix?param=value`` URLs for the S3 cache adapter.

Query parameters go through one read-only table of parsers; an unknown parameter or a bad value
is a :class:`~serverless_sessions.errors.ConfigurationError` naming it. Credentials are refused in
the URL (URLs end up in logs): they come from arguments or the standard AWS variables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from serverless_sessions.adapters.cache._s3_bucket import S3Timeouts
from serverless_sessions.errors import ConfigurationError

__all__ = ["QUERY_PARSERS", "parse_url"]


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def _addressing_style(text: str) -> str:
    if text not in ("auto", "path", "virtual"):
        raise ValueError("must be auto, path or virtual")
    return text


def _non_empty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


QUERY_PARSERS: Mapping[str, Callable[[str], Any]] = MappingProxyType(
    {
        "endpoint_url": _non_empty,
        "region": _non_empty,
        "addressing_style": _addressing_style,
        "connect_timeout": _positive_float,
        "read_timeout": _positive_float,
        "max_attempts": _positive_int,
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
    seen: set[str] = set()
    for name, raw in parse_qsl(parts.query, keep_blank_values=True):
        parser = QUERY_PARSERS.get(name)
        if parser is None:
            raise ConfigurationError(
                f"unknown S3 URL query parameter {name!r}; known: {', '.join(QUERY_PARSERS)}"
            )
        if name in seen:
            raise ConfigurationError(f"S3 URL query parameter {name!r} is given twice")
        seen.add(name)
        try:
            value = parser(raw)
        except ValueError as exc:
            raise ConfigurationError(
                f"S3 URL query parameter {name!r} has a bad value {raw!r}: {exc}"
            ) from exc
        if name in _TIMEOUT_PARAMS:
            timeouts[_TIMEOUT_PARAMS[name]] = value
        else:
            kwargs[name] = value
    if timeouts:
        kwargs["timeouts"] = S3Timeouts(**timeouts)
    return kwargs

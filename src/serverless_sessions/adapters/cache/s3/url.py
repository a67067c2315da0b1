"""``s3://bucket/prefix?param=value`` URLs for the S3 cache adapter.

What every AWS adapter's URL shares (region, endpoint, timeouts, refusing credentials and ports)
is in :mod:`serverless_sessions.adapters.cache.aws`; query parameters go through its table on the
shared :func:`~serverless_sessions.adapters.cache.urls.parse_query`, so an unknown parameter or a
bad value is a :class:`~serverless_sessions.errors.ConfigurationError` naming it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from serverless_sessions.adapters.cache.aws import AWSTimeouts, parse_url_query, query_parsers, split_url

__all__ = ["QUERY_PARSERS", "parse_url"]


def _addressing_style(text: object) -> str:
    if not isinstance(text, str) or text not in ("auto", "path", "virtual"):
        raise ValueError("must be auto, path or virtual")
    return text


QUERY_PARSERS = query_parsers(AWSTimeouts, addressing_style=_addressing_style)
"""``s3://`` URL query parameters and how each is parsed (read-only)."""


def parse_url(url: str) -> dict[str, Any]:
    """Constructor arguments from ``s3://bucket/prefix?param=value&...``; errors name the part."""
    parts = split_url(url, "s3", what="S3")
    query = parse_url_query(parts.query, QUERY_PARSERS, what="S3", timeouts=AWSTimeouts)
    return {"bucket": parts.netloc, "prefix": unquote(parts.path), **query}

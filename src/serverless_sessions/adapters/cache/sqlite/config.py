"""Settings of the SQLite adapter: default location, timeout, and ``sqlite:///`` URLs.

Every refusal is a :class:`~serverless_sessions.errors.ConfigurationError` naming the bad value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote, urlsplit

import platformdirs

from serverless_sessions.adapters.cache.urls import Parser, parse_query, positive_float
from serverless_sessions.errors import ConfigurationError

__all__ = ["DEFAULT_TIMEOUT", "checked_path", "checked_timeout", "default_path", "parse_url"]

DEFAULT_TIMEOUT = 5.0
"""Seconds a write waits for another process's write lock before failing."""


def default_path() -> Path:
    """The default database file: ``sessions.db`` in the user's data directory."""
    return Path(platformdirs.user_data_dir("serverless-sessions")) / "sessions.db"


def checked_path(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute now, so a later ``chdir`` cannot move the database."""
    raw = os.fspath(path)
    if raw in ("", ":memory:"):
        # ":memory:" would be a private per-connection database, useless to other processes.
        raise ConfigurationError(
            f"sqlite path {raw!r} names no file; give a file path "
            "(or use the memory adapter for an in-process cache)"
        )
    return Path(raw).absolute()


def checked_timeout(value: object) -> float:
    """``value`` as seconds if it is a positive, finite number (not text: that is the URL's job)."""
    try:
        if isinstance(value, str):
            raise ValueError("text")
        return positive_float(value)
    except ValueError:
        raise ConfigurationError(
            f"sqlite timeout must be a positive number of seconds, got {value!r}"
        ) from None


# Query parameters a sqlite URL may carry, each with its parser; anything else is refused.
_QUERY_PARSERS: Mapping[str, Parser] = MappingProxyType({"timeout": positive_float})


def parse_url(url: str) -> tuple[str, float]:
    """``(absolute path, timeout)`` from ``sqlite:///absolute/path.db[?timeout=SECONDS]``.

    Relative or empty paths, hosts, fragments and unknown or repeated query parameters are
    refused; the path is percent-decoded.
    """
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ConfigurationError(f"not a sqlite URL: {url!r} (expected sqlite:///path.db)")
    if parts.netloc:
        raise ConfigurationError(
            f"sqlite URL {url!r} has a host part {parts.netloc!r}; "
            "write sqlite:///absolute/path.db (three slashes)"
        )
    if parts.fragment:
        raise ConfigurationError(f"sqlite URL {url!r} has a fragment {parts.fragment!r}")
    path = unquote(parts.path)
    if not path.startswith("/") or path.endswith("/"):
        raise ConfigurationError(f"sqlite URL {url!r} needs an absolute file path, got {path!r}")
    settings = parse_query(parts.query, _QUERY_PARSERS, what="sqlite", where=url)
    return path, settings.get("timeout", DEFAULT_TIMEOUT)

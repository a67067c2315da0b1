"""SQLite cache adapter: the embedded default, one file shared by processes on one host.

``sqlite:///absolute/path.db[?timeout=SECONDS]`` (:mod:`.config`). The design is in :mod:`.cache`;
:mod:`.store` holds the synchronous transactions its worker thread runs.
"""

from __future__ import annotations

from serverless_sessions.adapters.cache.sqlite.cache import Cache
from serverless_sessions.adapters.cache.sqlite.config import DEFAULT_TIMEOUT, default_path, parse_url
from serverless_sessions.adapters.cache.sqlite.errors import translate_error

__all__ = ["DEFAULT_TIMEOUT", "Cache", "default_path", "parse_url", "translate_error"]

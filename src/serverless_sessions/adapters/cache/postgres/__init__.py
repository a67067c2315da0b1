"""PostgreSQL cache adapter: ``postgresql://[user[:password]@]host[:port]/db[?query]``.

Importing this package does not import the driver (asyncpg); building a :class:`Cache` does, and
a missing driver is a :class:`~serverless_sessions.errors.MissingDependencyError` naming the
``postgres`` extra. See :mod:`.cache` for the design, :mod:`.config` for the URL, :mod:`.schema`
for the tables and their versioned migrations.
"""

from __future__ import annotations

from serverless_sessions.adapters.cache.postgres.cache import Cache
from serverless_sessions.adapters.cache.postgres.config import DEFAULT_SCHEMA, PostgresSettings, parse_url
from serverless_sessions.adapters.cache.postgres.schema import SCHEMA_VERSION

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "Cache", "PostgresSettings", "parse_url"]

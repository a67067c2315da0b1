"""Redis cache adapter: one server, Sentinel or Cluster (extra ``redis``).

``redis://``, ``rediss://``, ``unix://`` and ``redis+sentinel://`` URLs (:mod:`.config`). The
design is in :mod:`.cache`; :mod:`.scripts` holds the key layout and the script runner,
:mod:`.lua` the scripts, :mod:`.log` the message log, :mod:`.cluster` the one-key-per-script
cluster path, :mod:`.client` the shared pools, :mod:`.errors` the error translation (shared with
the legacy ``RedisStorage``) and retries, :mod:`.health` the server report.
"""

from __future__ import annotations

from serverless_sessions.adapters.cache.redis.cache import Cache
from serverless_sessions.adapters.cache.redis.config import RedisSettings, parse_url
from serverless_sessions.adapters.cache.redis.errors import BACKEND_ERRORS, translate

__all__ = ["BACKEND_ERRORS", "Cache", "RedisSettings", "parse_url", "translate"]

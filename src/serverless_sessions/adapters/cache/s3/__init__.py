"""S3 cache adapter: one object per key, expiry and version in its metadata (extra ``s3``).

``s3://bucket/prefix?param=value`` (:mod:`.url`). The design is in :mod:`.cache`; :mod:`.layout`
names the objects, :mod:`.bucket` talks to the server (the legacy ``S3Storage`` shares it).
"""

from __future__ import annotations

from serverless_sessions.adapters.cache.s3.bucket import ObjectInfo, S3Bucket, S3Settings, S3Timeouts
from serverless_sessions.adapters.cache.s3.cache import Cache
from serverless_sessions.adapters.cache.s3.url import parse_url

__all__ = ["Cache", "ObjectInfo", "S3Bucket", "S3Settings", "S3Timeouts", "parse_url"]

"""DynamoDB cache adapter (extra ``s3``, which brings aiobotocore).

``dynamodb://TABLE?region=...&endpoint_url=...`` — one table holds every namespace; the key
design is described in :mod:`.layout`, costs and guarantees in :mod:`.cache` (writes in
:mod:`.writes`, the message log and its bounds in :mod:`.log`, listings in :mod:`.listing`), the
table's definition and first-use creation in :mod:`.table`.
"""

from __future__ import annotations

from serverless_sessions.adapters.cache.dynamodb.cache import Cache
from serverless_sessions.adapters.cache.dynamodb.config import DynamoDBSettings, DynamoDBTimeouts, parse_url
from serverless_sessions.adapters.cache.dynamodb.table import table_definition

__all__ = ["Cache", "DynamoDBSettings", "DynamoDBTimeouts", "parse_url", "table_definition"]

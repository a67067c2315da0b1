"""The table the DynamoDB adapter needs: its definition, the check of an existing one, creation.

First use calls :func:`ensure_table`: ``DescribeTable``; a table that exists must have the keys
and the two listing indexes of :mod:`.layout` (else a
:class:`~serverless_sessions.errors.ConfigurationError` lists what differs); a table still being
created is waited for. A missing table is created only when allowed (``create_table``): on-demand
billing, the keys and indexes of :func:`table_definition`, then native TTL on the ``ttl``
attribute. Two processes creating it at once are fine: the loser waits for the winner's table.
Native TTL is only an optimisation (reads filter expired items and ``purge_expired`` removes
them), so a role that may create tables but not ``UpdateTimeToLive`` gets a warning, not an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from serverless_sessions.adapters.cache.dynamodb.errors import error_code
from serverless_sessions.adapters.cache.dynamodb.layout import BY_EXPIRY, BY_KEY
from serverless_sessions.errors import ConfigurationError, StorageError, StorageUnavailableError

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient

__all__ = ["TTL_ATTRIBUTE", "check_description", "ensure_table", "table_definition"]

logger = logging.getLogger(__name__)

TTL_ATTRIBUTE = "ttl"
_POLL = 0.5
_KEYS = (("pk", "HASH"), ("sk", "RANGE"))
# index name -> (key schema, attributes it must project)
_INDEXES: Mapping[str, tuple[tuple[tuple[str, str], ...], frozenset[str]]] = {
    BY_KEY: ((("gp", "HASH"), ("k", "RANGE")), frozenset({"exp"})),
    BY_EXPIRY: ((("gp", "HASH"), ("exp", "RANGE")), frozenset({"k", "idx"})),
}
_TYPES = {"pk": "S", "sk": "S", "gp": "S", "k": "S", "exp": "N"}


def _schema(keys: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"AttributeName": name, "KeyType": kind} for name, kind in keys]


def table_definition(name: str) -> dict[str, Any]:
    """``CreateTable`` arguments for a table named ``name`` (also what the README documents)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": t} for a, t in _TYPES.items()],
        "KeySchema": _schema(_KEYS),
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": _schema(keys),
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": sorted(projected)},
            }
            for index, (keys, projected) in _INDEXES.items()
        ],
    }


def check_description(table: Mapping[str, Any]) -> list[str]:
    """What an existing table (``DescribeTable``'s ``Table``) lacks; empty if it fits."""
    problems: list[str] = []

    def keys_of(schema: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple((key["AttributeName"], key["KeyType"]) for key in schema)

    if keys_of(table.get("KeySchema", [])) != _KEYS:
        problems.append(f"key schema must be {_KEYS}, is {keys_of(table.get('KeySchema', []))}")
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    found = {index["IndexName"]: index for index in table.get("GlobalSecondaryIndexes", [])}
    for name, (keys, projected) in _INDEXES.items():
        index = found.get(name)
        if index is None:
            problems.append(f"global secondary index {name!r} is missing")
            continue
        if keys_of(index.get("KeySchema", [])) != keys:
            problems.append(f"index {name!r} must have keys {keys}")
        projection = index.get("Projection", {})
        kind = projection.get("ProjectionType")
        if kind != "ALL" and not (
            kind == "INCLUDE" and projected <= set(projection.get("NonKeyAttributes", []))
        ):
            problems.append(f"index {name!r} must project {sorted(projected)}")
    for attribute, kind in _TYPES.items():
        if types.get(attribute, kind) != kind:
            problems.append(f"attribute {attribute!r} must be of type {kind}")
    return problems


async def _describe(client: DynamoDBClient, name: str) -> Mapping[str, Any] | None:
    try:
        response = await client.describe_table(TableName=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return response["Table"]


async def _wait_active(client: DynamoDBClient, name: str, wait: float) -> Mapping[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        table = await _describe(client, name)
        status = None if table is None else table.get("TableStatus")
        if table is not None and status == "ACTIVE":
            return table
        if status in ("DELETING", "ARCHIVING", "ARCHIVED", "INACCESSIBLE_ENCRYPTION_CREDENTIALS"):
            raise StorageError(f"dynamodb table {name!r} is {status}")
        if time.monotonic() >= deadline:
            raise StorageUnavailableError(
                f"dynamodb table {name!r} not ACTIVE after {wait} s (status {status})"
            )
        await asyncio.sleep(_POLL)


async def _create(client: DynamoDBClient, name: str) -> bool:
    """Create the table; ``False`` if another process is creating it already."""
    try:
        await client.create_table(**table_definition(name))
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
        return False
    return True


async def _enable_ttl(client: DynamoDBClient, name: str) -> None:
    try:
        await client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
    except ClientError as exc:
        if error_code(exc) not in ("AccessDeniedException", "ValidationException"):
            raise
        logger.warning(
            "dynamodb table %r created without native TTL (%s); expired items are still invisible "
            "and removed by purge_expired, but enable TTL on attribute %r to have AWS delete them",
            name,
            error_code(exc),
            TTL_ATTRIBUTE,
        )


async def ensure_table(client: DynamoDBClient, name: str, *, create: bool, wait: float) -> Mapping[str, Any]:
    """The ``ACTIVE`` table's description, creating the table first if missing and ``create``."""
    table = await _describe(client, name)
    created = False
    if table is None:
        if not create:
            raise StorageError(
                f"dynamodb table {name!r} does not exist; create it (see the README for its keys, "
                "indexes and TTL) or allow the adapter to with ?create_table=true"
            )
        created = await _create(client, name)
    if table is None or table.get("TableStatus") != "ACTIVE":
        table = await _wait_active(client, name, wait)
    if created:
        await _enable_ttl(client, name)  # needs an ACTIVE table
    problems = check_description(table)
    if problems:
        raise ConfigurationError(f"dynamodb table {name!r} does not fit this adapter: {'; '.join(problems)}")
    return table

"""One DynamoDB table seen through aiobotocore: client lifecycle, error boundary, item operations.

* The client is created on first use (and the table checked or created, :mod:`.table`) and
  closed by :meth:`Connection.close` — only if this object created it; an injected client
  belongs to whoever injected it.
* Timeouts and retries are botocore's: ``connect``/``read`` timeouts per attempt and
  ``max_attempts`` in its "standard" mode, which retries throttling, 5xx and connection errors
  with jittered backoff. So an unreachable endpoint fails within about
  ``max_attempts`` times ``connect`` seconds.
* Every botocore exception raised inside :meth:`Connection.errors` is translated
  (:mod:`.errors`). Conditional writes return ``False`` when their condition failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from serverless_sessions.adapters.cache.aws import ClientHolder, session
from serverless_sessions.adapters.cache.base import gather_bounded
from serverless_sessions.adapters.cache.dynamodb.actions import Action
from serverless_sessions.adapters.cache.dynamodb.config import DynamoDBSettings
from serverless_sessions.adapters.cache.dynamodb.errors import lost_condition, translate_error
from serverless_sessions.adapters.cache.dynamodb.table import ensure_table
from serverless_sessions.errors import SessionError, StorageUnavailableError

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient

__all__ = ["Connection"]

_BATCH_GET = 100
_BATCH_WRITE = 25
_UNPROCESSED_ROUNDS = 8


class Connection(ClientHolder["DynamoDBClient"]):
    """Item operations on one table, each inside the error boundary."""

    def __init__(
        self, settings: DynamoDBSettings, *, backend: str, client: DynamoDBClient | None = None
    ) -> None:
        super().__init__(backend=backend, client=client, checked=False, resource=f"table {settings.table!r}")
        self.settings = settings

    @property
    def table(self) -> str:
        """The table name."""
        return self.settings.table

    def _translate(self, exc: BotoCoreError | ClientError, operation: str, key: str | None) -> SessionError:
        return translate_error(exc, backend=self.backend, operation=operation, table=self.table, key=key)

    async def ensure_table(self, *, create: bool) -> Mapping[str, Any]:
        """Check the table, creating it first if missing and ``create``; its description."""
        async with self._lock:
            return await self._ensure(await self._connect(), create)

    async def _check(self, client: DynamoDBClient) -> None:
        await self._ensure(client, self.settings.may_create_table)

    async def _ensure(self, client: DynamoDBClient, create: bool) -> Mapping[str, Any]:
        with self.errors("check table", None):
            described = await ensure_table(
                client, self.table, create=create, wait=self.settings.timeouts.table_wait
            )
        self._checked = True
        return described

    def _create(self) -> contextlib.AbstractAsyncContextManager[DynamoDBClient]:
        return session().create_client("dynamodb", **self.settings.client_arguments())

    async def ping(self) -> float:
        """Seconds for one ``GetItem`` of an item that never exists."""
        client = await self.client()
        started = time.perf_counter()
        with self.errors("ping", None):
            await client.get_item(TableName=self.table, Key={"pk": {"S": "ping"}, "sk": {"S": "-"}})
        return time.perf_counter() - started

    async def get(
        self, pk: str, sk: str, *, key: str, attributes: Sequence[str] = ()
    ) -> dict[str, Any] | None:
        """The item (or only ``attributes`` of it), strongly consistent; ``None`` if absent."""
        client = await self.client()
        with self.errors("get", key):
            response = await client.get_item(
                TableName=self.table, Key=_key(pk, sk), ConsistentRead=True, **_projection(attributes)
            )
        item = response.get("Item")
        return None if item is None else dict(item)

    async def get_many(self, keys: Sequence[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """Items by partition key (absent ones left out), 100 per ``BatchGetItem``, consistent.

        Unprocessed keys (throttling) are asked again with backoff, a bounded number of rounds.
        """
        client = await self.client()
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))

        async def batch_get(pending: list[Any]) -> list[Any]:
            with self.errors("batch get", None):
                response = await client.batch_get_item(
                    RequestItems={self.table: {"Keys": pending, "ConsistentRead": True}}
                )
            for item in response.get("Responses", {}).get(self.table, []):
                found[str(item["pk"]["S"])] = dict(item)
            unprocessed = response.get("UnprocessedKeys", {}).get(self.table)
            return list(unprocessed["Keys"]) if unprocessed else []

        for start in range(0, len(unique), _BATCH_GET):
            await self._until_processed(
                "batch get", batch_get, [_key(pk, sk) for pk, sk in unique[start : start + _BATCH_GET]]
            )
        return found

    async def write_many(
        self, puts: Sequence[dict[str, Any]] = (), deletes: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Put ``puts`` and delete the items at ``deletes``, 25 per ``BatchWriteItem``.

        Not atomic, and unconditional: for items no reader sees (a log being staged, or one no
        longer named by its data item). Batches go out concurrently (up to the pool's size);
        unprocessed requests are sent again like in :meth:`get_many`.
        """
        client = await self.client()
        requests: list[Any] = [{"PutRequest": {"Item": item}} for item in puts]
        requests += [{"DeleteRequest": {"Key": _key(pk, sk)}} for pk, sk in deletes]

        async def batch_write(pending: list[Any]) -> list[Any]:
            with self.errors("batch write", None):
                response = await client.batch_write_item(RequestItems={self.table: pending})
            return list(response.get("UnprocessedItems", {}).get(self.table, []))

        calls = [
            partial(self._until_processed, "batch write", batch_write, requests[start : start + _BATCH_WRITE])
            for start in range(0, len(requests), _BATCH_WRITE)
        ]
        await gather_bounded(calls, self.settings.max_pool_connections)

    async def _until_processed(
        self, operation: str, send: Callable[[list[Any]], Awaitable[list[Any]]], pending: list[Any]
    ) -> None:
        """Send ``pending`` until the service processed all of it, with backoff, bounded."""
        for attempt in range(_UNPROCESSED_ROUNDS):
            pending = await send(pending)
            if not pending:
                return
            await asyncio.sleep(0.05 * 2**attempt)
        raise StorageUnavailableError(
            f"{self.backend} {operation} failed (table {self.table!r}): {len(pending)} requests "
            f"still unprocessed after {_UNPROCESSED_ROUNDS} rounds (throttled)"
        )

    async def update(self, pk: str, sk: str, *, key: str, **params: Any) -> bool:
        """One conditional ``UpdateItem``; ``False`` when its condition failed."""
        client = await self.client()
        with self.errors("update", key):
            try:
                await client.update_item(TableName=self.table, Key=_key(pk, sk), **params)
            except ClientError as exc:
                if lost_condition(exc):
                    return False
                raise
        return True

    async def commit(
        self, primary: Action, others: Sequence[Action] = (), *, key: str, certain: bool = False
    ) -> bool:
        """Apply ``primary`` (a conditional put or delete) and ``others`` all or nothing.

        Alone, ``primary`` is one ``PutItem``/``DeleteItem``; with others, one
        ``TransactWriteItems``. ``False``: a condition failed or a concurrent transaction won.
        ``certain``: a transaction even alone, so ``False`` is never our own write seen again —
        botocore resends a transaction whose answer was lost with the same client token, which
        DynamoDB recognises, whereas a resent ``PutItem`` fails its condition on its own work.
        """
        client = await self.client()
        ((kind, params),) = primary.items()
        with self.errors("write" if kind == "Put" else "delete", key):
            try:
                if others or certain:
                    await client.transact_write_items(TransactItems=[primary, *others])  # type: ignore[list-item]
                elif kind == "Put":
                    await client.put_item(**params)
                else:
                    await client.delete_item(**params)
            except ClientError as exc:
                if lost_condition(exc):
                    return False
                raise
        return True

    async def query(
        self, operation: str, *, page_size: int | None = None, **params: Any
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The items of a ``Query``, one list per page, following ``LastEvaluatedKey``."""
        client = await self.client()
        extra: dict[str, Any] = {} if page_size is None else {"Limit": page_size}
        while True:
            with self.errors(operation, None):
                response = await client.query(TableName=self.table, **params, **extra)
            yield [dict(item) for item in response.get("Items", [])]
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            extra["ExclusiveStartKey"] = last


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _projection(attributes: Sequence[str]) -> dict[str, Any]:
    """``ProjectionExpression`` arguments naming ``attributes`` through placeholders.

    Some attribute names, like ``ttl``, are reserved words in expressions.
    """
    if not attributes:
        return {}
    names = {f"#a{i}": name for i, name in enumerate(attributes)}
    return {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}

"""The DynamoDB adapter against a real DynamoDB API server (moto, :mod:`tests.moto_server`).

What the contract suite cannot see: URL parsing, table creation and checking, races of 20
writers, transactions keeping index and data together, expired items hidden before native TTL
deletes them, listings that never Scan (observed on the wire through botocore's event hooks), an
unreachable endpoint, secrets, size limits, migration to and from another backend, and the log's
items in the table: written once each under 20 appenders, read only in the asked range, staged
past one transaction, stamped for native TTL, deleted with their key.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)

from serverless_sessions.adapters.cache import dynamodb, sqlite
from serverless_sessions.adapters.cache.base import KEEP_TTL, Appended, Entry, LogSlice
from serverless_sessions.adapters.cache.dynamodb.errors import translate_error
from serverless_sessions.adapters.cache.dynamodb.layout import data_item, data_pk, index_pk
from serverless_sessions.errors import (
    ConfigurationError,
    InvalidSessionError,
    InvalidSessionIdError,
    SessionConflictError,
    SessionTooLargeError,
    StorageError,
    StorageUnavailableError,
)
from serverless_sessions.operations.migration import migrate
from serverless_sessions.storage.cache_storage import ACBCacheStorage
from serverless_sessions.ttl import now
from tests import moto_server
from tests.cache_factories.dynamodb import build, unique_table

NS = "ns-test"


def raw_client() -> Any:
    """A plain aiobotocore client on the test server, to look at the table from outside."""
    return AioSession().create_client(
        "dynamodb",
        endpoint_url=moto_server.endpoint_url(),
        region_name=moto_server.REGION,
        aws_access_key_id=moto_server.ACCESS_KEY_ID,
        aws_secret_access_key=moto_server.SECRET_ACCESS_KEY,
    )


async def raw_item(client: Any, table: str, pk: str, sk: str) -> dict[str, Any] | None:
    response = await client.get_item(
        TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    )
    item = response.get("Item")
    return None if item is None else dict(item)


@asynccontextmanager
async def observed(table: str) -> AsyncIterator[tuple[dynamodb.Cache, list[str], list[dict[str, Any]]]]:
    """An adapter on an injected client whose every request is recorded: operation names and
    the parameters of each ``TransactWriteItems``."""
    operations: list[str] = []
    transactions: list[dict[str, Any]] = []

    def record(event_name: str, params: dict[str, Any], **_: Any) -> None:
        operations.append(event_name.rsplit(".", 1)[-1])
        if operations[-1] == "TransactWriteItems":
            transactions.append(params)

    async with raw_client() as client:
        client.meta.events.register("provide-client-params.dynamodb", record)
        async with build(table, client=client, namespace=NS) as cache:
            yield cache, operations, transactions


# -- URLs and settings --------------------------------------------------------------------------


def test_url_round_trips_every_parameter() -> None:
    cache = dynamodb.Cache.from_url(
        "dynamodb://My_Table.v2?region=eu-west-1&endpoint_url=http://127.0.0.1:8000"
        "&create_table=false&connect_timeout=1.5&read_timeout=4&max_attempts=5&table_wait=30",
        namespace="tenant",
    )
    settings = cache.settings
    assert (settings.table, settings.region, settings.endpoint_url) == (
        "My_Table.v2",
        "eu-west-1",
        "http://127.0.0.1:8000",
    )
    assert settings.create_table is False and not settings.may_create_table
    assert settings.timeouts == dynamodb.DynamoDBTimeouts(
        connect=1.5, read=4.0, max_attempts=5, table_wait=30.0
    )
    assert cache.namespace == "tenant"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("dynamodb://sessions?connect_timeout=soon", "'soon'"),
        ("dynamodb://sessions?read_timeout=-1", "'-1'"),
        ("dynamodb://sessions?max_attempts=0", "'0'"),
        ("dynamodb://sessions?table_wait=nan", "'nan'"),
        ("dynamodb://sessions?create_table=perhaps", "'perhaps'"),
        ("dynamodb://sessions?colour=red", "'colour'"),
        ("dynamodb://sessions?region=eu-west-1&region=us-east-1", "'region'"),
        ("dynamodb://sessions?region=", "'region'"),
        ("dynamodb://sessions?region=EU_WEST", "'EU_WEST'"),
        ("dynamodb://sessions?endpoint_url=ftp://127.0.0.1", "'ftp://127.0.0.1'"),
        ("dynamodb://ab", "'ab'"),
        ("dynamodb://bad$name", "'bad$name'"),
        ("dynamodb://", "''"),
        ("dynamodb://sessions/extra", "'/extra'"),
        ("dynamodb://sessions:8000", "port"),
        ("s3://sessions", "'s3'"),
    ],
)
def test_bad_urls_are_configuration_errors_naming_the_value(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        dynamodb.Cache.from_url(url)
    assert named in str(caught.value)


def test_table_wait_is_checked_like_the_other_timeouts() -> None:
    with pytest.raises(ConfigurationError, match="'table_wait'"):
        dynamodb.DynamoDBTimeouts(table_wait=-5)
    assert dynamodb.Cache.from_url("dynamodb://sessions?create_table=on").settings.create_table is True


def test_credentials_in_the_url_are_refused_without_repeating_them() -> None:
    with pytest.raises(ConfigurationError) as caught:
        dynamodb.Cache.from_url("dynamodb://AKIAEXAMPLE:hunter2-secret@sessions")
    assert "hunter2-secret" not in str(caught.value) and "AKIAEXAMPLE" not in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        dynamodb.Cache.from_url("dynamodb://sessions?endpoint_url=http://id:hunter2-secret@127.0.0.1")
    assert "hunter2-secret" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="together"):
        dynamodb.Cache(table="sessions", access_key_id="AKIAEXAMPLE")


@pytest.mark.parametrize(
    ("endpoint", "creates"),
    [
        (None, False),  # AWS itself: tables belong to infrastructure code
        ("https://dynamodb.eu-west-1.amazonaws.com", False),
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000", True),
        ("http://10.0.0.5:8000", False),
    ],
)
def test_tables_are_created_on_first_use_only_on_loopback_by_default(
    endpoint: str | None, creates: bool
) -> None:
    assert dynamodb.Cache(table="sessions", endpoint_url=endpoint).settings.may_create_table is creates
    assert dynamodb.Cache(
        table="sessions", endpoint_url=endpoint, create_table=not creates
    ).settings.may_create_table is (not creates)


async def test_no_region_anywhere_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    async with dynamodb.Cache(table="sessions", access_key_id="id", secret_access_key="key") as cache:
        with pytest.raises(ConfigurationError, match="region"):
            await cache.get("k")


# -- the table ----------------------------------------------------------------------------------


async def test_first_use_creates_the_table_with_its_keys_indexes_and_native_ttl() -> None:
    table = unique_table()
    async with build(table) as cache:
        await cache.set("k", b"v", ttl=60)
        report = await cache.ensure_table()
    assert report == {"table": table, "status": "ACTIVE", "indexes": ["ss_by_expiry", "ss_by_key"]}
    async with raw_client() as client:
        described = (await client.describe_table(TableName=table))["Table"]
        ttl = (await client.describe_time_to_live(TableName=table))["TimeToLiveDescription"]
    assert [(k["AttributeName"], k["KeyType"]) for k in described["KeySchema"]] == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")


async def test_a_missing_table_is_not_created_when_creation_is_off() -> None:
    table = unique_table()
    async with build(table, create_table=False) as cache:
        with pytest.raises(StorageError, match=table) as caught:
            await cache.get("k")
        assert "create_table=true" in str(caught.value)
        # ensure_table (what an init command calls) creates it whatever create_table says.
        assert (await cache.ensure_table())["status"] == "ACTIVE"
        assert await cache.get("k") is None


async def test_an_existing_table_with_other_keys_is_refused_by_name() -> None:
    table = unique_table()
    async with raw_client() as client:
        await client.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )
    async with build(table) as cache:
        with pytest.raises(ConfigurationError) as caught:
            await cache.set("k", b"v")
    message = str(caught.value)
    assert table in message and "key schema" in message and "ss_by_key" in message


# -- races and transactions ---------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [60.0, KEEP_TTL], ids=["new-expiry-transaction", "kept-expiry-put"])
async def test_twenty_concurrent_writers_exactly_one_wins_each_round(ttl: float | Any) -> None:
    """Twenty writers on five clients race on the same version, round after round."""
    table = unique_table()
    clients = [build(table, namespace=NS) for _ in range(5)]
    try:
        await clients[0].compare_and_set("hot", b"start", expected_version=0, ttl=60, indexes=["user:u"])
        for round_number in range(1, 6):

            async def attempt(writer: int, version: int = round_number) -> bytes | None:
                value = f"round {version} writer {writer}".encode()
                try:
                    await clients[writer % 5].compare_and_set(
                        "hot", value, expected_version=version, ttl=ttl, indexes=["user:u"]
                    )
                except SessionConflictError as exc:
                    assert exc.actual == version + 1
                    return None
                return value

            results = await asyncio.gather(*(attempt(writer) for writer in range(20)))
            winners = [value for value in results if value is not None]
            assert len(winners) == 1, results
            entry = await clients[0].get_entry("hot")
            assert entry is not None and (entry.version, entry.value) == (round_number + 1, winners[0])
        assert await clients[0].index_members("user:u") == ["hot"]
    finally:
        for client in clients:
            await client.close()


async def test_indexes_are_fixed_by_the_first_indexed_write() -> None:
    async with build(unique_table(), namespace=NS) as cache:
        await cache.set("k", b"v", ttl=60)
        await cache.compare_and_set("k", b"w", expected_version=1, ttl=KEEP_TTL, indexes=["user:a"])
        assert await cache.index_members("user:a") == ["k"]
        await cache.set("k", b"x", ttl=120)  # names no index: keeps them, with the new expiry
        with pytest.raises(SessionConflictError, match="other indexes"):
            await cache.compare_and_set("k", b"y", expected_version=3, ttl=60, indexes=["user:b"])
        assert await cache.index_members("user:a") == ["k"] and await cache.index_members("user:b") == []


async def test_racing_creators_with_different_indexes_leave_only_the_winners_index() -> None:
    """Index items are written in the data item's transaction: a creator that loses the race
    leaves no index item behind, so exactly one of twenty indexes lists the key."""
    table = unique_table()
    async with build(table, namespace=NS) as cache:

        async def create(writer: int) -> int | None:
            try:
                await cache.compare_and_set(
                    "contested", b"v", expected_version=0, ttl=60, indexes=[f"user:{writer}"]
                )
            except SessionConflictError:
                return None
            return writer

        winners = [w for w in await asyncio.gather(*(create(w) for w in range(20))) if w is not None]
        assert len(winners) == 1
        listed = {w: await cache.index_members(f"user:{w}") for w in range(20)}
        assert {w for w, keys in listed.items() if keys} == set(winners)
        async with raw_client() as client:
            items = [await raw_item(client, table, index_pk(NS, f"user:{w}"), "contested") for w in range(20)]
        assert sum(item is not None for item in items) == 1


async def test_creation_and_deletion_are_one_transaction_of_data_and_index_items() -> None:
    table = unique_table()
    async with observed(table) as (cache, operations, transactions):
        await cache.compare_and_set("s1", b"v", expected_version=0, ttl=60, indexes=["user:a", "project:p"])
        assert len(transactions) == 1
        puts = [item["Put"]["Item"]["pk"]["S"] for item in transactions[0]["TransactItems"]]
        assert puts == [data_pk(NS, "s1"), index_pk(NS, "user:a"), index_pk(NS, "project:p")]
        assert "ConditionExpression" in transactions[0]["TransactItems"][0]["Put"]

        operations.clear()
        await cache.compare_and_set("s1", b"w", expected_version=1, ttl=KEEP_TTL)
        assert operations == ["GetItem", "PutItem"]  # expiry kept: index items stay as they are

        assert await cache.compare_and_delete("s1", expected_version=2)
        deletes = [item["Delete"]["Key"]["pk"]["S"] for item in transactions[-1]["TransactItems"]]
        assert deletes == [data_pk(NS, "s1"), index_pk(NS, "user:a"), index_pk(NS, "project:p")]
    async with raw_client() as client:
        assert await raw_item(client, table, data_pk(NS, "s1"), "d") is None
        assert await raw_item(client, table, index_pk(NS, "user:a"), "s1") is None


async def test_listing_and_purging_query_and_never_scan() -> None:
    table = unique_table()
    async with observed(table) as (cache, operations, _):
        for i in range(12):
            await cache.compare_and_set(f"k{i}", b"v", expected_version=0, ttl=60, indexes=["user:a"])
        await cache.set("short", b"v", ttl=0.3)
        await asyncio.sleep(0.8)
        operations.clear()
        assert len(await cache.index_members("user:a")) == 12
        assert len([key async for key in cache.scan_keys(batch_size=5)]) == 12
        assert await cache.purge_expired() == ["short"]
        assert len(await cache.get_entries([f"k{i}" for i in range(12)])) == 12
    assert "Scan" not in operations
    # Purging reads each expired key again (consistently) before deleting it.
    assert set(operations) == {"Query", "BatchGetItem", "GetItem", "DeleteItem"}


# -- expiry -------------------------------------------------------------------------------------


async def test_expired_items_are_invisible_before_native_ttl_deletes_them() -> None:
    table = unique_table()
    async with build(table, namespace=NS) as cache:
        first = await cache.compare_and_set("old", b"v", expected_version=0, ttl=0.5, indexes=["user:a"])
        assert first.expires_at is not None
        await asyncio.sleep(1.2)
        async with raw_client() as client:
            item = await raw_item(client, table, data_pk(NS, "old"), "d")
        # Still stored (native TTL is late), carrying the native TTL attribute rounded up...
        assert item is not None and int(item["ttl"]["N"]) == math.ceil(first.expires_at)
        # ... and invisible to every read.
        assert await cache.get("old") is None
        assert not await cache.exists("old")
        assert await cache.get_entry("old") is None
        assert await cache.get_entries(["old"]) == [None]
        assert await cache.index_members("user:a") == []
        assert [key async for key in cache.scan_keys()] == []
        with pytest.raises(SessionConflictError):
            await cache.compare_and_set("old", b"x", expected_version=1, ttl=60)
        assert not await cache.delete("old")

        # An expired key counts as absent: re-created as version 1, under other indexes; the
        # expired incarnation's index item goes in the same transaction.
        again = await cache.compare_and_set("old", b"new", expected_version=0, ttl=60, indexes=["user:b"])
        assert again.version == 1
        assert await cache.index_members("user:a") == []
        assert await cache.index_members("user:b") == ["old"]
        async with raw_client() as client:
            assert await raw_item(client, table, index_pk(NS, "user:a"), "old") is None
        assert await cache.purge_expired() == []


async def test_purge_removes_only_expired_items_and_respects_its_limit() -> None:
    table = unique_table()
    async with build(table, namespace=NS) as cache:
        for i in range(7):
            await cache.compare_and_set(f"gone{i}", b"v", expected_version=0, ttl=0.3, indexes=["user:a"])
        await cache.compare_and_set("kept", b"v", expected_version=0, ttl=60, indexes=["user:a"])
        await cache.set("forever", b"v")
        await asyncio.sleep(0.8)
        first = await cache.purge_expired(limit=3)
        rest = await cache.purge_expired()
        assert len(first) == 3 and sorted(first + rest) == [f"gone{i}" for i in range(7)]
        assert await cache.purge_expired(limit=0) == []
        async with raw_client() as client:
            assert await raw_item(client, table, data_pk(NS, "gone0"), "d") is None
            assert await raw_item(client, table, index_pk(NS, "user:a"), "gone0") is None
        assert sorted([key async for key in cache.scan_keys()]) == ["forever", "kept"]


async def test_expiries_dynamodb_cannot_store_are_refused_before_writing() -> None:
    async with build(unique_table(), namespace=NS) as cache:
        with pytest.raises(InvalidSessionError, match="9999"):
            await cache.set("far", b"v", ttl=1e12)
        assert await cache.get("far") is None


# -- bad input ----------------------------------------------------------------------------------


async def test_too_many_indexes_are_refused_before_writing() -> None:
    async with build(unique_table(), namespace=NS) as cache:
        with pytest.raises(InvalidSessionError, match="13 indexes"):
            await cache.compare_and_set(
                "k", b"v", expected_version=0, ttl=60, indexes=[f"i{n}" for n in range(13)]
            )
        assert await cache.get("k") is None


@pytest.mark.parametrize("key", ["", "\ud800", "k" * 1025, "é" * 513])
async def test_keys_dynamodb_cannot_hold_are_typed_errors_naming_them(key: str) -> None:
    async with build(unique_table()) as cache:
        for call in (cache.get(key), cache.set(key, b"v"), cache.delete(key)):
            with pytest.raises(InvalidSessionIdError) as caught:
                await call
            assert repr(key)[:40] in str(caught.value)


async def test_a_value_over_the_item_limit_is_too_large_and_nothing_is_written() -> None:
    async with build(unique_table(), namespace=NS) as cache:
        await cache.compare_and_set("big", b"small", expected_version=0, ttl=60, indexes=["user:a"])
        with pytest.raises(SessionTooLargeError) as caught:
            await cache.compare_and_set("big", b"x" * 410_000, expected_version=1, ttl=60)
        assert caught.value.session_id == "big" and caught.value.size == 410_000
        assert 409_000 < caught.value.limit < 409_600  # DynamoDB's 400 KiB less this item's other attributes
        assert "DynamoDB's 400 KB item size" in str(caught.value)
        assert "max_session_bytes" not in str(caught.value)  # raising that would not help
        entry = await cache.get_entry("big")
        assert entry is not None and (entry.value, entry.version) == (b"small", 1)


# -- failures and secrets -----------------------------------------------------------------------


async def test_an_unreachable_endpoint_is_unavailable_in_bounded_time_without_secrets() -> None:
    port = moto_server.free_port()  # nothing listens there
    cache = build(
        unique_table(),
        endpoint_url=f"http://127.0.0.1:{port}",
        secret_access_key="unreachable-secret-value",
        timeouts=dynamodb.DynamoDBTimeouts(connect=1.0, read=1.0, max_attempts=2),
    )
    async with cache:
        for call in (
            cache.get("k"),
            cache.ping(),
            cache.compare_and_set("k", b"v", expected_version=0, ttl=1),
        ):
            with pytest.raises(StorageUnavailableError) as caught:
                await asyncio.wait_for(call, timeout=60)  # a hang guard, not a timing assertion
            assert str(port) in str(caught.value)
            assert "unreachable-secret-value" not in str(caught.value)
        report = await asyncio.wait_for(cache.health(), timeout=60)
    assert report["available"] is False and report["credentials"] == "explicit"
    assert "unreachable-secret-value" not in repr(report)


async def test_secrets_never_appear_in_reprs_health_or_errors() -> None:
    table = unique_table()
    cache = build(table, create_table=False, access_key_id="AKIDVISIBLE", secret_access_key="s3cr3t-value")
    assert "s3cr3t-value" not in repr(cache) and "s3cr3t-value" not in repr(cache.settings)
    assert "AKIDVISIBLE" not in repr(cache.settings)
    async with cache:
        with pytest.raises(StorageError) as caught:
            await cache.get("k")
        health = await cache.health()
    assert "s3cr3t-value" not in str(caught.value) and "AKIDVISIBLE" not in str(caught.value)
    assert "s3cr3t-value" not in repr(health) and "AKIDVISIBLE" not in repr(health)


def _client_error(code: str, status: int = 400, **extra: Any) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError({**response, **extra}, "PutItem")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: _client_error("ProvisionedThroughputExceededException"), StorageUnavailableError),
        (lambda: _client_error("ThrottlingException"), StorageUnavailableError),
        (lambda: _client_error("RequestLimitExceeded"), StorageUnavailableError),
        (lambda: _client_error("InternalServerError", 500), StorageUnavailableError),
        (lambda: _client_error("ServiceUnavailable", 503), StorageUnavailableError),
        (
            lambda: _client_error(
                "TransactionCanceledException", CancellationReasons=[{"Code": "ThrottlingError"}]
            ),
            StorageUnavailableError,
        ),
        (lambda: _client_error("AccessDeniedException"), StorageError),
        (lambda: _client_error("ResourceNotFoundException"), StorageError),
        (lambda: _client_error("ValidationException"), StorageError),
        (lambda: _client_error("UnrecognizedClientException"), StorageError),
        (lambda: EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), StorageUnavailableError),
        (lambda: ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), StorageUnavailableError),
        (lambda: ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), StorageUnavailableError),
        (lambda: NoRegionError(), ConfigurationError),
        (lambda: NoCredentialsError(), ConfigurationError),
        (lambda: ParamValidationError(report="bad"), StorageError),
    ],
)
def test_every_botocore_error_we_can_meet_is_translated(
    make: Callable[[], Exception], expected: type[Exception]
) -> None:
    error = translate_error(make(), backend="dynamodb", operation="write", table="t", key="k1")
    assert type(error) is expected
    assert "dynamodb write failed (table 't', key 'k1')" in str(error)


def test_signature_errors_keep_their_code_and_lose_their_text() -> None:
    exc = _client_error("InvalidSignatureException")
    exc.response["Error"]["Message"] = "canonical string: x-amz-security-token:SESSIONTOKEN"
    error = translate_error(exc, backend="dynamodb", operation="get", table="t", key=None)
    assert "InvalidSignatureException" in str(error) and "SESSIONTOKEN" not in str(error)


async def test_an_injected_client_is_left_open() -> None:
    table = unique_table()
    async with raw_client() as client:
        async with build(table, client=client) as cache:
            await cache.set("k", b"v")
        assert (await client.describe_table(TableName=table))["Table"]["TableStatus"] == "ACTIVE"


# -- migration ----------------------------------------------------------------------------------


async def test_sessions_migrate_from_sqlite_to_dynamodb_and_back(tmp_path: Path) -> None:
    from serverless_sessions.model import SessionState

    async with (
        sqlite.Cache(tmp_path / "source.db") as source_cache,
        build(unique_table()) as dynamo_cache,
        sqlite.Cache(tmp_path / "back.db") as back_cache,
    ):
        source = ACBCacheStorage(source_cache, "sessions")
        middle = ACBCacheStorage(dynamo_cache, "sessions")
        back = ACBCacheStorage(back_cache, "sessions")
        for i in range(25):
            state = SessionState(session_id=f"s:{i}", user_id=f"u{i % 3}", project_id="p", metadata={"i": i})
            await source.store_session(state, ttl_seconds=3600 + i)
        report = await migrate(source, middle)
        assert (report.migrated, report.mismatches, report.failed) == (25, [], {})
        assert sorted(await middle.list_sessions(user_id="u1")) == sorted(f"s:{i}" for i in range(1, 25, 3))
        stored = await middle.load_session("s:7")
        assert stored is not None and stored.state.metadata == {"i": 7}
        assert stored.expires_at is not None and stored.expires_at - now() == pytest.approx(3607, abs=30)
        report = await migrate(middle, back)
        assert (report.migrated, report.mismatches, report.failed) == (25, [], {})
        assert {sid async for sid in back.iter_session_ids()} == {f"s:{i}" for i in range(25)}


# -- the log (AppendableCache) ------------------------------------------------------------------

HEAD = b'{"id":"head"}'


async def raw_log(client: Any, table: str, key: str) -> list[dict[str, Any]]:
    """Every log item stored in ``key``'s partition, of any generation, in sort-key order."""
    items: list[dict[str, Any]] = []
    async for page in client.get_paginator("query").paginate(
        TableName=table,
        ConsistentRead=True,
        KeyConditionExpression="pk = :p AND begins_with(sk, :l)",
        ExpressionAttributeValues={":p": {"S": data_pk(NS, key)}, ":l": {"S": "l#"}},
    ):
        items += page["Items"]
    return items


async def write_log(
    cache: dynamodb.Cache, key: str, log: list[bytes], *, expected_version: int = 0, ttl: float | None = 60
) -> Entry:
    return await cache.write_with_log(
        key,
        HEAD,
        log=log,
        value_weight=len(HEAD),
        log_weight=sum(map(len, log)),
        expected_version=expected_version,
        ttl=ttl,
    )


async def append(cache: dynamodb.Cache, key: str, items: list[bytes], **options: Any) -> Appended:
    return await cache.append(
        key, items, weight=sum(map(len, items)), touched_at=now(), **{"ttl": 60, **options}
    )


async def test_ten_appenders_on_five_clients_write_each_item_exactly_once_and_in_order() -> None:
    """10 appenders x 50 items (two calls each) over five clients; the table holds exactly the
    500 items afterwards, in one generation: no lost round left anything behind. Every call
    still races the others (twenty appenders took minutes on moto's one-request server)."""
    writers = 10
    table = unique_table()
    clients = [build(table, namespace=NS) for _ in range(5)]
    try:
        created = await write_log(clients[0], "chat", [], ttl=600)

        async def appender(writer: int) -> list[int]:
            lengths = []
            for call in range(2):
                batch = [f"{writer}:{call * 25 + i}".encode() for i in range(25)]
                lengths.append((await append(clients[writer % 5], "chat", batch, ttl=600)).length)
            return lengths

        results = await asyncio.wait_for(asyncio.gather(*map(appender, range(writers))), timeout=600)
        lengths = sorted(length for each in results for length in each)
        assert lengths == list(range(25, 50 * writers + 1, 25))
        found = await clients[1].get_with_log("chat")
        assert found is not None
        entry, log = found
        assert entry.version == created.version + 2 * writers
        assert log.length == len(log.items) == len(set(log.items)) == 50 * writers
        for writer in range(writers):
            mine = [item for item in log.items if item.startswith(f"{writer}:".encode())]
            assert mine == [f"{writer}:{i}".encode() for i in range(50)]
        for start in range(0, 50 * writers, 25):  # each call's items stayed together
            assert len({item.split(b":")[0] for item in log.items[start : start + 25]}) == 1
        async with raw_client() as client:
            stored = await raw_log(client, table, "chat")
        assert [item["v"]["B"] for item in stored] == log.items
        assert len({item["sk"]["S"].split("#")[1] for item in stored}) == 1
    finally:
        for cache in clients:
            await cache.close()


async def test_an_append_resent_after_a_lost_answer_is_written_once() -> None:
    """The client resends a transaction whose answer it did not get. DynamoDB recognises the
    resent one by its client token; moto does not, and refuses it because the first one changed
    the data item: the append must recognise its own items rather than write them again."""
    table = unique_table()
    resent: list[int] = []

    def resend_once(attempts: int, caught_exception: Exception | None, **_: Any) -> float | None:
        if not resent and attempts == 1 and caught_exception is None:
            resent.append(attempts)
            return 0.0  # retry at once, as after a lost answer
        return None

    async with build(table, namespace=NS) as setup:
        await write_log(setup, "s", [b"a"])
    async with raw_client() as client:
        client.meta.events.register_first("needs-retry.dynamodb.TransactWriteItems", resend_once)
        async with build(table, client=client, namespace=NS) as cache:
            appended = await append(cache, "s", [b"b", b"c"])
            found = await cache.get_with_log("s")
    assert resent == [1]
    assert (appended.version, appended.length) == (2, 3)
    assert found is not None and found[1] == LogSlice([b"a", b"b", b"c"], 0, 3, 3)


async def test_get_with_log_reads_the_data_item_and_only_the_asked_items() -> None:
    table = unique_table()
    items = [f"message {i}".encode() for i in range(200)]
    requests: list[tuple[str, dict[str, Any]]] = []
    counts: list[int] = []

    def record(event_name: str, params: dict[str, Any], **_: Any) -> None:
        requests.append((event_name.rsplit(".", 1)[-1], params))

    def count(parsed: dict[str, Any], **_: Any) -> None:
        counts.append(parsed["Count"])

    async with raw_client() as client, build(table, client=client, namespace=NS) as cache:
        await write_log(cache, "s", items)
        client.meta.events.register("provide-client-params.dynamodb", record)
        client.meta.events.register("after-call.dynamodb.Query", count)
        found = await cache.get_with_log("s", last=5, before=150)
    assert found is not None
    assert found[1] == LogSlice(items[145:150], 145, 200, sum(map(len, items)))
    assert [name for name, _ in requests] == ["GetItem", "Query"]
    bounds = requests[1][1]["ExpressionAttributeValues"]
    assert (bounds[":first"]["S"][-10:], bounds[":last"]["S"][-10:]) == ("0000000145", "0000000149")
    assert counts == [5]


async def test_a_read_racing_a_replacement_sees_one_whole_log() -> None:
    """The log is replaced between the reader's read of the data item and its query: the old
    items are gone, so the reader reads again and returns the new log with its own entry."""
    table = unique_table()
    old, new = [f"old {i}".encode() for i in range(10)], [f"new {i}".encode() for i in range(8)]
    replaced: list[Entry] = []
    async with build(table, namespace=NS) as writer, raw_client() as client:
        await write_log(writer, "s", old)

        async def replace_once(**_: Any) -> None:
            if not replaced:
                replaced.append(await write_log(writer, "s", new, expected_version=1))

        client.meta.events.register("before-call.dynamodb.Query", replace_once)
        async with build(table, client=client, namespace=NS) as reader:
            found = await reader.get_with_log("s", last=4)
    assert found is not None and replaced
    assert found == (replaced[0], LogSlice(new[-4:], 4, 8, sum(map(len, new))))


async def test_racing_replacements_of_a_long_log_leave_only_the_winners_items() -> None:
    """Logs past one transaction are staged under their own generation before the data item
    switches to it: readers never see a staged log, and the losers' staged items are removed."""
    table = unique_table()
    async with build(table, namespace=NS) as cache, raw_client() as client:
        await write_log(cache, "s", [])
        seen: list[list[bytes]] = []

        async def replace(writer: int) -> int | None:
            log = [f"{writer}:{i}".encode() for i in range(120)]
            try:
                await write_log(cache, "s", log, expected_version=1)
            except SessionConflictError:
                return None
            return writer

        async def read_meanwhile() -> None:
            for _ in range(6):
                found = await cache.get_with_log("s")
                assert found is not None
                seen.append(found[1].items)

        *outcomes, _ = await asyncio.gather(*(replace(w) for w in range(4)), read_meanwhile())
        winners = [w for w in outcomes if w is not None]
        assert len(winners) == 1
        whole = [f"{winners[0]}:{i}".encode() for i in range(120)]
        assert all(items in ([], whole) for items in seen)
        found = await cache.get_with_log("s")
        assert found is not None and found[1].items == whole
        assert [item["v"]["B"] for item in await raw_log(client, table, "s")] == whole


async def test_a_replacement_past_four_megabytes_is_written_whole() -> None:
    table = unique_table()
    big = [bytes([i]) * 350_000 for i in range(12)]  # 4.2 MB: more than one transaction holds
    async with build(table, namespace=NS) as cache:
        await write_log(cache, "s", [b"before"])
        written = await write_log(cache, "s", big, expected_version=1)
        found = await cache.get_with_log("s")
        assert found is not None and found == (written, LogSlice(big, 0, 12, 4_200_000))
        async with raw_client() as client:
            assert len(await raw_log(client, table, "s")) == 12


async def test_appends_one_transaction_cannot_hold_are_refused_before_writing() -> None:
    async with build(unique_table(), namespace=NS) as cache:
        written = await write_log(cache, "s", [b"a"])
        with pytest.raises(InvalidSessionError, match="append of 88 items"):
            await append(cache, "s", [b"x"] * 88)
        with pytest.raises(InvalidSessionError, match="at most 4000000 bytes"):
            await append(cache, "s", [b"x" * 60_000] * 70)
        with pytest.raises(SessionTooLargeError) as caught:
            await append(cache, "s", [b"x" * 410_000])
        assert "log item 1 of session 's'" in str(caught.value)
        assert await cache.get_with_log("s") == (written, LogSlice([b"a"], 0, 1, 1))
        assert (await append(cache, "s", [b"y"] * 87)).length == 88  # the bound itself fits


async def test_log_items_carry_native_ttl_stamps_that_outlast_their_key() -> None:
    """Native TTL must never delete a message of a live session: each item's stamp lies a day
    (or the session's time to live) past the key's expiry, and a write moving the expiry past
    the stamps raises them first; a key given no expiry has them removed."""
    table = unique_table()
    async with build(table, namespace=NS) as cache, raw_client() as client:

        async def stored() -> tuple[int | None, list[int | None]]:
            data = await raw_item(client, table, data_pk(NS, "s"), "d")
            assert data is not None
            stamps = [int(i["ttl"]["N"]) if "ttl" in i else None for i in await raw_log(client, table, "s")]
            return (int(data["ttl"]["N"]) if "ttl" in data else None), stamps

        await write_log(cache, "s", [b"a", b"b"], ttl=60)
        key_ttl, stamps = await stored()
        assert key_ttl is not None and all(s is not None and s >= key_ttl + 86_400 for s in stamps)

        await append(cache, "s", [b"c"], ttl=30 * 86_400)  # past the stamps: they are raised
        key_ttl, stamps = await stored()
        assert key_ttl is not None and len(stamps) == 3
        assert all(s is not None and s >= key_ttl + 30 * 86_400 - 5 for s in stamps)

        await cache.compare_and_set("s", HEAD, expected_version=2, ttl=None)
        assert await stored() == (None, [None, None, None])
        await append(cache, "s", [b"d"], ttl=KEEP_TTL)
        assert await stored() == (None, [None] * 4)


async def test_log_items_are_deleted_with_their_key_and_with_their_log() -> None:
    table = unique_table()
    async with build(table, namespace=NS) as cache, raw_client() as client:
        await write_log(cache, "replaced", [b"1", b"2"])
        await write_log(cache, "replaced", [b"3"], expected_version=1)
        assert [i["v"]["B"] for i in await raw_log(client, table, "replaced")] == [b"3"]

        await write_log(cache, "deleted", [b"1", b"2"])
        await append(cache, "deleted", [b"3"])
        assert await cache.delete("deleted")
        assert await raw_log(client, table, "deleted") == []

        await write_log(cache, "purged", [b"1", b"2"], ttl=0.3)
        await write_log(cache, "recreated", [b"1", b"2"], ttl=0.3)
        await asyncio.sleep(0.8)
        assert await cache.purge_expired() in (["purged", "recreated"], ["recreated", "purged"])
        await write_log(cache, "recreated", [b"x"])
        assert await raw_log(client, table, "purged") == []
        assert [i["v"]["B"] for i in await raw_log(client, table, "recreated")] == [b"x"]

        await write_log(cache, "expired", [b"1", b"2"], ttl=0.3)
        await asyncio.sleep(0.8)
        await cache.compare_and_set("expired", HEAD, expected_version=0, ttl=60)  # a new incarnation
        assert await raw_log(client, table, "expired") == []


async def test_an_entry_written_before_logs_has_an_empty_log_and_weighs_its_value() -> None:
    table = unique_table()
    async with build(table, namespace=NS) as cache, raw_client() as client:
        await cache.set("warm-up", b"v")  # creates the table
        item = data_item(NS, "old", b"x" * 100, version=3, expires_at=None, indexes=(), value_weight=0)
        for name in ("vw", "len", "lw"):  # what the adapter wrote before it kept logs
            del item[name]
        await client.put_item(TableName=table, Item=item)
        found = await cache.get_with_log("old")
        assert found is not None and (found[0].version, found[1]) == (3, LogSlice([], 0, 0, 0))
        with pytest.raises(SessionTooLargeError) as caught:
            await append(cache, "old", [b"y"], limit=100)
        assert caught.value.size == 101
        assert (await append(cache, "old", [b"y"], limit=101)).length == 1

"""S3Storage against the moto server: the original object layout, expiry metadata, paging."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from serverless_sessions.errors import CorruptSessionError, StorageError, StorageUnavailableError
from serverless_sessions.storage.legacy import S3Storage
from tests import s3_server
from tests.test_legacy_contract import new_state, original_document, original_payload, quietly, s3_config


@pytest.fixture
async def bucket() -> str:
    return await s3_server.new_bucket("legacy")


@pytest.fixture
async def storage(bucket: str) -> AsyncIterator[S3Storage]:
    async with quietly(S3Storage, s3_config(bucket)) as built:
        yield built


async def put_original(client: Any, bucket: str, session_id: str, **owners: str) -> None:
    """What the original ``store_session`` did, Expires header included."""
    document = original_document(session_id, **owners)
    await client.put_object(
        Bucket=bucket,
        Key=f"sessions/{session_id}.json.gz",
        Body=original_payload(document),
        ContentType="application/gzip",
        Metadata={
            "user_id": document["user_id"],
            "project_id": document["project_id"],
            "created_at": document["created_at"],
            "last_activity": document["last_activity"],
        },
        Expires=datetime.now(UTC) - timedelta(days=1),
    )


async def test_reads_the_original_layout_ignoring_http_expires(storage: S3Storage, bucket: str) -> None:
    async with s3_server.client() as client:
        await put_original(client, bucket, "0123456789abcdef")
        await put_original(client, bucket, "fedcba9876543210", user_id="bob", project_id="proj-2")
        await client.put_object(Bucket=bucket, Key="sessions/notes.txt", Body=b"not a session")
        await client.put_object(Bucket=bucket, Key="sessions/sub/x.json.gz", Body=b"nested")
    stored = await storage.load_session("0123456789abcdef")
    assert stored is not None and stored.expires_at is None and stored.state.revision == 1
    assert stored.state.created_at == datetime(2025, 10, 28, 9, 30, 0, 123456, tzinfo=UTC)
    assert sorted(await storage.list_sessions()) == ["0123456789abcdef", "fedcba9876543210"]
    assert await storage.list_sessions(user_id="bob") == ["fedcba9876543210"]
    assert await storage.list_sessions(project_id="proj-1") == ["0123456789abcdef"]
    assert await storage.cleanup_expired_sessions() == 0  # Expires is only an HTTP header


async def test_writes_the_original_layout_with_expiry_metadata(storage: S3Storage, bucket: str) -> None:
    state = new_state("layout-1", user_id="ü-user", project_id="p")
    await storage.store_session(state, ttl_seconds=60)
    async with s3_server.client() as client:
        response = await client.get_object(Bucket=bucket, Key="sessions/layout-1.json.gz")
        body = await response["Body"].read()
    assert json.loads(gzip.decompress(body)) == {**state.to_dict(), "revision": 1}
    assert "Expires" not in response and "ExpiresString" not in response
    meta = response["Metadata"]
    assert meta["user_id"] == "=?utf-8?b?w7wtdXNlcg==?="  # RFC 2047: S3 metadata is ASCII
    assert meta["project_id"] == "p"
    assert meta["created_at"] == state.to_dict()["created_at"]
    assert meta["last_activity"] == state.to_dict()["last_activity"]
    assert meta["revision"] == "1"
    assert float(meta["expires_at"]) == pytest.approx(time.time() + 60, abs=2)


async def test_cleanup_deletes_expired_objects(storage: S3Storage, bucket: str) -> None:
    past = repr(time.time() - 10)
    async with s3_server.client() as client:
        await put_original(client, bucket, "old-1")
        await client.copy_object(
            Bucket=bucket,
            Key="sessions/old-1.json.gz",
            CopySource={"Bucket": bucket, "Key": "sessions/old-1.json.gz"},
            Metadata={"user_id": "alice", "project_id": "proj-1", "expires_at": past},
            MetadataDirective="REPLACE",
        )
        await put_original(client, bucket, "live-1")
    assert await storage.retrieve_session("old-1") is None
    assert await storage.list_sessions() == ["live-1"]
    assert await storage.cleanup_expired_sessions() == 1
    async with s3_server.client() as client:
        listed = await client.list_objects_v2(Bucket=bucket)
    assert [item["Key"] for item in listed["Contents"]] == ["sessions/live-1.json.gz"]


@pytest.mark.slow
async def test_listing_pages_past_1000_objects(storage: S3Storage, bucket: str) -> None:
    payload = original_payload(original_document("x"))
    ids = [f"{i:016x}" for i in range(1001)]
    async with s3_server.client() as client:
        await asyncio.gather(
            *(
                client.put_object(
                    Bucket=bucket, Key=f"sessions/{sid}.json.gz", Body=payload, Metadata={"revision": "1"}
                )
                for sid in ids
            )
        )
    assert sorted(await storage.list_sessions()) == ids


async def test_bad_metadata_is_corrupt_and_names_the_object(storage: S3Storage, bucket: str) -> None:
    async with s3_server.client() as client:
        await client.put_object(
            Bucket=bucket, Key="sessions/odd.json.gz", Body=b"x", Metadata={"expires_at": "soon"}
        )
    with pytest.raises(CorruptSessionError, match="odd"):
        await storage.retrieve_session("odd")


async def test_unreachable_endpoint_and_missing_bucket() -> None:
    offline = s3_config("some-bucket", endpoint_url="http://127.0.0.1:9", connect_timeout=0.5, max_attempts=1)
    async with quietly(S3Storage, offline) as storage:
        with pytest.raises(StorageUnavailableError, match="some-bucket"):
            await storage.retrieve_session("abc")
        assert await storage.is_available() is False
    async with quietly(S3Storage, s3_config("no-such-legacy-bucket")) as storage:
        with pytest.raises(StorageError, match="no-such-legacy-bucket") as caught:
            await storage.list_sessions()
        assert not isinstance(caught.value, StorageUnavailableError)
        assert s3_server.SECRET_ACCESS_KEY not in str(caught.value)

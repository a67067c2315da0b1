"""S3 adapter specifics beyond the shared contract: URL parsing, layout, error mapping, paging.

Everything runs against the real moto server of ``tests/s3_server.py`` through aiobotocore.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from serverless_sessions.adapters.cache import s3
from serverless_sessions.adapters.cache.s3.bucket import S3Bucket, S3Timeouts, translate_error
from serverless_sessions.adapters.cache.s3.layout import Layout
from serverless_sessions.errors import (
    ClosedError,
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionIdError,
    SessionConflictError,
    StorageError,
    StorageUnavailableError,
)
from tests import s3_server
from tests.cache_factories.s3 import build

SECRET = s3_server.SECRET_ACCESS_KEY


@pytest.fixture
async def bucket() -> str:
    return await s3_server.new_bucket()


@pytest.fixture
async def cache(bucket: str) -> AsyncIterator[s3.Cache]:
    async with build(bucket, "ns1") as built:
        yield built


async def object_names(bucket: str) -> list[str]:
    async with s3_server.client() as client:
        response = await client.list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in response.get("Contents", []))


# -- configuration -------------------------------------------------------------------------


def test_from_url_parses_every_query_parameter() -> None:
    cache = s3.Cache.from_url(
        "s3://my-bucket/some/prefix/?endpoint_url=http://127.0.0.1:9&region=eu-west-1"
        "&addressing_style=path&connect_timeout=1.5&read_timeout=7&max_attempts=2",
        namespace="app",
    )
    settings = cache.settings
    assert settings.bucket == "my-bucket"
    assert cache.prefix == "some/prefix/"
    assert cache.namespace == "app"
    assert settings.endpoint_url == "http://127.0.0.1:9"
    assert settings.region == "eu-west-1"
    assert settings.addressing_style == "path"
    assert settings.timeouts == S3Timeouts(connect=1.5, read=7.0, max_attempts=2)
    assert settings.access_key_id is None  # the standard AWS chain


def test_from_url_overrides_win_and_secrets_are_masked() -> None:
    cache = s3.Cache.from_url(
        "s3://my-bucket?region=eu-west-1", region="us-east-2", access_key_id="AKIA", secret_access_key=SECRET
    )
    assert cache.settings.region == "us-east-2"
    assert cache.prefix == ""
    assert SECRET not in repr(cache)
    assert SECRET not in repr(cache.settings)
    assert "AKIA" not in repr(cache.settings)
    assert cache.settings.public()["credentials"] == "explicit"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("s3://b-1/p?connect_timeout=abc", "connect_timeout"),
        ("s3://b-1/p?read_timeout=-1", "read_timeout"),
        ("s3://b-1/p?max_attempts=0", "max_attempts"),
        ("s3://b-1/p?addressing_style=sideways", "addressing_style"),
        ("s3://b-1/p?region=", "region"),
        ("s3://b-1/p?colour=blue", "colour"),
        ("s3://b-1/p?region=a&region=b", "region"),
        ("s3://b-1/p?region=eu_west", "eu_west"),
        ("s3://b-1/p?endpoint_url=ftp://x", "endpoint_url"),
        ("s3://AB/p", "bucket"),
        ("s3://key:secret@b-1/p", "credentials"),
        ("http://b-1/p", "s3://"),
    ],
)
def test_bad_urls_are_configuration_errors_naming_the_part(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named) as caught:
        s3.Cache.from_url(url)
    assert "secret" not in str(caught.value).replace("secret_access_key", "")


@pytest.mark.parametrize(
    ("timeouts", "named"),
    [({"connect": 0}, "'connect'"), ({"read": "soon"}, "'soon'"), ({"max_attempts": True}, "'max_attempts'")],
)
def test_bad_timeouts_are_configuration_errors_naming_them(timeouts: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        S3Timeouts(**timeouts)  # type: ignore[arg-type]
    assert named in str(caught.value)


def test_credentials_must_come_in_pairs() -> None:
    with pytest.raises(ConfigurationError, match="together"):
        s3.Cache(bucket="b-1", access_key_id="only-the-id")


async def test_credentials_from_the_standard_environment(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    url = f"s3://{bucket}/env?endpoint_url={s3_server.endpoint_url()}&region={s3_server.REGION}"
    async with s3.Cache.from_url(url) as cache:
        await cache.set("k", b"v")
        assert await cache.get("k") == b"v"


# -- layout --------------------------------------------------------------------------------


async def test_awkward_keys_round_trip_and_never_collide(cache: s3.Cache, bucket: str) -> None:
    keys = ["a/b", "..", ".", "d", "i/x", "100%", "ü:日本", " space ", "a%2Fb"]
    for i, key in enumerate(keys):
        await cache.compare_and_set(key, str(i).encode(), expected_version=0, ttl=60, indexes=["user:ü/x"])
    for i, key in enumerate(keys):
        assert await cache.get(key) == str(i).encode()
    assert sorted(await cache.index_members("user:ü/x")) == sorted(keys)
    names = await object_names(bucket)
    assert len(names) == 2 * len(keys)
    for name in names:
        segments = name.split("/")
        assert segments[:2] == ["cache", "ns-ns1"]
        assert "." not in segments and ".." not in segments
        assert (segments[2], len(segments)) in (("d", 4), ("i", 5))


async def test_empty_key_is_a_typed_error(cache: s3.Cache) -> None:
    with pytest.raises(InvalidSessionIdError):
        await cache.set("", b"v")


async def test_expiry_version_and_indexes_live_in_metadata_not_http_expires(
    cache: s3.Cache, bucket: str
) -> None:
    before = time.time()
    await cache.compare_and_set("m", b"v", expected_version=0, ttl=60, indexes=["user:ü,1"])
    async with s3_server.client() as client:
        head = await client.head_object(Bucket=bucket, Key="cache/ns-ns1/d/m")
    assert "Expires" not in head and "ExpiresString" not in head
    meta = head["Metadata"]
    assert meta["ss-version"] == "1"
    assert before + 60 <= float(meta["ss-expires-at"]) <= time.time() + 60
    assert meta["ss-indexes"] == "user%3A%C3%BC%2C1"


async def test_default_namespace_and_named_namespaces_are_apart(bucket: str) -> None:
    async with build(bucket) as plain, build(bucket, "ns") as named:
        await plain.set("k", b"default")
        await named.set("k", b"named")
        assert await plain.get("k") == b"default"
        assert await named.get("k") == b"named"
    assert await object_names(bucket) == ["cache/ns-ns/d/k", "cache/ns/d/k"]


async def test_foreign_object_under_the_prefix_is_reported_corrupt(cache: s3.Cache, bucket: str) -> None:
    async with s3_server.client() as client:
        await client.put_object(Bucket=bucket, Key="cache/ns-ns1/d/alien", Body=b"x")
    with pytest.raises(CorruptSessionError, match="alien"):
        await cache.get("alien")


# -- writes, conditions, expiry ------------------------------------------------------------


async def test_set_keeps_version_order_and_first_indexes(cache: s3.Cache) -> None:
    await cache.compare_and_set("k", b"1", expected_version=0, ttl=60, indexes=["user:a"])
    await cache.set("k", b"2", ttl=None)
    entry = await cache.get_entry("k")
    assert entry is not None and entry.version == 2 and entry.expires_at is None
    assert await cache.index_members("user:a") == ["k"]


async def test_concurrent_sets_all_succeed_with_distinct_versions(cache: s3.Cache) -> None:
    await asyncio.gather(*(cache.set("hot", str(i).encode(), ttl=60) for i in range(5)))
    entry = await cache.get_entry("hot")
    assert entry is not None and entry.version == 5


async def test_create_over_an_expired_object_starts_at_version_one(cache: s3.Cache) -> None:
    await cache.compare_and_set("e", b"old", expected_version=0, ttl=0.3, indexes=["user:old"])
    await asyncio.sleep(0.5)
    with pytest.raises(SessionConflictError):
        await cache.compare_and_set("e", b"x", expected_version=1, ttl=60)
    entry = await cache.compare_and_set("e", b"new", expected_version=0, ttl=60, indexes=["user:new"])
    assert entry.version == 1
    assert await cache.get("e") == b"new"
    assert await cache.index_members("user:new") == ["e"]
    assert await cache.index_members("user:old") == []  # its stale marker is filtered


async def test_if_match_on_a_vanished_object_is_a_failed_precondition(cache: s3.Cache) -> None:
    raw: S3Bucket = cache._bucket
    assert not await raw.put("cache/ns-ns1/d/none", b"v", key="none", if_match='"0123"')
    assert await raw.put("cache/ns-ns1/d/none", b"v", key="none", if_none_match=True)
    assert not await raw.put("cache/ns-ns1/d/none", b"v", key="none", if_none_match=True)
    assert not await raw.delete("cache/ns-ns1/d/gone", key="gone", if_match='"0123"')


async def test_stale_delete_is_a_conflict_and_deletes_nothing(cache: s3.Cache) -> None:
    await cache.compare_and_set("d", b"v", expected_version=0, ttl=60)
    await cache.set("d", b"w", ttl=60)
    with pytest.raises(SessionConflictError, match="revision 2"):
        await cache.compare_and_delete("d", expected_version=1)
    assert await cache.get("d") == b"w"


async def test_purge_respects_its_limit_and_leaves_live_keys(cache: s3.Cache, bucket: str) -> None:
    for i in range(4):
        await cache.compare_and_set(f"x{i}", b"v", expected_version=0, ttl=0.3, indexes=["user:u"])
    await cache.compare_and_set("live", b"v", expected_version=0, ttl=60, indexes=["user:u"])
    await asyncio.sleep(0.5)
    first = await cache.purge_expired(limit=3)
    assert len(first) == 3
    rest = await cache.purge_expired()
    assert sorted(first + rest) == ["x0", "x1", "x2", "x3"]
    assert await object_names(bucket) == ["cache/ns-ns1/d/live", "cache/ns-ns1/i/user%3Au/live"]


async def test_get_entries_keeps_order(cache: s3.Cache) -> None:
    for key in ("a", "b"):
        await cache.set(key, key.encode())
    entries = await cache.get_entries(["b", "none", "a"])
    assert [e.value if e else None for e in entries] == [b"b", None, b"a"]


@pytest.mark.slow
async def test_index_listing_follows_continuation_tokens_past_1000_markers(
    cache: s3.Cache, bucket: str
) -> None:
    # 1,001 markers of keys that do not exist, then the one live key, which sorts last: it is
    # only found if the listing goes on past the first page of 1,000.
    markers = Layout("cache/").markers
    async with s3_server.client() as client:
        await asyncio.gather(
            *(
                client.put_object(Bucket=bucket, Key=markers("ns1", f"k{i:04d}", ["user:many"])[0], Body=b"")
                for i in range(1001)
            )
        )
    await cache.compare_and_set("zz-last", b"v", expected_version=0, ttl=60, indexes=["user:many"])
    assert await cache.index_members("user:many") == ["zz-last"]


# -- lifecycle and errors ------------------------------------------------------------------


async def test_close_closes_only_the_client_it_created(bucket: str) -> None:
    async with s3_server.client() as injected:
        cache = build(bucket, client=injected)
        await cache.set("k", b"v")
        await cache.close()
        with pytest.raises(ClosedError):
            await cache.get("k")
        head = await injected.head_object(Bucket=bucket, Key="cache/ns/d/k")
        assert head["ContentLength"] == 1


async def test_unreachable_server_is_unavailable_with_context(bucket: str) -> None:
    cache = build(
        bucket,
        endpoint_url="http://127.0.0.1:9",
        timeouts=S3Timeouts(connect=0.5, read=0.5, max_attempts=1),
    )
    async with cache:
        with pytest.raises(StorageUnavailableError, match=bucket) as caught:
            await cache.get("some-key")
        assert isinstance(caught.value.__cause__, EndpointConnectionError)
        assert SECRET not in str(caught.value)
        with pytest.raises(StorageUnavailableError):
            await cache.ping()
        report = await cache.health()
    assert report["available"] is False
    assert SECRET not in repr(report)


async def test_missing_bucket_is_a_storage_error_not_a_missing_key() -> None:
    async with build("no-such-bucket-here") as cache:
        with pytest.raises(StorageError, match="no-such-bucket-here") as caught:
            await cache.get("k")
    assert not isinstance(caught.value, StorageUnavailableError)
    assert isinstance(caught.value.__cause__, ClientError)


async def test_health_reports_without_secrets(cache: s3.Cache) -> None:
    report = await cache.health()
    assert report["available"] is True and report["backend"] == "s3"
    assert report["credentials"] == "explicit"
    assert SECRET not in repr(report) and s3_server.ACCESS_KEY_ID not in repr(report)


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetObject",
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (EndpointConnectionError(endpoint_url="http://h"), StorageUnavailableError),
        (ConnectTimeoutError(endpoint_url="http://h"), StorageUnavailableError),
        (ReadTimeoutError(endpoint_url="http://h"), StorageUnavailableError),
        (ConnectionClosedError(endpoint_url="http://h"), StorageUnavailableError),
        (ResponseStreamingError(error="reset"), StorageUnavailableError),
        (_client_error("SlowDown", 503), StorageUnavailableError),
        (_client_error("InternalError", 500), StorageUnavailableError),
        (_client_error("NoSuchBucket", 404), StorageError),
        (_client_error("AccessDenied", 403), StorageError),
        (_client_error("InvalidArgument", 400), StorageError),
        (NoCredentialsError(), StorageError),
        (ParamValidationError(report="bad"), StorageError),
    ],
)
def test_every_botocore_exception_is_translated(exc: Exception, expected: type[StorageError]) -> None:
    bucket = S3Bucket(build("b-1").settings, backend="s3")
    with pytest.raises(expected) as caught, bucket.errors("get", "user:key"):
        raise exc
    error = caught.value
    assert type(error) is expected
    assert error.__cause__ is exc
    for part in ("s3 get", "'b-1'", "'user:key'"):
        assert part in str(error)
    assert SECRET not in str(error)
    assert translate_error(exc, backend="s3", operation="get", bucket="b-1", key=None).args

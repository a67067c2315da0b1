"""Hostile input, property-based: every case round-trips exactly or raises a SessionError.

Covers session ids, user/project ids, session contents (deep nesting, huge strings, non-JSON
values, NaN, surrogates), TTLs, cursors and stored bytes (random, truncated, wrong version, wrong
key). Nothing may crash with another exception, hang (hypothesis deadline) or write outside its
directory or namespace. Each backend is opened once per module and reused across examples.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import os
import random
import uuid
import zlib
from collections.abc import Awaitable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
import zstandard
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from serverless_sessions.adapters.cache import s3
from serverless_sessions.adapters.cache.base import AtomicCache, CacheBase
from serverless_sessions.codec import Codec
from serverless_sessions.encryption import KeyRing, generate_key
from serverless_sessions.errors import (
    CorruptSessionError,
    InvalidSessionError,
    InvalidSessionIdError,
    SessionError,
)
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.storage.cache_storage import ACBCacheStorage
from tests import s3_server
from tests.cache_factories import ADAPTERS, factory

T = TypeVar("T")
NS = "hostile"
KEYS = KeyRing.from_setting(generate_key("k1"))
OTHER_KEYS = KeyRing.from_setting(generate_key("k1"))  # same id, different key
# In-process adapters take many examples; the others (a server per call) fewer. Every adapter of
# tests/cache_factories is one or the other; memory also runs with encryption.
LOCAL_BACKENDS = [*(name for name in ADAPTERS if name in ("memory", "sqlite")), "memory-encrypted"]
REMOTE_BACKENDS = [name for name in ADAPTERS if name not in ("memory", "sqlite")]
# A deadline far above a normal example (a few ms; ~0.5 s for a 3 MB string), so a loaded CI
# machine does not make it flaky while a hang still fails the example.
FAST = settings(
    max_examples=80,
    deadline=10_000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REMOTE = settings(FAST, max_examples=30)


@dataclass
class Env:
    runner: asyncio.Runner
    cache: CacheBase
    storage: ACBCacheStorage
    manager: ServerlessSessionManager
    directory: Path

    def run(self, coro: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await coro

        return self.runner.run(wrapped())


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Env]]:
    directory = tmp_path_factory.mktemp("hostile")
    runner = asyncio.Runner()
    stack = AsyncExitStack()
    built: dict[str, Env] = {}
    try:
        for name in [*LOCAL_BACKENDS, *REMOTE_BACKENDS]:
            # A namespace of this run's own: the factories derive key prefixes, schemas... from it.
            own = f"hostile-{uuid.uuid4().hex[:10]}"
            made = factory(name.removesuffix("-encrypted")).make_cache(directory / name, own)
            (directory / name).mkdir()
            cache = runner.run(stack.enter_async_context(made))
            storage = ACBCacheStorage(cache, NS, encryptor=KEYS if name.endswith("encrypted") else None)
            built[name] = Env(runner, cache, storage, ServerlessSessionManager(storage), directory / name)
        yield built
        if "sqlite" in built:
            assert sorted(os.listdir(directory / "sqlite")) in (
                [],  # a run that selected no SQLite test
                ["cache.db"],
                ["cache.db", "cache.db-shm", "cache.db-wal"],
            ), "the SQLite adapter wrote outside its database file"
        if isinstance(cache := built.get("s3") and built["s3"].cache, s3.Cache):
            objects = runner.run(bucket_keys(cache.settings.bucket))
            assert all(key.startswith("cache/") for key in objects), objects
    finally:
        runner.run(stack.aclose())
        runner.close()


async def bucket_keys(bucket: str) -> list[str]:
    async with s3_server.client() as client:
        listed = await client.list_objects_v2(Bucket=bucket)
        return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture(scope="module", params=LOCAL_BACKENDS)
def env(request: pytest.FixtureRequest, envs: dict[str, Env]) -> Env:
    return envs[str(request.param)]


@pytest.fixture(scope="module", params=REMOTE_BACKENDS)
def remote_env(request: pytest.FixtureRequest, envs: dict[str, Env]) -> Env:
    return envs[str(request.param)]


def same(a: Any, b: Any) -> bool:
    """Equality that also compares types (1 vs 1.0 vs True) and the sign of zero."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


# -- strategies --------------------------------------------------------------------------------

any_char = st.characters(exclude_categories=())  # includes lone surrogates and controls
any_text = st.text(any_char, max_size=80)
valid_id = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}", fullmatch=True)
tricky_ids = st.sampled_from(
    [
        "../x",
        "..",
        ".",
        "./a",
        "a/b",
        "a\\b",
        "/etc/passwd",
        "a\x00b",
        "C:\\x",
        "a" * 128,
        "a" * 129,
        "x:y:z",
        "-a",
        "_a",
        "é",
        "a b",
        "a\nb",
        "%2e%2e%2fx",
        "\ud800",
        "a\u202eb",
    ]
)
session_ids = st.one_of(valid_id, any_text, tricky_ids)
owner_ids = st.one_of(any_text, st.text(max_size=300), tricky_ids, st.just(" "))


def nested(depth: int, leaf: Any = 1, as_dict: bool = False) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value} if as_dict else [value]
    return value


non_json = st.sampled_from(
    [
        b"bytes",
        {1, 2},
        frozenset(),
        (1, 2),
        1 + 2j,
        Decimal("1.5"),
        datetime.now(UTC),
        float("nan"),
        float("inf"),
        -float("inf"),
        2**63,
        -(2**63) - 1,
        10**100,
        object(),
    ]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),  # NaN and infinities included
    any_text,
    non_json,
)
json_like = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.one_of(any_text, st.integers(), st.none()), kids, max_size=4),
    ),
    max_leaves=25,
)
json_documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(any_text, kids, max_size=4),
    max_leaves=25,
)  # what json.dumps accepts: NaN, Infinity, big integers, escaped lone surrogates
deep = st.builds(nested, st.integers(0, 300), scalars, st.booleans())


def huge(size: int, seed: int | None) -> str:
    """``size`` characters: repetitive (compresses well) or random hex (does not)."""
    if seed is None:
        return "x" * size
    return random.Random(seed).randbytes(size // 2).hex()


huge_text = st.builds(huge, st.integers(0, 2_400_000), st.one_of(st.none(), st.integers(0, 9)))
contents = st.one_of(json_like, deep, huge_text)


# -- ids ---------------------------------------------------------------------------------------


def check_ids(env: Env, session_id: str, user_id: str, project_id: str) -> None:
    """Create, read, list and delete with these ids, or get an InvalidSessionError."""
    manager = env.manager

    async def scenario() -> None:
        try:
            created = await manager.create_session(user_id, project_id, session_id=session_id, ttl_hours=1)
        except InvalidSessionError:
            with contextlib.suppress(InvalidSessionIdError):
                assert await manager.get_session(session_id) is None
            with contextlib.suppress(InvalidSessionIdError):
                assert await manager.delete_session(session_id) is False
            return
        assert created == session_id
        state = await manager.get_session(session_id)
        assert state is not None
        assert (state.session_id, state.user_id, state.project_id) == (
            session_id,
            user_id,
            project_id,
        )
        assert session_id in await manager.list_user_sessions(user_id)
        assert session_id in await manager.list_project_sessions(project_id)
        assert session_id in [s async for s in env.storage.iter_session_ids()]
        assert await manager.delete_session(session_id) is True
        assert await manager.get_session(session_id) is None
        assert session_id not in await manager.list_user_sessions(user_id)
        assert session_id not in [s async for s in env.storage.iter_session_ids()]

    env.run(scenario())


ID_EXAMPLES = [
    example(session_id="../../etc/passwd", user_id="u", project_id="p"),
    example(session_id="x:d:y", user_id="u:i:v", project_id="{tag}"),
    example(session_id="ok", user_id="\ud800", project_id="p"),
    example(session_id="ok", user_id="u", project_id="a\x00b"),
]


def with_examples(examples: list[Any]) -> Any:
    def decorate(test: Any) -> Any:
        for item in examples:
            test = item(test)
        return test

    return decorate


@FAST
@with_examples(ID_EXAMPLES)
@given(session_id=session_ids, user_id=owner_ids, project_id=owner_ids)
def test_ids_round_trip_or_raise_a_typed_error(
    env: Env, session_id: str, user_id: str, project_id: str
) -> None:
    check_ids(env, session_id, user_id, project_id)


@REMOTE
@with_examples(ID_EXAMPLES)
@given(session_id=session_ids, user_id=owner_ids, project_id=owner_ids)
def test_ids_on_redis_and_s3(remote_env: Env, session_id: str, user_id: str, project_id: str) -> None:
    check_ids(remote_env, session_id, user_id, project_id)


def test_an_empty_session_id_is_refused_not_replaced(envs: dict[str, Env]) -> None:
    """An explicit ``session_id=""`` is refused, not taken for "not given" (found by this file)."""
    env = envs["memory"]

    async def scenario() -> None:
        with pytest.raises(InvalidSessionIdError):
            await env.manager.create_session("u", "p", session_id="")

    env.run(scenario())


@FAST
@given(namespace=st.one_of(any_text, tricky_ids))
def test_hostile_namespaces_are_refused_or_isolated(env: Env, namespace: str) -> None:
    assume(namespace != NS)
    try:
        storage = ACBCacheStorage(env.cache, namespace)
    except InvalidSessionIdError:
        return

    async def scenario() -> None:
        manager = ServerlessSessionManager(storage)
        sid = await manager.create_session("u", "p", ttl_hours=1)
        assert sid not in [s async for s in env.storage.iter_session_ids()]
        assert await env.manager.get_session(sid) is None
        assert await manager.delete_session(sid)

    env.run(scenario())


# -- contents ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@FAST
@example(value=float("nan"))
@example(value="\udcff")
@example(value={"\ud800": 1})
@example(value=nested(64))
@example(value=nested(65))
@example(value=[-0.0, 5e-324, 1.7976931348623157e308, 2**63 - 1, -(2**63)])
@example(value="x" * 400_000)  # stored twice: 800 KB of JSON, within the 1 MiB limit
@example(value="x" * 3_000_000)  # 6 MB of JSON: refused, nothing written
@given(value=contents)
def test_contents_round_trip_exactly_or_raise_a_typed_error(env: Env, value: Any) -> None:
    manager = env.manager
    data = {"metadata": {"v": value}, "conversation_history": [{"v": value}]}

    async def scenario() -> None:
        try:
            sid = await manager.create_session("u", "p", fields=data, ttl_hours=1)
        except SessionError:
            sid = await manager.create_session("u", "p", ttl_hours=1)
            try:
                await manager.update_session(sid, data)
            except SessionError:
                state = await manager.get_session(sid)
                assert state is not None and state.metadata == {}  # nothing was written
                await manager.delete_session(sid)
                return
            raise AssertionError("update accepted what create refused") from None
        state = await manager.get_session(sid)
        assert state is not None
        assert same(state.metadata["v"], value)
        assert same(state.conversation_history[0]["v"], value)
        await manager.delete_session(sid)

    env.run(scenario())


def test_very_deep_and_self_referencing_content_is_refused(envs: dict[str, Env]) -> None:
    env = envs["memory"]
    loop: list[Any] = []
    loop.append(loop)
    cyclic: dict[str, Any] = {}
    cyclic["me"] = cyclic

    async def scenario() -> None:
        for value in (loop, cyclic, nested(5000), nested(5000, as_dict=True)):
            with pytest.raises(InvalidSessionError):
                await env.manager.create_session("u", "p", {"v": value})

    env.run(scenario())


@FAST
@given(
    updates=st.dictionaries(
        st.one_of(any_text, st.sampled_from(["session_id", "revision", "metadata", "permissions"])),
        json_like,
        max_size=3,
    ),
    ttl_hours=st.one_of(st.none(), st.floats(), st.integers(-10, 10**12), st.sampled_from(["1", True])),
)
def test_hostile_updates_and_ttls(env: Env, updates: dict[str, Any], ttl_hours: Any) -> None:
    manager = env.manager

    async def scenario() -> None:
        sid = await manager.create_session("u", "p", ttl_hours=1)
        before = await manager.get_session(sid)
        try:
            await manager.update_session(sid, updates, ttl_hours=ttl_hours)
        except SessionError:
            after = await manager.get_session(sid)
            assert after is not None and before is not None
            assert after.model_dump(exclude={"last_activity"}) == before.model_dump(exclude={"last_activity"})
        else:
            after = await manager.get_session(sid)
            if after is None:  # a tiny positive TTL is valid and expires at once
                assert isinstance(ttl_hours, float) and ttl_hours * 3600 < 5
                return
            for name, value in updates.items():
                assert same(getattr(after, name), value)
        await manager.delete_session(sid)

    env.run(scenario())


def test_a_cursor_with_a_naive_timestamp_is_an_invalid_cursor(envs: dict[str, Env]) -> None:
    """A forged cursor with a naive timestamp once reached a datetime comparison (TypeError)."""
    env = envs["memory"]
    forged = base64.urlsafe_b64encode(json.dumps(["2020-01-01T00:00:00", "x"]).encode()).decode()

    async def scenario() -> None:
        sid = await env.manager.create_session("naive-cursor-user", "p", ttl_hours=1)
        try:
            with pytest.raises(InvalidSessionError):
                await env.manager.list_sessions(user_id="naive-cursor-user", cursor=forged)
        finally:
            await env.manager.delete_session(sid)

    env.run(scenario())


@FAST
@example(cursor=json.dumps({"a": 1}))
@example(cursor=json.dumps(["2020-01-01T00:00:00+00:00", 5]))
@given(cursor=st.one_of(any_text, st.builds(json.dumps, json_documents)))
def test_hostile_cursors(env: Env, cursor: str) -> None:
    """Cursors are opaque base64 of JSON; anything else is an InvalidSessionError."""
    manager = env.manager
    encoded = base64.urlsafe_b64encode(cursor.encode("utf-8", "surrogatepass")).decode()

    async def scenario() -> None:
        sid = await manager.create_session("cursor-user", "p", ttl_hours=1)
        try:
            for candidate in (cursor, encoded):
                with contextlib.suppress(InvalidSessionError):
                    await manager.list_sessions(user_id="cursor-user", cursor=candidate)
        finally:
            await manager.delete_session(sid)

    env.run(scenario())


# -- stored bytes ------------------------------------------------------------------------------


def valid_payloads() -> list[bytes]:
    from serverless_sessions.model import SessionState

    state = SessionState(session_id="victim", user_id="u", project_id="p", metadata={"text": "z" * 2000})
    ad = f"{NS}:victim".encode()
    plain = Codec(compression="none").encode(state)
    zstd = Codec().encode(state)
    return [
        plain,
        zstd,
        KEYS.seal(zstd, associated_data=ad),
        gzip.compress(state.model_dump_json().encode()),
    ]


VALID = valid_payloads()

session_like = st.fixed_dictionaries(
    {"session_id": st.just("victim"), "user_id": any_text, "project_id": any_text},
    optional={
        "created_at": st.one_of(any_text, st.integers(), st.just("2024-01-01T00:00:00")),
        "revision": st.one_of(st.integers(), st.floats()),
        "metadata": json_documents,
        "conversation_history": json_documents,
        "absolute_expires_at": st.one_of(st.none(), any_text, st.floats()),
        "unexpected": json_documents,
    },
)


def mutate_payload(base: int, cut: int, flips: list[tuple[int, int]], tail: bytes) -> bytes:
    data = bytearray(VALID[base % len(VALID)])
    for position, mask in flips:
        data[position % len(data)] ^= mask or 1
    return bytes(data[: cut % (len(data) + 1)]) + tail


HEADERS = [
    b"SSN",
    b"SSN\x01\x00",
    b"SSN\x01\x01",
    b"SSN\x01\x02",
    b"SSN\x02\x00",  # wrong codec version
    b"SSN\x01\x09",  # unknown compression
    b"\x1f\x8b",
    b"SSE\x01\x02k1",
    b"SSE\x02\x02k1",  # wrong envelope version
    b"SSE\x01\x02zz",  # unknown key id
    b"SSF\x01",
]
flips = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3)
stored_bytes = st.one_of(
    st.binary(max_size=300),
    st.builds(bytes.__add__, st.sampled_from(HEADERS), st.binary(max_size=200)),
    st.builds(mutate_payload, st.integers(0, 3), st.integers(0, 10**6), flips, st.binary(max_size=4)),
    st.builds(lambda doc: b"SSN\x01\x00" + json.dumps(doc).encode(), json_documents),
    st.builds(lambda doc: b"SSN\x01\x01" + zstandard.compress(json.dumps(doc).encode()), json_documents),
    st.builds(lambda doc: b"SSN\x01\x00" + json.dumps(doc).encode(), session_like),
    st.just(OTHER_KEYS.seal(VALID[1], associated_data=f"{NS}:victim".encode())),  # wrong key
    st.just(KEYS.seal(VALID[1], associated_data=f"{NS}:other".encode())),  # moved ciphertext
)


def check_stored_bytes(env: Env, raw: bytes) -> None:
    """Plant ``raw`` as a session's stored bytes: it decodes to that session or is corrupt."""
    cache = env.cache
    assert isinstance(cache, AtomicCache)

    async def scenario() -> None:
        current = await cache.get_entry("victim", namespace=NS)
        await cache.compare_and_set(
            "victim",
            raw,
            expected_version=current.version if current else 0,
            ttl=60,
            indexes=("user:victim-owner",),
            namespace=NS,
        )
        try:
            stored = await env.storage.load_session("victim")
        except CorruptSessionError as exc:
            assert f"{NS}:victim" in str(exc)
            with pytest.raises(CorruptSessionError):
                await env.storage.load_sessions(["victim"])
            page = await env.manager.list_sessions(user_id="victim-owner")
            assert page.unreadable == ["victim"] and page.sessions == []
        else:
            assert stored is not None and stored.state.session_id == "victim"
            again = env.storage.decode("victim", env.storage.encode(stored.state), 1)
            assert again.model_dump(exclude={"revision"}) == stored.state.model_dump(exclude={"revision"})

    env.run(scenario())


BYTES_EXAMPLES = [example(raw=VALID[0]), example(raw=VALID[2]), example(raw=VALID[3]), example(raw=b"")]


@FAST
@with_examples(BYTES_EXAMPLES)
@given(raw=stored_bytes)
def test_stored_bytes_decode_or_raise_corrupt_session_error(env: Env, raw: bytes) -> None:
    check_stored_bytes(env, raw)


@REMOTE
@with_examples(BYTES_EXAMPLES)
@given(raw=stored_bytes)
def test_stored_bytes_on_redis_and_s3(remote_env: Env, raw: bytes) -> None:
    check_stored_bytes(remote_env, raw)


BOMBS = {
    "zstd": lambda: b"SSN\x01\x01" + zstandard.ZstdCompressor(level=1).compress(b"\x00" * (80 * 1024 * 1024)),
    "zstd-no-size": lambda: (
        b"SSN\x01\x01"
        + zstandard.ZstdCompressor(write_content_size=False).compress(b"[" * (70 * 1024 * 1024))
    ),
    "gzip": lambda: gzip.compress(b" " * (80 * 1024 * 1024), compresslevel=1),
}


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_decompression_bombs_are_refused(envs: dict[str, Env], kind: str) -> None:
    env = envs["memory"]
    bomb = BOMBS[kind]()
    assert len(bomb) < 1_000_000

    async def scenario() -> None:
        await env.cache.set("bomb", bomb, ttl=60, namespace=NS)
        with pytest.raises(CorruptSessionError, match=r"expands past|does not decompress"):
            await env.storage.load_session("bomb")

    env.run(scenario())


def test_zstd_frame_declaring_an_absurd_size_is_corrupt(envs: dict[str, Env]) -> None:
    """Found by fuzz/run.py: a frame header claiming ~2**63 bytes made zstandard's one-shot
    decompress raise MemoryError, which escaped the typed errors."""
    env = envs["memory"]
    lying = bytes.fromhex("53534e010128b52ffdd65001200421000074727565")

    async def scenario() -> None:
        await env.cache.set("liar", lying, ttl=60, namespace=NS)
        with pytest.raises(CorruptSessionError):
            await env.storage.load_session("liar")

    env.run(scenario())


def test_zlib_stream_that_is_not_gzip_is_corrupt(envs: dict[str, Env]) -> None:
    env = envs["memory"]

    async def scenario() -> None:
        await env.cache.set("z", b"\x1f\x8b" + zlib.compress(b"{}"), ttl=60, namespace=NS)
        with pytest.raises(CorruptSessionError):
            await env.storage.load_session("z")

    env.run(scenario())

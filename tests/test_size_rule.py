"""Nothing is stored that cannot be read back (the size rule in ``serverless_sessions.codec``).

On every built-in adapter, plain and encrypted: whatever ``store_session`` accepts,
``retrieve_session`` returns equal, also through a reader configured with a smaller
``max_session_bytes``; whatever it refuses leaves the previous revision readable.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serverless_sessions.adapters.cache.base import CacheBase
from serverless_sessions.codec import BODY_CEILING, Codec
from serverless_sessions.encryption import KeyRing, generate_key
from serverless_sessions.errors import InvalidSessionError, SessionTooLargeError
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.model import SessionState
from serverless_sessions.storage.cache_storage import ACBCacheStorage
from tests.conftest import unique_namespace

KEYS = KeyRing.from_setting(generate_key("size-rule"))
LIMIT = 16 * 1024  # small, so that content crosses it in a few milliseconds
ENVELOPE_HEADER = 5
SEAL_OVERHEAD = 33 + len("size-rule")


@dataclass
class Stores:
    """A writer with ``max_size=LIMIT`` and a reader with the smallest limit, same namespace."""

    writer: ACBCacheStorage
    reader: ACBCacheStorage


@pytest.fixture
async def stores(cache: CacheBase) -> AsyncIterator[dict[bool, Stores]]:
    """Plain and encrypted pairs over the test's cache, in namespaces of their own."""
    built: dict[bool, Stores] = {}
    for encrypted in (False, True):
        namespace = unique_namespace()
        encryptor = KEYS if encrypted else None
        built[encrypted] = Stores(
            ACBCacheStorage(cache, namespace, codec=Codec(max_size=LIMIT), encryptor=encryptor),
            ACBCacheStorage(cache, namespace, codec=Codec(max_size=64), encryptor=encryptor),
        )
    yield built
    for pair in built.values():
        await pair.writer.close()
        await pair.reader.close()


def nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def random_hex(size: int, seed: int) -> str:
    return random.Random(seed).randbytes(size // 2).hex()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
# Long runs of one character: the body grows past LIMIT while compressing to almost nothing.
repeated = st.builds(str.__mul__, st.characters(codec="utf-8"), st.integers(0, 3 * LIMIT))
# Random hex: compresses only 2x, so stored sizes near the limit are reached too.
incompressible = st.builds(random_hex, st.integers(0, 3 * LIMIT), st.integers(0, 2**32))
leaves = st.one_of(scalars, repeated, incompressible)
# Both sides of the 64-level nesting limit.
deep = st.builds(nested, st.integers(55, 70), leaves)
values = st.recursive(
    st.one_of(leaves, deep),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=6,
)
updates = st.fixed_dictionaries(
    {},
    optional={
        "metadata": st.dictionaries(st.text(max_size=8), values, max_size=3),
        "reflection_data": st.dictionaries(st.text(max_size=8), values, max_size=2),
        "conversation_history": st.lists(values, max_size=3),
        "permissions": st.lists(st.text(max_size=10), max_size=3),
    },
)


def apply_in_place(state: SessionState, update: dict[str, Any]) -> None:
    """In-place edits bypass assignment validation: only the codec stands before the cache."""
    for name, value in update.items():
        field = getattr(state, name)
        if isinstance(field, dict):
            field.update(value)
        else:
            field.extend(value)


def json_body(state: SessionState) -> bytes:
    return state.model_dump_json().encode("utf-8")


# Every example uses a session id of its own, so sharing the function-scoped cache (and its
# namespaces) across examples is sound: no example sees another's data.
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(update=updates, encrypted=st.booleans())
async def test_stored_means_readable_refused_means_untouched(
    stores: dict[bool, Stores], update: dict[str, Any], encrypted: bool
) -> None:
    writer, reader = stores[encrypted].writer, stores[encrypted].reader
    session_id = f"p-{uuid.uuid4().hex}"
    first = SessionState(session_id=session_id, user_id="u", project_id="p", metadata={"rev": 1})
    await writer.store_session(first, ttl_seconds=600)
    state = await writer.retrieve_session(session_id)
    assert state is not None
    apply_in_place(state, update)
    try:
        await writer.store_session(state)
    except SessionTooLargeError as exc:
        assert (exc.size, exc.limit) == (len(json_body(state)), LIMIT)
        assert exc.size > LIMIT
        assert await reader.retrieve_session(session_id) == first
        return
    except InvalidSessionError as exc:
        assert "nested deeper than 64 levels" in str(exc)
        assert await reader.retrieve_session(session_id) == first
        return
    assert len(json_body(state)) <= LIMIT
    stored = await reader.load_session(session_id)
    assert stored is not None
    assert stored.state == state
    assert json_body(stored.state) == json_body(state)  # same types, same float bits
    assert stored.size <= LIMIT + ENVELOPE_HEADER + (SEAL_OVERHEAD if encrypted else 0)


async def test_70_mb_of_one_character_is_refused_and_the_previous_revision_kept(
    cache: CacheBase,
) -> None:
    """It compresses to ~2 KB: a limit on the stored size alone let it in, and no reader could
    then decompress it (past the 64 MiB ceiling)."""
    blob = "x" * (70 * 1024 * 1024)
    for codec in (Codec(), Codec(max_size=BODY_CEILING)):
        async with ACBCacheStorage(cache, unique_namespace(), codec=codec) as storage:
            manager = ServerlessSessionManager(storage)
            session_id = await manager.create_session("u", "p", {"v": 1})
            with pytest.raises(SessionTooLargeError, match=rf" {codec.max_size}\b"):
                await manager.update_session(session_id, {"metadata": {"blob": blob}})
            state = await manager.get_session(session_id)
            assert state is not None and state.metadata == {"v": 1} and state.revision == 1


async def test_a_reader_with_a_smaller_limit_reads_what_a_larger_writer_stored(
    cache: CacheBase,
) -> None:
    namespace = unique_namespace()
    writer = ACBCacheStorage(cache, namespace, codec=Codec(max_size=BODY_CEILING))
    reader = ACBCacheStorage(cache, namespace, codec=Codec(max_size=64))
    state = SessionState(session_id="big", user_id="u", project_id="p", metadata={"blob": "y" * 10_000_000})
    await writer.store_session(state, ttl_seconds=600)
    assert await reader.retrieve_session("big") == state

"""Fuzz cases: each builds one hostile input from a seed and checks the library's promise.

The promise is the same as in ``tests/test_hostile_input.py``: every input either round-trips
exactly or raises a :class:`~serverless_sessions.errors.SessionError` subclass; nothing else
escapes, and no error message shows key material. A case returns normally when the promise
holds and raises :class:`Broken` (with a description) when it does not. Each case is a pure
function of its seed, so a failure is replayed with ``python fuzz/run.py --replay KIND SEED``.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import random
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import zstandard

from serverless_sessions.adapters.cache.base import AtomicCache
from serverless_sessions.codec import Codec
from serverless_sessions.encryption import KeyRing, generate_key
from serverless_sessions.errors import (
    CorruptSessionError,
    InvalidSessionError,
    SessionError,
)
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.model import SessionState
from serverless_sessions.storage.cache_storage import ACBCacheStorage

NS = "fuzz"
CURSOR_USER = "cursor-user"  # the runner gives this user a few sessions to page through
KEY = generate_key("fz")
OTHER_KEY = generate_key("fz")  # same id, another key
RING = KeyRing.from_setting(KEY)
OTHER_RING = KeyRing.from_setting(OTHER_KEY)
CODECS = [Codec(compression="none"), Codec(), Codec(compression="brotli", brotli_quality=1)]


class Broken(Exception):
    """The library broke its promise on this input."""


@dataclass
class Target:
    """A storage under test, with the manager over it."""

    name: str
    storage: ACBCacheStorage
    manager: ServerlessSessionManager


# -- generators ---------------------------------------------------------------------------------

_TRICKY = ["", " ", "..", "../x", "a/b", "\x00", "\ud800", "\udfff", "x" * 129, "é", "a:b", "{t}"]


def text(rng: random.Random, limit: int = 40) -> str:
    """Any text, lone surrogates and control characters included."""
    pick = rng.random()
    if pick < 0.15:
        return rng.choice(_TRICKY)
    if pick < 0.5:
        alphabet = "abcXYZ019_.:-/\\ \t\n{}[]\"'%"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, limit)))
    return "".join(chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0, 0x10FFFF)]))
                   for _ in range(rng.randint(0, limit)))  # fmt: skip


def valid_id(rng: random.Random) -> str:
    """An id in the allowed charset, including the separators adapters must keep apart."""
    alphabet = "abcXYZ019_.:-"
    return rng.choice("aZ0") + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 127)))


def scalar(rng: random.Random) -> Any:
    """A JSON scalar, or something that only looks like one."""
    makers: list[Callable[[], Any]] = [
        lambda: None,
        lambda: rng.random() < 0.5,
        lambda: rng.randint(-(2**70), 2**70),
        lambda: rng.choice([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]),
        lambda: rng.uniform(-1e12, 1e12),
        lambda: text(rng),
        lambda: rng.choice([b"x", {1}, (1, 2), 1j, object(), frozenset()]),
    ]
    return rng.choice(makers)()


def value(rng: random.Random, depth: int = 0) -> Any:
    """A nested value: lists and dicts (some with non-string keys), sometimes very deep."""
    roll = rng.random()
    if roll < 0.02:
        deep: Any = scalar(rng)
        for _ in range(rng.randint(60, 400)):
            deep = [deep] if rng.random() < 0.5 else {"k": deep}
        return deep
    if roll < 0.03:
        return (
            "z" * rng.randint(0, 3_000_000)
            if rng.random() < 0.5
            else rng.randbytes(rng.randint(0, 700_000)).hex()
        )
    if depth > 4 or roll < 0.45:
        return scalar(rng)
    if roll < 0.7:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    keys = [text(rng, 10) if rng.random() < 0.9 else rng.choice([1, None, (1,)]) for _ in range(5)]
    return {key: value(rng, depth + 1) for key in keys[: rng.randint(0, 5)]}


def json_value(rng: random.Random, depth: int = 0) -> Any:
    """What ``json.dumps`` accepts (NaN and huge integers included): for raw stored bytes."""
    roll = rng.random()
    if depth > 4 or roll < 0.5:
        return rng.choice(
            [None, True, rng.randint(-(2**70), 2**70), rng.uniform(-1e9, 1e9), math.nan, text(rng)]
        )
    if roll < 0.75:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {text(rng, 10): json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def session_document(rng: random.Random) -> dict[str, Any]:
    """A session-shaped JSON document with random (often invalid) field values."""
    document: dict[str, Any] = {"session_id": "victim", "user_id": "u", "project_id": "p"}
    for name in ("created_at", "last_activity", "metadata", "revision", "permissions", "extra"):
        if rng.random() < 0.4:
            document[name] = json_value(rng)
    if rng.random() < 0.3:
        document[rng.choice(list(document))] = json_value(rng)
    return document


def valid_state(rng: random.Random, session_id: str = "victim") -> SessionState:
    """A valid session with some random (JSON-clean) content."""
    note = "".join(rng.choice("abcdefgh ") for _ in range(rng.randint(0, 3000)))
    return SessionState(
        session_id=session_id,
        user_id="u",
        project_id="p",
        metadata={"note": note, "n": rng.randint(0, 10**9)},
        conversation_history=[{"role": "user", "content": note[:50]}],
    )


def payload(rng: random.Random) -> bytes:
    """Stored bytes: a valid envelope of some kind, mutated in some way, or noise."""
    state = valid_state(rng)
    ad = f"{NS}:victim".encode()
    body = state.model_dump_json().encode()
    bases = [
        lambda: rng.choice(CODECS).encode(state),
        lambda: RING.seal(rng.choice(CODECS).encode(state), associated_data=ad),
        lambda: OTHER_RING.seal(CODECS[1].encode(state), associated_data=ad),
        lambda: RING.seal(CODECS[1].encode(state), associated_data=b"fuzz:other"),
        lambda: gzip.compress(body),
        lambda: b"SSN\x01\x00" + json.dumps(session_document(rng)).encode(),
        lambda: b"SSN\x01\x01" + zstandard.compress(json.dumps(json_value(rng)).encode()),
        lambda: b"\x1f\x8b" + zlib.compress(body),
        lambda: rng.randbytes(rng.randint(0, 400)),
    ]
    data = bytearray(rng.choice(bases)())
    for _ in range(rng.choice([0, 0, 1, 1, 2, 5])):
        mutate(rng, data)
    return bytes(data)


def mutate(rng: random.Random, data: bytearray) -> None:
    """One random edit: flip, overwrite, insert, delete, truncate, or a new header."""
    kind = rng.randrange(6)
    position = rng.randrange(len(data) + 1)
    if kind == 0 and data:
        data[position % len(data)] ^= 1 << rng.randrange(8)
    elif kind == 1 and data:
        data[position % len(data)] = rng.randrange(256)
    elif kind == 2:
        data[position:position] = rng.randbytes(rng.randint(1, 8))
    elif kind == 3:
        del data[position : position + rng.randint(1, 16)]
    elif kind == 4:
        del data[position:]
    else:
        data[:5] = rng.choice([b"SSN\x01\x00", b"SSN\x02\x01", b"SSE\x01\x02", b"SSE\x09\x02"])


# -- checks ------------------------------------------------------------------------------------


def _no_key_material(exc: BaseException) -> None:
    message = f"{exc} {exc!r}"
    for secret in (KEY.partition(":")[2], OTHER_KEY.partition(":")[2]):
        if secret[:16] in message:
            raise Broken(f"key material in an error message: {message[:300]}")


async def _expect(call: Awaitable[Any]) -> tuple[Any, SessionError | None]:
    try:
        return await call, None
    except SessionError as exc:
        _no_key_material(exc)
        return None, exc
    except Exception as exc:
        raise Broken(f"{type(exc).__name__} escaped: {exc!r}"[:500]) from exc


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


async def case_stored_bytes(target: Target, rng: random.Random) -> str:
    """Plant random or mutated bytes as a session; read must decode or raise Corrupt."""
    data = payload(rng)
    cache = target.storage.cache
    assert isinstance(cache, AtomicCache)
    entry = await cache.get_entry("victim", namespace=NS)
    await cache.compare_and_set(
        "victim", data, expected_version=entry.version if entry else 0, ttl=600, namespace=NS
    )
    stored, error = await _expect(target.storage.load_session("victim"))
    if error is not None:
        if not isinstance(error, CorruptSessionError):
            raise Broken(f"{type(error).__name__} (not CorruptSessionError) for stored bytes")
        return "refused"
    if stored is None or stored.state.session_id != "victim":
        raise Broken(f"decoded to {stored!r:.200}")
    return "decoded"


async def case_contents(target: Target, rng: random.Random) -> str:
    """Random content: stored and read back exactly, or refused with nothing written."""
    content = value(rng)
    field = rng.choice(["metadata", "conversation_history", "reflection_data"])
    data = {field: {"v": content} if field != "conversation_history" else [{"v": content}]}
    sid, error = await _expect(target.manager.create_session("u", "p", data, ttl_hours=1))
    if error is not None:
        return "refused"
    state, error = await _expect(target.manager.get_session(sid))
    if error is not None or state is None:
        raise Broken(f"accepted content unreadable: {error!r:.300}")
    got = getattr(state, field)
    got = got[0]["v"] if field == "conversation_history" else got["v"]
    if not _same(got, content):
        raise Broken(f"{field} changed on the round trip: {content!r:.200} -> {got!r:.200}")
    await target.manager.delete_session(sid)
    return "round-trip"


async def case_ids(target: Target, rng: random.Random) -> str:
    """Random session/user/project ids: full life cycle, or InvalidSessionError."""
    session_id = text(rng, 140) if rng.random() < 0.5 else valid_id(rng)
    user_id, project_id = (text(rng, 30) if rng.random() < 0.5 else valid_id(rng) for _ in "up")
    manager = target.manager
    created, error = await _expect(
        manager.create_session(user_id, project_id, session_id=session_id, ttl_hours=1)
    )
    if error is not None:
        if not isinstance(error, InvalidSessionError):
            raise Broken(f"{type(error).__name__} for ids {session_id!r:.80}: {error}")
        return "refused"
    state = await manager.get_session(created)
    if state is None or (state.user_id, state.project_id) != (user_id, project_id):
        raise Broken(f"ids did not round-trip: {session_id!r:.80}")
    if created not in await manager.list_user_sessions(user_id):
        raise Broken(f"{created!r:.80} missing from its user's index")
    if not await manager.delete_session(created):
        raise Broken(f"{created!r:.80} could not be deleted")
    return "round-trip"


async def case_key_setting(target: Target, rng: random.Random) -> str:
    """Random ``encryption_keys`` settings: a KeyRing or a ConfigurationError without the key."""
    parts = [generate_key(rng.choice(["a", "b", "k-1"])) for _ in range(rng.randint(1, 3))]
    raw = bytearray(",".join(parts).encode())
    for _ in range(rng.randint(0, 3)):
        mutate(rng, raw)
    setting = raw.decode("utf-8", "replace")
    try:
        KeyRing.from_setting(setting)
    except SessionError as exc:
        for part in parts:
            secret = part.partition(":")[2]
            if len(secret) > 12 and secret[4:16] in str(exc):
                raise Broken(f"key text in a configuration error: {exc}") from exc
        return "refused"
    except Exception as exc:
        raise Broken(f"{type(exc).__name__} escaped from KeyRing.from_setting: {exc!r}") from exc
    return "accepted"


_STAMPS = ["2020-01-01T00:00:00", "2020-01-01T00:00:00+00:00", "2020-01-01", "9999-12-31T23:59"]


async def case_cursor(target: Target, rng: random.Random) -> str:
    """Random page cursors over a user with sessions: a page or InvalidSessionError."""
    stamp = rng.choice([*_STAMPS, text(rng, 30)])
    inner = json.dumps(rng.choice([[stamp, text(rng, 10)], json_value(rng)]))
    cursor = rng.choice([text(rng, 60), base64.urlsafe_b64encode(inner.encode()).decode()])
    _, error = await _expect(target.manager.list_sessions(user_id=CURSOR_USER, cursor=cursor))
    if error is not None and not isinstance(error, InvalidSessionError):
        raise Broken(f"{type(error).__name__} for cursor {cursor!r:.80}")
    return "refused" if error else "accepted"


Case = Callable[[Target, random.Random], Awaitable[str]]
CASES: dict[str, tuple[Case, float]] = {
    "stored-bytes": (case_stored_bytes, 0.45),
    "contents": (case_contents, 0.2),
    "ids": (case_ids, 0.2),
    "key-setting": (case_key_setting, 0.1),
    "cursor": (case_cursor, 0.05),
}
"""Each kind of case with its share of the run."""

"""``RedisStorage``: the original Redis layout, made correct.

Layout (unchanged)::

    {key_prefix}session:{id}            gzip JSON of the session, with the session's TTL
    {key_prefix}index:user:{user_id}    SET of session ids
    {key_prefix}index:project:{pid}     SET of session ids

Guarantees:

* A write ``WATCH``-es the session key and both index keys, reads the stored revision and TTL,
  checks the revision, then sets the value and adds the id to both indexes in one
  ``MULTI``/``EXEC``: a stale writer gets :class:`~serverless_sessions.errors.SessionConflictError`
  and nothing is half-written. ``ttl_seconds=None`` keeps the stored TTL (``KEEPTTL``).
* An index set never expires before a member: each write extends its TTL to at least the
  member's (or removes it when the member has none) and never shortens it. Index sets written by
  the original module may already have expired before their members; those entries come back
  when the session is next written.
* Listing never uses ``KEYS``: ids come from ``SCAN`` or ``SSCAN`` and are checked for existence,
  so expired and deleted sessions are never listed; ids containing ``:`` come back whole.
* Keys of another layout are not ours, whatever their name: a session key that is not a
  string, or an index key that is not a set, is never listed, read (it reads as absent),
  deleted or pruned, and a write refuses to overwrite it (:class:`StorageError`) — so a
  store sharing the key space can never make this one fail with ``WRONGTYPE``, nor be
  damaged by it. Keys whose names are not UTF-8 are skipped too. Checked with ``TYPE`` rather
  than ``SCAN ... TYPE``, which Redis before 6.0 lacks.
* :meth:`RedisStorage.cleanup_expired_sessions` removes the ids of vanished sessions from the
  index sets (Redis expires the sessions themselves), each batch under ``WATCH`` so a session
  re-created meanwhile keeps its entry. It returns how many distinct ids it removed.
* Expiries are relative (``PX``/``PEXPIRE``), so the client's clock never matters.
* A lost connection or a timeout is retried twice with a short jittered backoff (well under a
  second in all), then raised as :class:`~serverless_sessions.errors.StorageUnavailableError`.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from pydantic import Field, SecretStr
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ResponseError, WatchError

from serverless_sessions.adapters.cache.redis import BACKEND_ERRORS, translate
from serverless_sessions.errors import ClosedError, CorruptSessionError, SessionError, StorageError
from serverless_sessions.model import SessionState
from serverless_sessions.storage.base import StoredSession
from serverless_sessions.storage.legacy._common import (
    LegacyConfig,
    LegacyStorage,
    decode_session,
    encode_session,
    next_revision,
    parse_config,
    session_id_from_name,
    ttl_for_write,
)
from serverless_sessions.ttl import KEEP_TTL, now

__all__ = ["RedisStorage"]

_T = TypeVar("_T")
_ATTEMPTS = 16
_BATCH = 500
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _bytes(value: bytes | str) -> bytes:
    # The client is built without decode_responses, so values are bytes; str is for the types.
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _text(raw: bytes | str) -> str | None:
    """A key name or set member as text; ``None`` if it is not UTF-8 (so not ours)."""
    try:
        return _bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _wrong_type(exc: BaseException) -> bool:
    """Whether Redis refused a command because the key holds another type (another layout)."""
    return isinstance(exc, ResponseError) and "WRONGTYPE" in str(exc)


class _RedisConfig(LegacyConfig):
    host: str = "localhost"
    port: int = Field(default=6379, ge=1, le=65535)
    db: int = Field(default=0, ge=0)
    password: SecretStr | None = None
    key_prefix: str = "session_mgmt:"
    socket_timeout: float = Field(default=5.0, gt=0)


class RedisStorage(LegacyStorage):
    """Deprecated Redis storage: config ``host, port, db, password, key_prefix``.

    Optional keys: ``default_ttl_seconds`` (new sessions stored without a TTL; default 24 h,
    ``None`` for never), ``socket_timeout``.
    """

    backend = "legacy-redis"
    replacement = "ACBCacheStorage(redis.Cache.from_url('redis://host:6379/0'))"

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = parse_config(_RedisConfig, config, "RedisStorage")
        self._client: Redis | None = None
        prefix = self.config.key_prefix
        self._session_prefix = f"{prefix}session:"
        self._where = f"{self.config.host}:{self.config.port}/{self.config.db}"

    def __repr__(self) -> str:
        return f"RedisStorage({self._where}, key_prefix={self.config.key_prefix!r})"

    # -- plumbing ----------------------------------------------------------------------------

    def _redis(self) -> Redis:
        if self._closed:
            raise ClosedError(f"RedisStorage ({self._where})")
        if self._client is None:
            c = self.config
            self._client = Redis(
                host=c.host,
                port=c.port,
                db=c.db,
                password=c.password.get_secret_value() if c.password else None,
                socket_timeout=c.socket_timeout,
                socket_connect_timeout=c.socket_timeout,
                retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2),
            )
        return self._client

    @contextlib.contextmanager
    def _errors(self, operation: str, session_id: str | None = None) -> Iterator[None]:
        try:
            yield
        except SessionError:
            raise  # already ours (StorageUnavailableError is an OSError: keep it from re-wrapping)
        except BACKEND_ERRORS as exc:
            raise translate(
                exc, backend=self.backend, operation=operation, key=session_id, where=self._where
            ) from exc

    def _key(self, session_id: str) -> str:
        return self._session_prefix + session_id

    def _indexes(self, state: SessionState) -> tuple[str, str]:
        prefix = self.config.key_prefix
        return f"{prefix}index:user:{state.user_id}", f"{prefix}index:project:{state.project_id}"

    async def _of_type(self, names: Sequence[str], kind: bytes) -> list[str]:
        """The keys among ``names`` that exist and hold a Redis ``kind`` (one pipeline per batch)."""
        found: list[str] = []
        for start in range(0, len(names), _BATCH):
            batch = names[start : start + _BATCH]
            async with self._redis().pipeline(transaction=False) as pipe:
                for name in batch:
                    pipe.type(name)
                types = await pipe.execute()
            found.extend(name for name, held in zip(batch, types, strict=True) if _bytes(held) == kind)
        return found

    async def _existing(self, session_ids: Sequence[str]) -> list[str]:
        """The ids among ``session_ids`` whose session key exists in this layout (a string)."""
        keys = await self._of_type([self._key(session_id) for session_id in session_ids], b"string")
        return [key[len(self._session_prefix) :] for key in keys]

    async def _scan(self, prefix: str, kind: bytes) -> AsyncIterator[str]:
        """Keys starting with ``prefix`` that hold a Redis ``kind``; keys of other layouts skipped."""
        pattern = _GLOB_SPECIAL.sub(r"\\\1", prefix) + "*"
        cursor = 0
        while True:
            cursor, raw_names = await self._redis().scan(cursor, match=pattern, count=_BATCH)
            names = [name for raw in raw_names if (name := _text(raw)) is not None]
            for name in await self._of_type(names, kind):
                yield name
            if cursor == 0:
                return

    async def _members(self, index: str) -> set[str]:
        """The ids in ``index``; none if the key holds another layout's data."""
        try:
            return {
                member
                async for raw in self._redis().sscan_iter(index, count=_BATCH)
                if (member := _text(raw)) is not None
            }
        except ResponseError as exc:
            if _wrong_type(exc):
                return set()
            raise

    # -- LegacyStorage hooks -----------------------------------------------------------------

    async def _load(self, session_id: str) -> StoredSession | None:
        key = self._key(session_id)
        with self._errors("load", session_id):
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                data, pttl = await pipe.execute(raise_on_error=False)
            if isinstance(data, Exception) and not _wrong_type(data):
                raise data
        if data is None or isinstance(data, Exception):  # absent, or another layout's key
            return None
        expires_at = now() + pttl / 1000 if pttl > 0 else None
        return StoredSession(
            decode_session(_bytes(data), session_id=session_id, key=key), expires_at, len(data)
        )

    async def _watched(self, operation: str, subject: str, body: Callable[[Pipeline], Awaitable[_T]]) -> _T:
        """Run ``body`` (``WATCH`` ... ``MULTI`` ... ``EXEC``) again while a watched key changes.

        A retry re-reads everything, so a concurrent change that matters (a newer revision)
        surfaces as the caller's own error on the next round.
        """
        with self._errors(operation, subject):
            async with self._redis().pipeline(transaction=True) as pipe:
                for _ in range(_ATTEMPTS):
                    try:
                        return await body(pipe)
                    except WatchError:
                        continue
        raise StorageError(f"legacy-redis {operation} of {subject!r} lost {_ATTEMPTS} races in a row")

    async def _store(self, state: SessionState, ttl: float | None) -> int:
        key = self._key(state.session_id)
        indexes = self._indexes(state)

        async def body(pipe: Pipeline) -> int:
            await pipe.watch(key, *indexes)
            for name, kind in {key: b"string", **dict.fromkeys(indexes, b"set")}.items():
                held = _bytes(await pipe.type(name))
                if held not in (b"none", kind):
                    raise StorageError(
                        f"legacy-redis store of {state.session_id!r}: key {name!r} holds a Redis "
                        f"{held.decode()}, not the original layout's data; refusing to overwrite "
                        "it (give each storage a key_prefix of its own)"
                    )
            data = await pipe.get(key)
            member_pttl = await pipe.pttl(key)
            index_pttls = [await pipe.pttl(index) for index in indexes]
            stored = (
                None if data is None else decode_session(_bytes(data), session_id=state.session_id, key=key)
            )
            revision = next_revision(state, stored.revision if stored else None)
            ttl_arg = ttl_for_write(ttl, exists=stored is not None, default=self.config.default_ttl_seconds)
            payload = encode_session(state, revision)
            pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
            if ttl_arg is KEEP_TTL:
                pipe.set(key, payload, keepttl=True)
                member_ms = member_pttl if member_pttl >= 0 else None
            elif ttl_arg is None:
                pipe.set(key, payload)
                member_ms = None
            else:
                member_ms = math.ceil(ttl_arg * 1000)
                pipe.set(key, payload, px=member_ms)
            for index, index_pttl in zip(indexes, index_pttls, strict=True):
                pipe.sadd(index, state.session_id)
                if member_ms is None:
                    pipe.persist(index)
                elif index_pttl != -1:  # -1: already never expires; -2: a new set
                    pipe.pexpire(index, max(index_pttl, member_ms))
            await pipe.execute()
            return revision

        return await self._watched("store", state.session_id, body)

    async def _delete(self, session_id: str) -> bool:
        key = self._key(session_id)

        async def body(pipe: Pipeline) -> bool:
            await pipe.watch(key)
            try:
                data = await pipe.get(key)
            except ResponseError as exc:
                if _wrong_type(exc):  # another layout's key: not ours to delete
                    return False
                raise
            if data is None:
                return False
            try:
                state = decode_session(_bytes(data), session_id=session_id, key=key)
            except CorruptSessionError:
                indexes: Sequence[str] = ()  # owners unknown; cleanup prunes the stale entries
            else:
                indexes = self._indexes(state)
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.delete(key)
            for index in indexes:
                pipe.srem(index, session_id)
            await pipe.execute()
            return True

        return await self._watched("delete", session_id, body)

    async def _list(self, user_id: str | None, project_id: str | None) -> list[str]:
        if user_id is None and project_id is None:
            return [session_id async for session_id in self._iter_ids()]
        prefix = self.config.key_prefix
        wanted = [
            f"{prefix}index:{kind}:{owner}"
            for kind, owner in (("user", user_id), ("project", project_id))
            if owner is not None
        ]
        with self._errors("list"):
            members = set.intersection(*[await self._members(index) for index in wanted])
            return await self._existing(sorted(members))

    async def _iter_ids(self) -> AsyncIterator[str]:
        with self._errors("scan"):
            async for name in self._scan(self._session_prefix, b"string"):
                session_id = session_id_from_name(name, self._session_prefix, "")
                if session_id is not None:
                    yield session_id

    async def _cleanup(self) -> int:
        removed: set[str] = set()
        with self._errors("cleanup"):
            indexes = [name async for name in self._scan(f"{self.config.key_prefix}index:", b"set")]
            for index in indexes:
                members = sorted(await self._members(index))
                for start in range(0, len(members), _BATCH):
                    removed.update(await self._prune(index, members[start : start + _BATCH]))
        return len(removed)

    async def _prune(self, index: str, members: Sequence[str]) -> list[str]:
        """Remove from ``index`` the ``members`` whose session is gone, atomically per batch."""

        async def body(pipe: Pipeline) -> list[str]:
            await pipe.watch(*(self._key(member) for member in members))
            alive = set(await self._existing(members))  # read elsewhere; the WATCH still guards
            dead = [member for member in members if member not in alive]
            if dead:
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.srem(index, *dead)
                await pipe.execute()
            return dead

        return await self._watched("cleanup", index, body)

    async def _ping(self) -> None:
        with self._errors("ping"):
            await self._redis().ping()

    def _public(self) -> dict[str, Any]:
        c = self.config
        return {
            "host": c.host,
            "port": c.port,
            "db": c.db,
            "key_prefix": c.key_prefix,
            "password_set": c.password is not None,
        }

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with self._errors("close"):
                await client.aclose()
        await super().close()

"""``ACBCacheStorage``: the plan's storage, a thin layer over any cache adapter.

The storage owns the envelope (codec), optional encryption and the key layout; the adapter only
moves bytes. Within its namespace a session lives at key ``<session_id>`` and is listed in the
indexes ``user:<user_id>`` and ``project:<project_id>``, maintained by the adapter atomically with
the write (:class:`~serverless_sessions.adapters.cache.base.AtomicCache`). Writes are
compare-and-set on ``SessionState.revision``, so a stale writer gets
:class:`~serverless_sessions.errors.SessionConflictError` instead of silently erasing a newer
update.

Where the cache keeps a message log (:class:`~serverless_sessions.adapters.cache.base.AppendableCache`),
a session is its value -- the session as its last whole write stored it, messages included --
followed by the messages appended since, each an item of the key's log, encoded and sealed on its
own (associated data ``<namespace>:<session_id>#<position in the log>`` binds it to its session
and place). A turn reads the last messages and appends new ones without touching the rest; a
whole write stores the whole conversation in the value again and empties the log, so it costs
what it cost without a log. The size rule covers both: each message alone, and the value plus
every appended message together, within ``max_session_bytes`` as JSON, refused before anything
is stored.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from serverless_sessions.adapters.cache.base import (
    KEEP_TTL,
    AppendableCache,
    AtomicCache,
    CacheBase,
    Entry,
    IndexedCache,
    LogSlice,
    PingableCache,
    RecentCache,
    ScannableCache,
    TTLArg,
    gather_bounded,
    validate_namespace,
)
from serverless_sessions.codec import Codec, is_plaintext
from serverless_sessions.errors import (
    CapabilityNotSupportedError,
    ConfigurationError,
    CorruptSessionError,
    DecryptionError,
    InvalidSessionUpdateError,
    SessionError,
    StorageError,
)
from serverless_sessions.ids import validate_owner_id, validate_session_id
from serverless_sessions.model import SessionState, mark_partial_history, record_revision
from serverless_sessions.storage.base import SessionStorage, StoredSession
from serverless_sessions.storage.batch import DEFAULT_CONCURRENCY
from serverless_sessions.storage.foreign import EmulatedAtomicCache, ForeignCache
from serverless_sessions.ttl import ttl_seconds

__all__ = ["ACBCacheStorage", "Encryptor"]

logger = logging.getLogger(__name__)

_PURGE_BATCH = 1000


class Encryptor(Protocol):
    r"""Seals envelopes at rest; ``associated_data`` binds a ciphertext to its key.

    Sealed bytes must not start like a plain envelope (``b"SSN"`` or gzip's ``b"\x1f\x8b"``):
    a reader would take them for plaintext and never open them, so such a write is refused.
    """

    def seal(self, plaintext: bytes, *, associated_data: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext``."""

    def open(self, sealed: bytes, *, associated_data: bytes, key: str) -> bytes:
        """Authenticate and decrypt; raise DecryptionError naming ``key`` on any failure."""


def user_index(user_id: str) -> str:
    """Index name listing one user's sessions."""
    return f"user:{user_id}"


def project_index(project_id: str) -> str:
    """Index name listing one project's sessions."""
    return f"project:{project_id}"


def _owner_indexes(user_id: str | None, project_id: str | None) -> list[str]:
    """The indexes of the owners given, the user's first; each id checked, whichever is read."""
    indexes = []
    if user_id is not None:
        indexes.append(user_index(validate_owner_id(user_id, what="user id")))
    if project_id is not None:
        indexes.append(project_index(validate_owner_id(project_id, what="project id")))
    return indexes


def _touched(state: SessionState, entry: Entry) -> SessionState:
    """``state`` with the activity of appends made since its head was written."""
    if entry.touched_at is not None:
        touched = datetime.fromtimestamp(entry.touched_at, UTC)
        if touched > state.last_activity:
            state.last_activity = touched
    return state


class ACBCacheStorage(SessionStorage):
    """Session storage over a cache adapter (built-in or foreign; see ``storage.foreign``).

    ``default_ttl`` (seconds, ``None`` = never) applies to new sessions stored without a TTL.
    ``owns_cache``: close the cache in :meth:`close` (true when a factory built it for us).
    ``require_encryption``: with an encryptor, refuse plaintext payloads (turn it on once
    ``reencrypt`` has completed; until then plaintext sessions stay readable).
    """

    def __init__(
        self,
        cache: CacheBase | ForeignCache,
        namespace: str = "session",
        *,
        codec: Codec | None = None,
        default_ttl: float | None = 86400,
        encryptor: Encryptor | None = None,
        owns_cache: bool = False,
        require_encryption: bool = False,
    ) -> None:
        super().__init__()
        self.namespace = validate_namespace(namespace)
        self.cache = cache
        self.codec = codec or Codec()
        self.default_ttl = ttl_seconds(default_ttl, what="default_ttl")
        self.encryptor = encryptor
        self.owns_cache = owns_cache
        if require_encryption and encryptor is None:
            raise ConfigurationError("require_encryption needs encryption keys")
        self.require_encryption = require_encryption
        if isinstance(cache, AtomicCache):
            self._atomic: AtomicCache = cache
        elif isinstance(cache, ForeignCache):
            self._atomic = EmulatedAtomicCache(cache, self.namespace)
        else:
            raise ConfigurationError(
                f"{type(cache).__name__} is not a cache: it needs async get/set/delete/exists"
            )
        # Built-in adapters take the namespace per call; a foreign cache was given it above.
        self._call_namespace = self.namespace if isinstance(cache, CacheBase) else None
        self.backend = str(getattr(cache, "backend", "foreign"))
        self._log = cache if isinstance(cache, AppendableCache) else None
        self.appends_messages = self._log is not None

    @property
    def message_log(self) -> AppendableCache | None:
        """The cache, when it keeps the messages in a log (see the module docstring)."""
        return self._log

    def __repr__(self) -> str:
        return (
            f"ACBCacheStorage(backend={self.backend!r}, namespace={self.namespace!r}, "
            f"compression={self.codec.compression!r}, encrypted={self.encryptor is not None})"
        )

    # -- bytes <-> sessions ------------------------------------------------------------------

    def _key_name(self, session_id: str) -> str:
        return f"{self.namespace}:{session_id}"

    def _message_name(self, session_id: str, position: int) -> str:
        """The name of the log item at ``position``, its associated data when sealed."""
        # '#' is in neither a namespace nor a session id: no message name equals another's.
        return f"{self._key_name(session_id)}#{position}"

    def _seal(self, envelope: bytes, name: str) -> bytes:
        if self.encryptor is None:
            return envelope
        sealed = self.encryptor.seal(envelope, associated_data=name.encode("utf-8"))
        if is_plaintext(sealed):
            raise ConfigurationError(
                f"encryptor {type(self.encryptor).__name__} sealed {name!r} into bytes that "
                "start like a plain envelope; readers would not decrypt them"
            )
        return sealed

    def _open(self, data: bytes, name: str) -> bytes:
        if not isinstance(data, bytes):
            raise CorruptSessionError(name, f"expected bytes, found {type(data).__name__}")
        if is_plaintext(data):
            if self.require_encryption:
                raise DecryptionError(name, "payload is not encrypted and plaintext is refused")
            return data
        if self.encryptor is None:
            raise DecryptionError(name, "payload is encrypted or foreign; no encryption keys set")
        return self.encryptor.open(data, associated_data=name.encode("utf-8"), key=name)

    def encode(self, state: SessionState) -> bytes:
        """The bytes stored for ``state`` whole (envelope, then sealed if encryption is on).

        Refuses, before anything is written, whatever :meth:`decode` would refuse.
        """
        return self._seal(self.codec.encode(state), self._key_name(state.session_id))

    def decode(self, session_id: str, data: bytes, version: int) -> SessionState:
        """Parse stored bytes for ``session_id``; every failure names the key."""
        key = self._key_name(session_id)
        state = self.codec.decode(self._open(data, key), key=key)
        if state.session_id != session_id:
            raise CorruptSessionError(key, f"payload belongs to session {state.session_id!r}")
        record_revision(state, version)
        return state

    def _encode_messages(
        self, session_id: str, messages: Sequence[Any], first: int
    ) -> tuple[list[bytes], int]:
        """The log items of ``messages`` placed from position ``first``, and their weight."""
        items: list[bytes] = []
        weight = 0
        for offset, message in enumerate(messages):
            body = self.codec.message_body(message, session_id=session_id, path=f"messages[{offset}]")
            weight += len(body) + 1  # and its comma in the whole session's JSON
            items.append(self._seal(self.codec.wrap(body), self._message_name(session_id, first + offset)))
        return items, weight

    def _decode_messages(self, session_id: str, window: LogSlice) -> list[Any]:
        messages = []
        for offset, item in enumerate(window.items):
            name = self._message_name(session_id, window.start + offset)
            messages.append(self.codec.decode_message(self._open(item, name), key=name))
        return messages

    def _stored(self, session_id: str, entry: Entry) -> StoredSession:
        state = self.decode(session_id, entry.value, entry.version)
        if self._log is None:  # the value holds the whole conversation
            return StoredSession(
                state, entry.expires_at, len(entry.value), message_count=len(state.conversation_history)
            )
        return StoredSession(
            _touched(state, entry),
            entry.expires_at,
            len(entry.value) + entry.log_weight,
            messages_in_head=len(state.conversation_history),
        )

    def assemble(
        self,
        session_id: str,
        entry: Entry,
        window: LogSlice,
        *,
        last: int | None = None,
        before: int | None = None,
    ) -> StoredSession | None:
        """The session of a value and a window of its log, cut to ``last`` / ``before``.

        Positions count the value's messages first, then the log's. ``None`` when ``window``
        misses log items the cut needs (it was read for another number of messages in the
        value): read again with the right one.
        """
        return self._cut(self._head(session_id, entry), entry, window, last=last, before=before)

    def _head(self, session_id: str, entry: Entry) -> SessionState:
        """The session as its stored value holds it (a message-log storage's head)."""
        if self._log is None:
            raise CapabilityNotSupportedError(self.cache, "message log", "reading a message log")
        return _touched(self.decode(session_id, entry.value, entry.version), entry)

    def _cut(
        self, state: SessionState, entry: Entry, window: LogSlice, *, last: int | None, before: int | None
    ) -> StoredSession | None:
        """:meth:`assemble` of a decoded head."""
        in_value = state.conversation_history
        total = len(in_value) + window.length
        end = total if before is None else max(0, min(before, total))
        start = 0 if last is None else max(0, end - last)
        first, stop = max(start, len(in_value)) - len(in_value), end - len(in_value)
        if first < stop and not window.start <= first <= stop <= window.start + len(window.items):
            return None
        if (start, end) != (0, total) or total != len(in_value):  # else the value holds them all
            held = window.items[max(0, first - window.start) : max(0, stop - window.start)]
            logged = self._decode_messages(state.session_id, LogSlice(held, first, 0, 0))
            messages = in_value[start:end] + logged
            # Parsed from JSON, so plain JSON already: no second validation of every message.
            state = state.model_copy(update={"conversation_history": messages})
            if (start, end) != (0, total):
                mark_partial_history(state)
        return StoredSession(
            state,
            entry.expires_at,
            len(entry.value) + window.weight,
            history_start=start,
            message_count=total,
            messages_in_head=len(in_value),
        )

    # -- SessionStorage ----------------------------------------------------------------------

    def _ns(self) -> str | None:
        return self._call_namespace

    async def store_session(self, session_state: SessionState, ttl_seconds: float | None = None) -> bool:
        await self.write(session_state, ttl=self._ttl_for(session_state, ttl_seconds))
        return True

    def _ttl_for(self, state: SessionState, ttl: float | None) -> TTLArg:
        if ttl is not None:
            return ttl
        return KEEP_TTL if state.revision > 0 else self.default_ttl

    async def store_session_keeping_history(
        self, session_state: SessionState, ttl_seconds: float | None = None, *, messages_in_head: int = 0
    ) -> bool:
        if self._log is None:
            return await super().store_session_keeping_history(
                session_state, ttl_seconds, messages_in_head=messages_in_head
            )
        await self.write(
            session_state, ttl=self._ttl_for(session_state, ttl_seconds), messages_in_head=messages_in_head
        )
        return True

    async def write(
        self, session_state: SessionState, *, ttl: TTLArg, messages_in_head: int | None = None
    ) -> Entry:
        """Compare-and-set ``session_state`` on its revision; bumps ``revision`` on success.

        Nothing is written when encoding fails (too large, not JSON) or the revision is stale.
        ``messages_in_head`` (message-log storages only) keeps the stored log: the value gets
        the state's first ``messages_in_head`` messages -- those the stored value held -- and the
        log keeps the rest. Without it the write is whole: every message goes into the value and
        the log is emptied.
        """
        self._check_open()
        if messages_in_head is not None and self._log is None:
            raise CapabilityNotSupportedError(self.cache, "message log", "keeping the stored messages")
        if session_state.has_partial_history and (messages_in_head is None or messages_in_head > 0):
            raise InvalidSessionUpdateError(
                f"session {session_state.session_id!r} was read with only part of its "
                "conversation; storing it whole would drop the other messages: append to it, "
                "or update its other fields"
            )
        state = session_state
        if messages_in_head is not None:
            state = state.model_copy(
                update={"conversation_history": state.conversation_history[:messages_in_head]}
            )
        # The adapter's version is the revision; the one inside the payload is overwritten on
        # read, so the state is encoded as it is, without a copy to bump it.
        body = self.codec.json_body(state)
        value = self._seal(self.codec.wrap(body), self._key_name(state.session_id))
        indexes = (user_index(state.user_id), project_index(state.project_id))
        activity = state.last_activity.timestamp()
        if self._log is None or (state.revision == 0 and messages_in_head is None):
            # A new key has an empty log: no log to replace.
            entry = await self._atomic.compare_and_set(
                state.session_id,
                value,
                expected_version=state.revision,
                ttl=ttl,
                indexes=indexes,
                namespace=self._ns(),
                activity=activity,
            )
        else:
            entry = await self._log.write_with_log(
                state.session_id,
                value,
                log=None if messages_in_head is not None else (),
                value_weight=len(body),
                limit=self.codec.max_size,
                expected_version=state.revision,
                ttl=ttl,
                indexes=indexes,
                namespace=self._ns(),
                activity=activity,
            )
        record_revision(session_state, entry.version)
        return entry

    async def append_messages(
        self,
        session_id: str,
        messages: Sequence[Any],
        *,
        ttl_seconds: float | None,
        expected_count: int,
        messages_in_head: int = 0,
        revision: int | None = None,
    ) -> int:
        """Append ``messages`` after the ``expected_count`` the caller read; the new count.

        ``messages_in_head`` is the number of those in the session's value and ``revision`` the
        revision they were read at. When it is given and another write landed between that read
        and this append, the count is read again (it then includes what landed).
        Without encryption, appends racing each other all land (``expected_count`` is not
        checked). Sealed messages are bound to their positions, so with encryption an append
        must land at ``expected_count`` and raises
        :class:`~serverless_sessions.errors.SessionConflictError` when another got there first.
        """
        self._check_open()
        if self._log is None:
            return await super().append_messages(
                session_id,
                messages,
                ttl_seconds=ttl_seconds,
                expected_count=expected_count,
                messages_in_head=messages_in_head,
                revision=revision,
            )
        validate_session_id(session_id)
        logged = expected_count - messages_in_head
        items, weight = self._encode_messages(session_id, messages, logged)
        appended = await self._log.append(
            session_id,
            items,
            weight=weight,
            limit=self.codec.max_size,
            expected_length=None if self.encryptor is None else logged,
            ttl=KEEP_TTL if ttl_seconds is None else ttl_seconds,
            # To the microsecond, as a reader sees it (an activity index orders by this number).
            touched_at=datetime.now(UTC).timestamp(),
            namespace=self._ns(),
        )
        if revision is None or appended.version == revision + 1:
            return messages_in_head + appended.length
        now = await self.load_conversation(session_id, last=0)
        return appended.length if now is None or now.message_count is None else now.message_count

    async def load_session(self, session_id: str) -> StoredSession | None:
        if self._log is not None:
            return await self.load_conversation(session_id)
        self._check_open()
        validate_session_id(session_id)
        entry = await self._atomic.get_entry(session_id, namespace=self._ns())
        return None if entry is None else self._stored(session_id, entry)

    async def load_conversation(
        self,
        session_id: str,
        *,
        last: int | None = None,
        before: int | None = None,
        messages_in_head: int = 0,
    ) -> StoredSession | None:
        if self._log is None:
            return await super().load_conversation(
                session_id, last=last, before=before, messages_in_head=messages_in_head
            )
        self._check_open()
        validate_session_id(session_id)
        guess = messages_in_head
        for _ in range(2):
            log_before = None if before is None else max(0, before - guess)
            found = await self._log.get_with_log(
                session_id, last=last, before=log_before, namespace=self._ns()
            )
            if found is None:
                return None
            entry, window = found
            head = self._head(session_id, entry)
            stored = self._cut(head, entry, window, last=last, before=before)
            if stored is not None:
                return stored
            # The value holds another number of messages than the caller's guess: now known.
            guess = len(head.conversation_history)
        raise CorruptSessionError(self._key_name(session_id), "its message log changed shape while read")

    async def load_sessions(self, session_ids: Sequence[str]) -> list[StoredSession | None]:
        if self._log is not None:
            return await gather_bounded(
                [partial(self.load_conversation, session_id) for session_id in session_ids],
                DEFAULT_CONCURRENCY,
            )
        return await self.load_heads(session_ids)

    async def load_heads(self, session_ids: Sequence[str]) -> list[StoredSession | None]:
        self._check_open()
        for session_id in session_ids:
            validate_session_id(session_id)
        entries = await self._atomic.get_entries(list(session_ids), namespace=self._ns())
        return [
            None if entry is None else self._stored(session_id, entry)
            for session_id, entry in zip(session_ids, entries, strict=True)
        ]

    async def delete_session(self, session_id: str) -> bool:
        self._check_open()
        validate_session_id(session_id)
        return await self._atomic.compare_and_delete(session_id, namespace=self._ns())

    def _indexed(self, operation: str) -> IndexedCache:
        if not isinstance(self._atomic, IndexedCache):
            raise CapabilityNotSupportedError(self.cache, "index", operation)
        return self._atomic

    async def list_sessions(self, user_id: str | None = None, project_id: str | None = None) -> list[str]:
        self._check_open()
        if user_id is None and project_id is None:
            return [session_id async for session_id in self.iter_session_ids()]
        cache = self._indexed("list_sessions")
        found: set[str] | None = None
        for index in _owner_indexes(user_id, project_id):
            members = set(await cache.index_members(index, namespace=self._ns()))
            found = members if found is None else found & members
        return sorted(found or ())

    async def recent_sessions(
        self,
        *,
        user_id: str | None,
        project_id: str | None,
        limit: int,
        before: tuple[float, str] | None = None,
    ) -> list[tuple[str, float]] | None:
        """Read from the cache's activity index (:class:`RecentCache`); ``None`` without one."""
        self._check_open()
        indexes = _owner_indexes(user_id, project_id)  # both checked, though one is read
        if not isinstance(self.cache, RecentCache):
            return None
        index = indexes[0] if indexes else None
        return await self.cache.recent(index, limit=limit, before=before, namespace=self._ns())

    async def iter_session_ids(self) -> AsyncIterator[str]:
        self._check_open()
        if not isinstance(self.cache, ScannableCache):
            raise CapabilityNotSupportedError(self.cache, "scan", "listing every session")
        async for key in self.cache.scan_keys(namespace=self.namespace):
            yield key

    async def cleanup_expired_sessions(self) -> int:
        self._check_open()
        cache = self._indexed("cleanup_expired_sessions")
        removed = 0
        while True:
            purged = await cache.purge_expired(namespace=self._ns(), limit=_PURGE_BATCH)
            removed += len(purged)
            if len(purged) < _PURGE_BATCH:
                return removed

    async def is_available(self) -> bool:
        self._check_open()
        try:
            if isinstance(self.cache, PingableCache):
                await self.cache.ping()
            else:
                await self._atomic.get_entry("availability-probe", namespace=self._ns())
        except SessionError as exc:
            logger.warning("%s storage unavailable: %s", self.backend, exc)
            return False
        return True

    async def health(self) -> dict[str, Any]:
        """The adapter's health report (or a probe result), plus this storage's settings."""
        self._check_open()
        report: dict[str, Any]
        if isinstance(self.cache, PingableCache):
            try:
                report = await self.cache.health()
            except StorageError as exc:
                report = {"backend": self.backend, "available": False, "error": str(exc)}
        else:
            report = {"backend": self.backend, "available": await self.is_available()}
        return {**report, **self.describe()}

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "namespace": self.namespace,
            "compression": self.codec.compression,
            "max_session_bytes": self.codec.max_size,
            "default_ttl_seconds": self.default_ttl,
            "encrypted": self.encryptor is not None,
        }

    async def close(self) -> None:
        try:
            if not self._closed and self.owns_cache:
                close = getattr(self.cache, "close", None)
                if close is not None:
                    await close()
        finally:
            await super().close()

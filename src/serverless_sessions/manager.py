"""``ServerlessSessionManager``: ids, lifetimes, validated updates and conflict retries.

The manager keeps no copy of any session: every read goes to storage, so it never serves a
session that another process deleted or that expired. Every write is compare-and-set on the
session's revision; :meth:`ServerlessSessionManager.mutate` retries on conflict so concurrent
read-modify-write cycles lose no update.

Lifetimes. A session has an idle timeout (``idle_ttl_seconds``, set from ``ttl_hours`` at
creation) and, when the manager has ``max_lifetime_hours``, an absolute deadline
(``absolute_expires_at``) fixed at creation.

* Every successful write through the manager -- :meth:`~ServerlessSessionManager.update_session`,
  :meth:`~ServerlessSessionManager.mutate`, :meth:`~ServerlessSessionManager.touch` -- is
  activity: it sets ``last_activity`` to now and restarts the idle timeout, so a session dies
  only after a full idle timeout without writes. A ``ttl_hours`` given to one of them becomes the
  session's idle timeout from then on; without it the session's own timeout restarts.
* The stored expiry is never later than the absolute deadline, whatever the idle timeout; past
  the deadline the session reads as missing even if storage still holds it.
* Reads (``get_session``, ``load_session``, listings, stats) never write, so they never extend.
* A session created with ``ttl_hours=None`` has no idle timeout: its first write gets the
  storage's default TTL and later writes keep whatever TTL remains (``store_session``'s own rule
  for ``ttl_seconds=None``), still capped by the deadline.

Conversations. :meth:`~ServerlessSessionManager.append_messages` adds messages at the end of a
session's ``conversation_history`` and :meth:`~ServerlessSessionManager.get_messages` reads
them back a page at a time, newest page first. On a storage with a message log
(``storage.appends_messages``: every built-in engine but S3) an append writes only the new
messages and a page reads only its messages, so a turn costs the same at message 1,000 as at
message 10; :meth:`~ServerlessSessionManager.update_session` and
:meth:`~ServerlessSessionManager.touch` leave the messages where they are. Elsewhere (S3,
foreign caches, the legacy storages) an append is a read-modify-write of the whole session.
Either way an append is a write like any other (it slides the idle timeout) and a whole write
that read the session before an append conflicts and retries: no message is ever lost.

Erasure. :meth:`ServerlessSessionManager.erase_user` deletes every session of one user (the
right to be forgotten) through the storage's own delete, which drops the session's index
entries with it, then purges expired sessions so that none of the user's expired-but-unpurged
data or index entries is left behind either.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict

from serverless_sessions.adapters.cache.base import gather_bounded
from serverless_sessions.backoff import CONFLICT_BACKOFF
from serverless_sessions.codec import check_appended
from serverless_sessions.conversation import (
    MessagePage,
    check_count,
    decode_message_cursor,
    message_page,
)
from serverless_sessions.errors import (
    InvalidSessionUpdateError,
    SessionConflictError,
    SessionNotFoundError,
)
from serverless_sessions.ids import new_session_id, validate_owner_id, validate_session_id
from serverless_sessions.lifecycle import Closable
from serverless_sessions.listing import BATCH, SessionPage, iter_live, list_page, live
from serverless_sessions.model import (
    CONTENTS_CHECKED,
    MUTABLE_FIELDS,
    SessionState,
    mark_partial_history,
    utc_now,
    validation_problems,
)
from serverless_sessions.storage.base import SessionStorage, StoredSession
from serverless_sessions.ttl import ttl_seconds

if TYPE_CHECKING:
    from serverless_sessions.config.settings import StorageSettings

__all__ = ["MessagePage", "ServerlessSessionManager", "UserErasure", "require_stored"]

Mutator = Callable[[SessionState], SessionState | Awaitable[SessionState | None] | None]
StorageType = Literal["acb", "redis", "s3", "local"]

_ERASE_CONCURRENCY = 16
"""Deletes in flight at once while erasing a user: enough to hide round trips, not a flood."""


class UserErasure(BaseModel):
    """What :meth:`ServerlessSessionManager.erase_user` deleted (with ``dry_run``: would delete).

    ``session_ids`` are the user's live sessions that this call removed (sorted); ``count`` is
    their number. Sessions that had already expired are not counted: they were invisible, and
    the erase purged them with the storage's other expired sessions.
    """

    model_config = ConfigDict(frozen=True)

    user_id: str
    dry_run: bool
    count: int
    session_ids: list[str]


def _hours(value: float | None, what: str) -> float | None:
    return None if value is None else ttl_seconds(float(value) * 3600, what=what)


def _validated(state: SessionState) -> SessionState:
    """Re-validate after a mutator ran: in-place list/dict edits bypass assignment checks."""
    try:
        # Contents are checked by the codec when the result is stored.
        return SessionState.model_validate(state.model_dump(), context=CONTENTS_CHECKED)
    except pydantic.ValidationError as exc:
        raise InvalidSessionUpdateError(f"session {state.session_id!r}: {validation_problems(exc)}") from None


class ServerlessSessionManager(Closable):
    """Create, resume, update, list and expire sessions on any :class:`SessionStorage`."""

    def __init__(
        self,
        storage: SessionStorage | None = None,
        *,
        storage_type: StorageType = "acb",
        storage_config: Mapping[str, Any] | None = None,
        settings: StorageSettings | None = None,
        max_lifetime_hours: float | None = None,
        mutate_retries: int | None = None,
    ) -> None:
        self._owns_storage = storage is None
        if storage is None:
            from serverless_sessions.factory import storage_of_type

            storage, settings = storage_of_type(storage_type, storage_config, settings)
        self.storage = storage
        lifetime = _hours(max_lifetime_hours, "max_lifetime_hours")
        if lifetime is None and settings is not None:
            lifetime = settings.max_lifetime
        self.max_lifetime = lifetime
        self.mutate_retries = mutate_retries or (settings.mutate_retries if settings else 200)

    def __repr__(self) -> str:
        return f"ServerlessSessionManager(storage={self.storage!r})"

    # -- lifetimes ---------------------------------------------------------------------------

    def _ttl(self, state: SessionState, idle: float | None) -> float | None:
        """Seconds to store ``state`` for: the idle timeout capped by the absolute deadline.

        ``None`` lets the storage decide: the default TTL for a new session, the remaining
        (already capped) TTL for a stored one.
        """
        if state.absolute_expires_at is None:
            return idle
        left = (state.absolute_expires_at - utc_now()).total_seconds()
        if left <= 0:
            raise SessionNotFoundError(state.session_id)
        if idle is None:
            return left if state.revision == 0 else None
        return min(idle, left)

    # -- the seed's API ----------------------------------------------------------------------

    async def create_session(
        self,
        user_id: str,
        project_id: str,
        session_data: Mapping[str, Any] | None = None,
        ttl_hours: float | None = 24,
        *,
        session_id: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a session and return its id (128 random bits unless ``session_id`` is given).

        ``session_data`` becomes the session's ``metadata``, as in the original module: any JSON
        object, whatever its keys. ``fields`` sets other mutable fields at creation
        (``conversation_history``, ``permissions``, ...); an unknown or immutable field, or
        ``metadata`` given both ways, is an :class:`InvalidSessionUpdateError` and nothing is
        stored. ``ttl_hours`` is the idle timeout (see the module docstring).
        """
        self._check_open()
        data = dict(fields or {})
        _check_update_fields(data)
        if session_data is not None:
            if not isinstance(session_data, Mapping):
                raise InvalidSessionUpdateError(
                    f"session_data must be a JSON object, not {type(session_data).__name__}"
                )
            if "metadata" in data:
                raise InvalidSessionUpdateError(
                    "metadata given twice: as session_data and as fields['metadata']; give one"
                )
            data["metadata"] = dict(session_data)
        started = utc_now()
        deadline = None if self.max_lifetime is None else started + timedelta(seconds=self.max_lifetime)
        idle = _hours(ttl_hours, "ttl_hours")
        try:
            state = SessionState(
                session_id=(new_session_id() if session_id is None else validate_session_id(session_id)),
                user_id=validate_owner_id(user_id, what="user id"),
                project_id=validate_owner_id(project_id, what="project id"),
                created_at=started,
                last_activity=started,
                absolute_expires_at=deadline,
                idle_ttl_seconds=idle,
                **data,
            )
        except pydantic.ValidationError as exc:
            raise InvalidSessionUpdateError(f"invalid session data: {validation_problems(exc)}") from None
        await self.storage.store_session(state, ttl_seconds=self._ttl(state, idle))
        return state.session_id

    async def get_session(self, session_id: str, history_limit: int | None = None) -> SessionState | None:
        """The stored session, or ``None`` if it does not exist, was deleted or expired.

        ``history_limit=K`` returns the session with only its last ``K`` messages in
        ``conversation_history`` (``has_partial_history`` is then true when it has more, and
        such a session cannot be stored whole); without it, the whole conversation.
        """
        stored = await self.load_session(session_id, history_limit=history_limit)
        return None if stored is None else stored.state

    async def load_session(
        self, session_id: str, *, history_limit: int | None = None, before: str | None = None
    ) -> StoredSession | None:
        """The stored session with its size and expiry, or ``None`` like :meth:`get_session`.

        ``expires_at`` (UNIX seconds, ``None`` = never) is when the session dies if nothing
        writes it again: never later than its absolute deadline. Reading does not extend it.
        ``history_limit`` is :meth:`get_session`'s; ``before`` (a page's ``next_cursor``, see
        :meth:`get_messages`) keeps only the messages before it, in the same read.
        ``message_count`` is the whole conversation's length.
        """
        self._check_open()
        limit = check_count(history_limit, "history_limit")
        if limit is None and before is None:
            return live(await self.storage.load_session(session_id))
        position, in_head = (None, 0) if before is None else decode_message_cursor(before, session_id)
        return live(
            await self.storage.load_conversation(
                session_id, last=limit, before=position, messages_in_head=in_head
            )
        )

    async def get_messages(
        self, session_id: str, *, last: int | None = None, before: str | None = None
    ) -> MessagePage:
        """Messages of the conversation, oldest first: the ``last`` ones before ``before``.

        ``before`` is a page's ``next_cursor`` (``None``: read up to the newest message);
        ``last=None`` reads every message before it. Raises :class:`SessionNotFoundError` for a
        missing session. Reads never write, so they never extend the session.
        """
        check_count(last, "last")
        return message_page(await require_stored(self, session_id, history_limit=last, before=before))

    async def append_messages(
        self, session_id: str, messages: Sequence[Any], *, ttl_hours: float | None = None
    ) -> int:
        """Append ``messages`` (JSON values) to the conversation; returns the new message count.

        Atomic: all of them land, together and in order, or none (a message that is not plain
        JSON, or too large alone or with the rest of the session, is refused before anything is
        stored). Concurrent appends all land. It is activity: the idle timeout restarts
        (``ttl_hours`` when given becomes the session's idle timeout), capped by the absolute
        deadline. Raises :class:`SessionNotFoundError` for a missing session.
        """
        self._check_open()
        validate_session_id(session_id)
        batch = _message_batch(messages)
        if not self.storage.appends_messages:
            for position, message in enumerate(batch):  # named as in a log's append
                check_appended(message, session_id=session_id, path=f"messages[{position}]")
            appended = await self.mutate(
                session_id, lambda state: state.conversation_history.extend(batch), ttl_hours=ttl_hours
            )
            return len(appended.conversation_history)
        idle = _hours(ttl_hours, "ttl_hours")
        for attempt in range(self.mutate_retries):
            stored = await require_stored(self, session_id, history_limit=0)
            state = stored.state
            if idle is not None and idle != state.idle_ttl_seconds:
                # The new idle timeout is part of the session's value: one write records it.
                await self._mutate(session_id, _unchanged, ttl_hours=ttl_hours, with_history=False)
                continue
            try:
                return await self.storage.append_messages(
                    session_id,
                    batch,
                    ttl_seconds=self._ttl(state, state.idle_ttl_seconds),
                    expected_count=stored.message_count or 0,
                    messages_in_head=stored.messages_in_head,
                    revision=state.revision,
                )
            except SessionConflictError:
                await CONFLICT_BACKOFF.wait(attempt)
        raise _still_conflicting(session_id, 0, self.mutate_retries)

    async def require_session(self, session_id: str) -> SessionState:
        """Like :meth:`get_session`, but a missing session raises :class:`SessionNotFoundError`."""
        return (await require_stored(self, session_id)).state

    async def update_session(
        self, session_id: str, updates: Mapping[str, Any], ttl_hours: float | None = None
    ) -> bool:
        """Apply validated field updates and restart the idle timeout (see :meth:`mutate`).

        Raises :class:`SessionNotFoundError` for a missing session and
        :class:`InvalidSessionUpdateError` (storing nothing) for an unknown or immutable field
        or a value that fails validation. Returns ``True``.
        """
        changes = dict(updates)
        _check_update_fields(changes)
        with_history = "conversation_history" in changes

        def apply(state: SessionState) -> None:
            for name, value in changes.items():
                try:
                    setattr(state, name, value)
                except pydantic.ValidationError as exc:
                    raise InvalidSessionUpdateError(
                        f"invalid value for {name!r} in session {session_id!r}: {validation_problems(exc)}"
                    ) from None

        await self._mutate(session_id, apply, ttl_hours=ttl_hours, with_history=with_history)
        return True

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session; ``False`` if there was none."""
        self._check_open()
        return await self.storage.delete_session(session_id)

    async def list_user_sessions(self, user_id: str) -> list[str]:
        """Ids of the user's live sessions."""
        self._check_open()
        return await self.storage.list_sessions(user_id=user_id)

    async def list_project_sessions(self, project_id: str) -> list[str]:
        """Ids of the project's live sessions."""
        self._check_open()
        return await self.storage.list_sessions(project_id=project_id)

    async def cleanup_sessions(self) -> int:
        """Remove expired sessions and their index entries; return how many."""
        self._check_open()
        return await self.storage.cleanup_expired_sessions()

    async def erase_user(self, user_id: str, *, dry_run: bool = False) -> UserErasure:
        """Delete every session of ``user_id`` and leave no index entry of it behind.

        Rounds: read the user's index, delete what it lists (:data:`~.listing.BATCH` at a time,
        a few deletes in flight), read it again, until a read finds nothing. A session the user
        creates while the erase runs is erased if a later round sees it; one created after the
        last read survives (erasing is not a ban). Then expired sessions are purged -- the whole
        namespace's, since storages purge by expiry, not by owner -- so none of the user's
        expired, not yet purged sessions or index entries remains; everyone else's live
        sessions are untouched.

        ``dry_run`` only reads: it reports the user's live sessions and changes nothing. A
        storage that cannot list by user (a foreign cache) raises
        :class:`~serverless_sessions.errors.CapabilityNotSupportedError` before deleting anything.
        """
        self._check_open()
        validate_owner_id(user_id, what="user id")
        listed = await self.storage.list_sessions(user_id=user_id)
        if dry_run:
            return UserErasure(user_id=user_id, dry_run=True, count=len(listed), session_ids=sorted(listed))
        erased: dict[str, None] = {}
        while listed:
            removed = [
                session_id
                for start in range(0, len(listed), BATCH)
                for session_id in await self._delete_each(listed[start : start + BATCH])
            ]
            if not removed:
                break  # all of them vanished under us (expired, or deleted elsewhere)
            erased.update(dict.fromkeys(removed))
            listed = await self.storage.list_sessions(user_id=user_id)
        await self.storage.cleanup_expired_sessions()
        ids = sorted(erased)
        return UserErasure(user_id=user_id, dry_run=False, count=len(ids), session_ids=ids)

    async def _delete_each(self, session_ids: list[str]) -> list[str]:
        """Delete ``session_ids``; return those that existed (a vanished one is not an error)."""
        deleted = await gather_bounded(
            [partial(self.storage.delete_session, session_id) for session_id in session_ids],
            _ERASE_CONCURRENCY,
        )
        return [session_id for session_id, done in zip(session_ids, deleted, strict=True) if done]

    def get_session_stats(self) -> dict[str, Any]:
        """The original module's synchronous stats: backend facts, no I/O, never a secret.

        ``cached_sessions`` is always 0: this manager keeps no session cache (every read goes
        to storage). Counts that need I/O come from :meth:`collect_stats`.
        """
        self._check_open()
        return {
            "cached_sessions": 0,
            "storage_backend": self.storage.backend,
            "storage_config": self.storage.describe(),
        }

    async def collect_stats(self) -> dict[str, Any]:
        """Backend facts plus availability and the number of live sessions; never a secret."""
        self._check_open()
        total = 0
        async for _ in self.storage.iter_session_ids():
            total += 1
        return {
            **self.storage.describe(),
            "available": await self.storage.is_available(),
            "total_sessions": total,
            "max_lifetime_seconds": self.max_lifetime,
        }

    # -- beyond the seed ---------------------------------------------------------------------

    async def mutate(self, session_id: str, fn: Mutator, *, ttl_hours: float | None = None) -> SessionState:
        """Read-modify-write with retry on conflict; returns the stored result.

        ``fn`` receives a private copy and may change it in place or return a new state (sync
        or async). It runs again, on fresh data, after every conflict, so it must not have side
        effects outside the session. Identity, timestamps and lifetimes may not change.
        The write is activity: ``last_activity`` becomes now and the idle timeout restarts --
        ``ttl_hours`` when given (it becomes the session's idle timeout), else the session's own
        -- capped by the absolute deadline. ``fn`` sees the whole conversation; where the
        messages live in a log and ``fn`` leaves them as they were, they are not rewritten.
        """
        return await self._mutate(session_id, fn, ttl_hours=ttl_hours, with_history=True)

    async def _mutate(
        self, session_id: str, fn: Mutator, *, ttl_hours: float | None, with_history: bool
    ) -> SessionState:
        """:meth:`mutate`; without ``with_history``, ``fn`` promises not to read or change messages.

        Then, on a storage with a message log, only the session's head is read and written.
        """
        self._check_open()
        validate_session_id(session_id)
        idle = _hours(ttl_hours, "ttl_hours")
        full = with_history or not self.storage.appends_messages
        current: SessionState | None = None
        for attempt in range(self.mutate_retries):
            stored = await require_stored(self, session_id, history_limit=None if full else 0)
            if stored.state.has_partial_history and stored.messages_in_head:
                # The value holds messages, which the write must store again: read them too.
                stored = await require_stored(self, session_id)
            current = stored.state
            working = current.model_copy(deep=True)
            returned = fn(working)
            if inspect.isawaitable(returned):
                returned = await returned
            if returned is not None and not isinstance(returned, SessionState):
                raise InvalidSessionUpdateError(
                    f"a mutator must change the session in place or return a SessionState, "
                    f"not {type(returned).__name__}"
                )
            result = _validated(returned or working)
            _check_identity(current, result)
            result.revision = current.revision
            result.last_activity = utc_now()
            if idle is not None:
                result.idle_ttl_seconds = idle
            ttl = self._ttl(result, result.idle_ttl_seconds)
            keep_history = self.storage.appends_messages and (
                current.has_partial_history or result.conversation_history == current.conversation_history
            )
            try:
                if keep_history:
                    await self.storage.store_session_keeping_history(
                        result, ttl_seconds=ttl, messages_in_head=stored.messages_in_head
                    )
                else:
                    await self.storage.store_session(result, ttl_seconds=ttl)
            except SessionConflictError:
                await CONFLICT_BACKOFF.wait(attempt)
                continue
            if current.has_partial_history:
                mark_partial_history(result)
            return result
        raise _still_conflicting(session_id, current.revision if current else 0, self.mutate_retries)

    async def touch(self, session_id: str, ttl_hours: float | None = None) -> SessionState:
        """Record activity without changing content; returns the stored session.

        Restarts the idle timeout like any write (see :meth:`mutate`): ``ttl_hours`` when
        given, else the session's own. On a storage with a message log the messages are neither
        read nor written, and the session returned holds none of them
        (``has_partial_history``).
        """
        return await self._mutate(session_id, _unchanged, ttl_hours=ttl_hours, with_history=False)

    async def list_sessions(
        self,
        user_id: str | None = None,
        project_id: str | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        """One page of sessions, newest ``last_activity`` first; pass ``next_cursor`` on."""
        self._check_open()
        return await list_page(
            self.storage, user_id=user_id, project_id=project_id, limit=limit, cursor=cursor
        )

    async def iter_sessions(self, *, unreadable: list[str] | None = None) -> AsyncIterator[StoredSession]:
        """Every live session with its expiry and size (for stats, export and migration).

        A session whose bytes fail to decode raises :class:`CorruptSessionError`, unless the
        caller passes ``unreadable``: then its id is appended there and iteration goes on.
        """
        self._check_open()
        async for stored in iter_live(self.storage, unreadable=unreadable):
            yield stored

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the storage if this manager created it. Later calls raise ClosedError."""
        try:
            if not self._closed and self._owns_storage:
                await self.storage.close()
        finally:
            self._closed = True


def _still_conflicting(session_id: str, revision: int, tries: int) -> SessionConflictError:
    return SessionConflictError(
        session_id, revision, None, message=f"session {session_id!r}: still conflicting after {tries} tries"
    )


def _message_batch(messages: Sequence[Any]) -> list[Any]:
    """The messages of one append as a list; a lone message or an empty batch is refused."""
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise InvalidSessionUpdateError(f"messages must be a list of messages, not {type(messages).__name__}")
    if not messages:
        raise InvalidSessionUpdateError("no messages to append: give at least one")
    return list(messages)


def _unchanged(state: SessionState) -> None:
    """The mutator of :meth:`ServerlessSessionManager.touch`: activity without new content."""


def _check_update_fields(updates: Mapping[str, Any]) -> None:
    for name in updates:
        if name not in MUTABLE_FIELDS:
            kind = "immutable" if name in SessionState.model_fields else "unknown"
            raise InvalidSessionUpdateError(
                f"cannot set {kind} field {name!r}; settable fields: {', '.join(sorted(MUTABLE_FIELDS))}"
            )


def _check_identity(before: SessionState, after: SessionState) -> None:
    for name in (
        "session_id",
        "user_id",
        "project_id",
        "created_at",
        "absolute_expires_at",
        "idle_ttl_seconds",
    ):
        if getattr(before, name) != getattr(after, name):
            raise InvalidSessionUpdateError(
                f"{name} of session {before.session_id!r} cannot change "
                f"({getattr(before, name)!r} -> {getattr(after, name)!r})"
            )


async def require_stored(
    manager: ServerlessSessionManager,
    session_id: str,
    *,
    history_limit: int | None = None,
    before: str | None = None,
) -> StoredSession:
    """The session as stored now, with its expiry; a missing or expired one is not found.

    The front ends show when a session expires, which only the stored copy knows, so after a
    write they read it back with this.
    """
    stored = await manager.load_session(session_id, history_limit=history_limit, before=before)
    if stored is None:
        raise SessionNotFoundError(session_id)
    return stored

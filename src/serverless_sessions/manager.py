"""``ServerlessSessionManager``: ids, lifetimes, validated updates and conflict retries.

The manager keeps no copy of any session: every read goes to storage, so it never serves a
session that another process deleted or that expired. Every write is compare-and-set on the
session's revision; :meth:`ServerlessSessionManager.mutate` retries on conflict so concurrent
read-modify-write cycles lose no update.

Lifetimes: each session has an idle timeout (``ttl_hours``, renewed by :meth:`touch` and by
updates that name a TTL) and, optionally, an absolute deadline (``max_lifetime_hours``) that no
renewal extends. The stored TTL is always the smaller of the two.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import pydantic

from serverless_sessions.errors import (
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionError,
    InvalidSessionUpdateError,
    SessionConflictError,
    SessionNotFoundError,
)
from serverless_sessions.ids import new_session_id, validate_owner_id, validate_session_id
from serverless_sessions.lifecycle import Closable
from serverless_sessions.model import (
    CONTENTS_CHECKED,
    MUTABLE_FIELDS,
    SessionState,
    utc_now,
    validation_problems,
)
from serverless_sessions.pages import SessionPage, SessionSummary
from serverless_sessions.settings import StorageSettings, load_settings
from serverless_sessions.storage.base import SessionStorage, StoredSession
from serverless_sessions.ttl import ttl_seconds

__all__ = ["ServerlessSessionManager"]

Mutator = Callable[[SessionState], SessionState | Awaitable[SessionState | None] | None]
StorageType = Literal["acb", "redis", "s3", "local"]
_BATCH = 200


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
            storage, settings = _build_storage(storage_type, storage_config, settings)
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

        ``None`` for a stored session means "keep the remaining TTL" (already capped).
        """
        if idle is None and state.revision > 0:
            return None
        if state.absolute_expires_at is None:
            return idle
        left = (state.absolute_expires_at - utc_now()).total_seconds()
        if left <= 0:
            raise SessionNotFoundError(state.session_id)
        return left if idle is None else min(idle, left)

    # -- the seed's API ----------------------------------------------------------------------

    async def create_session(
        self,
        user_id: str,
        project_id: str,
        session_data: Mapping[str, Any] | None = None,
        ttl_hours: float | None = 24,
        *,
        session_id: str | None = None,
    ) -> str:
        """Create a session and return its id (128 random bits unless ``session_id`` is given).

        ``session_data`` sets any of the mutable fields (``conversation_history``,
        ``metadata``, ...); an unknown field is an :class:`InvalidSessionUpdateError`.
        """
        self._check_open()
        data = dict(session_data or {})
        _check_update_fields(data)
        now = utc_now()
        deadline = None if self.max_lifetime is None else now + timedelta(seconds=self.max_lifetime)
        idle = _hours(ttl_hours, "ttl_hours")
        try:
            state = SessionState(
                session_id=(new_session_id() if session_id is None else validate_session_id(session_id)),
                user_id=validate_owner_id(user_id, what="user id"),
                project_id=validate_owner_id(project_id, what="project id"),
                created_at=now,
                last_activity=now,
                absolute_expires_at=deadline,
                idle_ttl_seconds=idle,
                **data,
            )
        except pydantic.ValidationError as exc:
            raise InvalidSessionUpdateError(f"invalid session data: {validation_problems(exc)}") from None
        await self.storage.store_session(state, ttl_seconds=self._ttl(state, idle))
        return state.session_id

    async def get_session(self, session_id: str) -> SessionState | None:
        """The stored session, or ``None`` if it does not exist, was deleted or expired."""
        self._check_open()
        state = await self.storage.retrieve_session(session_id)
        if state is None or _past_deadline(state):
            return None
        return state

    async def require_session(self, session_id: str) -> SessionState:
        """Like :meth:`get_session`, but a missing session raises :class:`SessionNotFoundError`."""
        state = await self.get_session(session_id)
        if state is None:
            raise SessionNotFoundError(session_id)
        return state

    async def update_session(
        self, session_id: str, updates: Mapping[str, Any], ttl_hours: float | None = None
    ) -> bool:
        """Apply validated field updates; ``ttl_hours=None`` keeps the remaining TTL.

        Raises :class:`SessionNotFoundError` for a missing session and
        :class:`InvalidSessionUpdateError` (storing nothing) for an unknown or immutable field
        or a value that fails validation. Returns ``True``.
        """
        changes = dict(updates)
        _check_update_fields(changes)

        def apply(state: SessionState) -> None:
            for name, value in changes.items():
                try:
                    setattr(state, name, value)
                except pydantic.ValidationError as exc:
                    raise InvalidSessionUpdateError(
                        f"invalid value for {name!r} in session {session_id!r}: {validation_problems(exc)}"
                    ) from None

        await self.mutate(session_id, apply, ttl_hours=ttl_hours)
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

    async def get_session_stats(self) -> dict[str, Any]:
        """Counts and backend facts; never a password or key."""
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
        ``ttl_hours`` sets a new idle timeout; ``None`` keeps the remaining TTL.
        """
        return await self._mutate(session_id, fn, _hours(ttl_hours, "ttl_hours"), renew=False)

    async def touch(self, session_id: str, ttl_hours: float | None = None) -> SessionState:
        """Sliding expiry: mark activity now and restart the idle timeout.

        Without ``ttl_hours`` the session's own idle timeout (set at creation) restarts.
        """
        return await self._mutate(session_id, lambda state: None, _hours(ttl_hours, "ttl_hours"), renew=True)

    async def _mutate(self, session_id: str, fn: Mutator, idle: float | None, *, renew: bool) -> SessionState:
        self._check_open()
        validate_session_id(session_id)
        current: SessionState | None = None
        for attempt in range(self.mutate_retries):
            current = await self.require_session(session_id)
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
            ttl = idle if idle is not None else (result.idle_ttl_seconds if renew else None)
            try:
                await self.storage.store_session(result, ttl_seconds=self._ttl(result, ttl))
            except SessionConflictError:
                await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
                continue
            return result
        raise SessionConflictError(
            session_id,
            current.revision if current else 0,
            None,
            message=f"session {session_id!r}: still conflicting after {self.mutate_retries} tries",
        )

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
        if not 1 <= limit <= 1000:
            raise InvalidSessionError(f"limit must be 1-1000, got {limit!r}")
        after = _decode_cursor(cursor) if cursor else None
        ids = await self.storage.list_sessions(user_id=user_id, project_id=project_id)
        summaries: list[SessionSummary] = []
        unreadable: list[str] = []
        for start in range(0, len(ids), _BATCH):
            loaded = await self._load_batch(ids[start : start + _BATCH], unreadable)
            summaries.extend(
                SessionSummary.of(stored) for stored in loaded if not _past_deadline(stored.state)
            )
        summaries.sort(key=lambda s: (s.last_activity, s.session_id), reverse=True)
        if after is not None:
            summaries = [s for s in summaries if (s.last_activity, s.session_id) < after]
        page = summaries[:limit]
        more = len(summaries) > limit
        next_cursor = _encode_cursor(page[-1]) if more and page else None
        return SessionPage(sessions=page, next_cursor=next_cursor, unreadable=unreadable)

    async def _load_batch(self, ids: list[str], unreadable: list[str]) -> list[StoredSession]:
        try:
            batch = await self.storage.load_sessions(ids)
        except CorruptSessionError:
            batch = []
            for session_id in ids:
                try:
                    batch.append(await self.storage.load_session(session_id))
                except CorruptSessionError:
                    unreadable.append(session_id)
        return [stored for stored in batch if stored is not None]

    async def iter_sessions(self, *, unreadable: list[str] | None = None) -> AsyncIterator[StoredSession]:
        """Every live session with its expiry and size (for stats, export and migration).

        A session whose bytes fail to decode raises :class:`CorruptSessionError`, unless the
        caller passes ``unreadable``: then its id is appended there and iteration goes on.
        """
        self._check_open()
        ids: list[str] = []
        async for session_id in self.storage.iter_session_ids():
            ids.append(session_id)
            if len(ids) >= _BATCH:
                for stored in await self._load_for_iteration(ids, unreadable):
                    yield stored
                ids = []
        for stored in await self._load_for_iteration(ids, unreadable):
            yield stored

    async def _load_for_iteration(self, ids: list[str], unreadable: list[str] | None) -> list[StoredSession]:
        if unreadable is None:
            return [stored for stored in await self.storage.load_sessions(ids) if stored]
        return await self._load_batch(ids, unreadable)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the storage if this manager created it. Later calls raise ClosedError."""
        try:
            if not self._closed and self._owns_storage:
                await self.storage.close()
        finally:
            self._closed = True



def _past_deadline(state: SessionState) -> bool:
    return state.absolute_expires_at is not None and state.absolute_expires_at <= utc_now()


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


def _encode_cursor(summary: SessionSummary) -> str:
    raw = json.dumps([summary.last_activity.isoformat(), summary.session_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, session_id = json.loads(raw)
        after = datetime.fromisoformat(stamp)
    except (ValueError, TypeError) as exc:
        raise InvalidSessionError(f"invalid cursor {cursor!r}") from exc
    if after.tzinfo is None or not isinstance(session_id, str):
        raise InvalidSessionError(f"invalid cursor {cursor!r}: not issued by list_sessions")
    return after, session_id


def _build_storage(
    storage_type: StorageType,
    storage_config: Mapping[str, Any] | None,
    settings: StorageSettings | None,
) -> tuple[SessionStorage, StorageSettings | None]:
    from serverless_sessions.storage_urls import open_configured_storage, open_legacy_storage

    if storage_type != "acb":
        return open_legacy_storage(storage_type, dict(storage_config or {})), settings
    if settings is not None and storage_config:
        raise ConfigurationError("give either settings or storage_config, not both")
    if settings is None:
        settings = load_settings(**dict(storage_config or {}))
    return open_configured_storage(settings), settings

"""``SessionStorage``: the plan's unchanged storage interface, plus what migration needs.

Contract shared by every implementation (cache-backed and legacy):

* ``store_session`` writes atomically and returns ``True``; it never returns ``False`` to mean
  failure — failures raise a :class:`~serverless_sessions.errors.SessionError` subclass. It checks
  ``state.revision`` against the stored revision (0 = must not exist yet) and, on success, sets
  ``state.revision`` to the new revision. ``ttl_seconds=None`` keeps the remaining TTL of an
  existing session (the original module dropped it) and gives a new one the default TTL.
  It refuses, before writing anything, whatever ``retrieve_session`` would refuse to read back
  (:class:`~serverless_sessions.errors.SessionTooLargeError`,
  :class:`~serverless_sessions.errors.InvalidSessionError`): a refused write leaves the stored
  revision as it was.
* ``retrieve_session`` returns ``None`` for a missing or expired session; bad stored bytes raise
  :class:`~serverless_sessions.errors.CorruptSessionError` naming the key.
* ``list_sessions`` never lists deleted or expired sessions.
* ``store_sessions`` / ``retrieve_sessions`` are the same operations for many sessions at
  once (see :mod:`serverless_sessions.storage.batch`): each session is still its own
  compare-and-set, with its own outcome.

Conversations. ``load_conversation`` reads a session with a window of its messages. A storage
with ``appends_messages`` keeps the messages in a log beside the session (see
:class:`~serverless_sessions.adapters.cache.base.AppendableCache`): ``append_messages`` and
``store_session_keeping_history`` then cost the same however long the conversation is, and a
window is read without the rest. Other storages keep the whole session in one value; the
manager appends to them by read-modify-write.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from serverless_sessions.errors import CapabilityNotSupportedError
from serverless_sessions.lifecycle import Closable
from serverless_sessions.model import SessionState, mark_partial_history
from serverless_sessions.storage.batch import DEFAULT_CONCURRENCY, BatchStoreResult, store_each

__all__ = ["SessionStorage", "StoredSession"]


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session as read from storage, with its absolute expiry (UNIX seconds, None = never).

    ``history_start`` is the position of ``state.conversation_history[0]`` in the whole
    conversation (non-zero when only a window was read) and ``message_count`` the length of the
    whole conversation (``None`` when the read did not learn it: a listing reads no messages).
    ``messages_in_head`` counts the messages held in the session's value (put there by its last
    whole write) rather than in its message log (appended since).
    """

    state: SessionState
    expires_at: float | None
    size: int
    history_start: int = 0
    message_count: int | None = None
    messages_in_head: int = 0


def _history_window(stored: StoredSession, last: int | None, before: int | None) -> StoredSession:
    """``stored`` (holding its whole conversation) cut to the window ``last`` / ``before`` select.

    The messages before position ``before`` (``None``: the end), at most the ``last`` of them
    (``None``: all). A session cut short is marked partial so it cannot be stored whole.
    """
    history = stored.state.conversation_history
    total = len(history)
    end = total if before is None else max(0, min(before, total))
    start = 0 if last is None else max(0, end - last)
    state = stored.state
    if (start, end) != (0, total):
        state = mark_partial_history(state.model_copy(update={"conversation_history": history[start:end]}))
    return StoredSession(
        state,
        stored.expires_at,
        stored.size,
        history_start=start,
        message_count=total,
        messages_in_head=stored.messages_in_head,
    )


class SessionStorage(Closable, ABC):
    """Abstract session storage (the seed's interface; signatures unchanged)."""

    backend: str = "storage"
    appends_messages: bool = False
    """Whether messages live in a log beside the session (see the module docstring)."""

    @abstractmethod
    async def store_session(self, session_state: SessionState, ttl_seconds: float | None = None) -> bool:
        """Store ``session_state`` atomically with an optional TTL (see module docstring)."""

    async def store_sessions(
        self,
        sessions: Sequence[SessionState],
        ttl_seconds: float | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> BatchStoreResult:
        """Store each session as :meth:`store_session` would, ``concurrency`` writes in flight.

        Every session gets an outcome (stored at a revision, conflicted, or refused with its
        error) and the stored ones have their ``revision`` bumped; call
        :meth:`BatchStoreResult.raise_for_failures` to treat any failure as an error.
        """
        return await store_each(
            [(state, partial(self.store_session, state, ttl_seconds)) for state in sessions],
            concurrency,
        )

    async def retrieve_sessions(self, session_ids: Sequence[str]) -> list[SessionState | None]:
        """The sessions ``session_ids`` name, in order; ``None`` for a missing or expired one.

        Read as one batch where the backend allows (:meth:`load_sessions`); a session that
        cannot be read raises as :meth:`retrieve_session` would, naming its key.
        """
        return [None if stored is None else stored.state for stored in await self.load_sessions(session_ids)]

    @abstractmethod
    async def load_session(self, session_id: str) -> StoredSession | None:
        """The session with its expiry and stored size, or ``None`` if missing or expired."""

    async def retrieve_session(self, session_id: str) -> SessionState | None:
        """Retrieve session state by id; ``None`` if missing or expired."""
        stored = await self.load_session(session_id)
        return None if stored is None else stored.state

    async def load_sessions(self, session_ids: Sequence[str]) -> list[StoredSession | None]:
        """Load several sessions; implementations batch this where the backend allows."""
        return [await self.load_session(session_id) for session_id in session_ids]

    async def load_heads(self, session_ids: Sequence[str]) -> list[StoredSession | None]:
        """Load several sessions for a listing: storages with a message log leave the messages out."""
        return await self.load_sessions(session_ids)

    async def load_conversation(
        self,
        session_id: str,
        *,
        last: int | None = None,
        before: int | None = None,
        messages_in_head: int = 0,
    ) -> StoredSession | None:
        """The session with only a window of its messages (see :func:`_history_window`).

        ``messages_in_head``: how many messages the session's value held when ``before`` was
        learnt (a page's ``messages_in_head``), so a message-log storage reads the right log
        items at once; a wrong guess costs a second read, never a wrong page.
        """
        stored = await self.load_session(session_id)
        return None if stored is None else _history_window(stored, last, before)

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
        """Append ``messages`` to the session's log; the new message count (``appends_messages`` only)."""
        raise CapabilityNotSupportedError(self, "message log", "append_messages")

    async def store_session_keeping_history(
        self, session_state: SessionState, ttl_seconds: float | None = None, *, messages_in_head: int = 0
    ) -> bool:
        """Store the session's other fields and keep its stored messages (``appends_messages`` only)."""
        raise CapabilityNotSupportedError(self, "message log", "store_session_keeping_history")

    @abstractmethod
    async def delete_session(self, session_id: str) -> bool:
        """Delete a session; ``True`` if a live session was removed, ``False`` if there was none."""

    @abstractmethod
    async def list_sessions(self, user_id: str | None = None, project_id: str | None = None) -> list[str]:
        """Ids of live sessions, filtered by user and/or project (both: the intersection)."""

    async def recent_sessions(
        self,
        *,
        user_id: str | None,
        project_id: str | None,
        limit: int,
        before: tuple[float, str] | None = None,
    ) -> list[tuple[str, float]] | None:
        """Session ids newest ``last_activity`` first, each with it in UNIX seconds.

        Up to ``limit`` of the user's (else the project's, else all), strictly below ``before``.
        ``None`` when the storage keeps no activity order (the default): a listing then reads
        every owner's session to sort them. Ids may name sessions that expired or changed since;
        the caller reads them and checks.
        """
        return None

    async def iter_session_ids(self) -> AsyncIterator[str]:
        """Every live session id once; used by migration and re-encryption."""
        for session_id in await self.list_sessions():
            yield session_id

    @abstractmethod
    async def cleanup_expired_sessions(self) -> int:
        """Remove expired sessions and their index entries; return how many were removed."""

    @abstractmethod
    async def is_available(self) -> bool:
        """Whether the backend answers now (``False`` when it does not; never raises for that)."""

    async def health(self) -> dict[str, Any]:
        """A JSON-safe health report; backends with richer probes override it. No secrets."""
        self._check_open()
        return {**self.describe(), "available": await self.is_available()}

    def describe(self) -> dict[str, Any]:
        """Backend facts for stats and health output; never includes secrets."""
        return {"backend": self.backend}

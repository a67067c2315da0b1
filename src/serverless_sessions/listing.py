"""Reading many sessions: pages of summaries with their cursors, and streaming iteration.

A page holds summaries, not whole sessions, so it stays small. A cursor is opaque to callers:
the (``last_activity``, ``session_id``) of the last summary shown, so the next page starts
strictly after it even when sessions are added meanwhile. Sessions are loaded in batches of
:data:`BATCH`; one whose bytes fail to decode is reported (``unreadable``), not hidden, and does
not fail its neighbours. Every session read here passes through :func:`live`, so none is shown
past its absolute deadline.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from serverless_sessions.errors import CorruptSessionError, InvalidSessionError
from serverless_sessions.storage.base import SessionStorage, StoredSession
from serverless_sessions.ttl import now

__all__ = [
    "BATCH",
    "Loaded",
    "SessionPage",
    "SessionSummary",
    "decode_cursor",
    "encode_cursor",
    "expiry_time",
    "iter_live",
    "list_page",
    "live",
    "load_each",
    "Unreadable",
]

BATCH = 200
"""Sessions loaded per storage call while listing or iterating."""


def expiry_time(stored: StoredSession) -> datetime | None:
    """When ``stored`` expires unless there is activity first (``None``: never)."""
    return None if stored.expires_at is None else datetime.fromtimestamp(stored.expires_at, UTC)


def live(stored: StoredSession | None) -> StoredSession | None:
    """``stored`` with its expiry capped by the absolute deadline; ``None`` past the deadline."""
    if stored is None or stored.state.absolute_expires_at is None:
        return stored
    deadline = stored.state.absolute_expires_at.timestamp()
    if deadline <= now():
        return None
    if stored.expires_at is None or stored.expires_at > deadline:
        return replace(stored, expires_at=deadline)
    return stored


class SessionSummary(BaseModel):
    """What a listing shows of one session."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    user_id: str
    project_id: str
    created_at: datetime
    last_activity: datetime
    expires_at: datetime | None
    revision: int
    size_bytes: int

    @classmethod
    def of(cls, stored: StoredSession) -> SessionSummary:
        """Summarize a stored session."""
        state = stored.state
        return cls(
            session_id=state.session_id,
            user_id=state.user_id,
            project_id=state.project_id,
            created_at=state.created_at,
            last_activity=state.last_activity,
            expires_at=expiry_time(stored),
            revision=state.revision,
            size_bytes=stored.size,
        )


class SessionPage(BaseModel):
    """One page of a listing, newest activity first; ``next_cursor`` is None on the last page.

    ``unreadable`` names sessions whose stored bytes failed to decode: they are reported, not
    silently dropped, and the rest of the page is still served.
    """

    model_config = ConfigDict(frozen=True)

    sessions: list[SessionSummary]
    next_cursor: str | None
    unreadable: list[str] = []


def encode_cursor(summary: SessionSummary) -> str:
    """The cursor of the page that follows ``summary``."""
    raw = json.dumps([summary.last_activity.isoformat(), summary.session_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The sort key a cursor stands for; anything not made by :func:`encode_cursor` is refused."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, session_id = json.loads(raw)
        after = datetime.fromisoformat(stamp)
    except (ValueError, TypeError) as exc:
        raise InvalidSessionError(f"invalid cursor {cursor!r}") from exc
    if after.tzinfo is None or not isinstance(session_id, str):
        raise InvalidSessionError(f"invalid cursor {cursor!r}: not issued by list_sessions")
    return after, session_id


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A session whose stored bytes cannot be decoded, and why."""

    reason: str


Loaded = StoredSession | Unreadable | None


async def load_each(storage: SessionStorage, ids: Sequence[str], *, heads: bool = False) -> list[Loaded]:
    """Batch-load ``ids`` in order; if the batch holds an unreadable session, find which one by one.

    ``heads``: leave the messages out where the storage keeps them apart (a listing shows none).
    """
    load = storage.load_heads if heads else storage.load_sessions
    try:
        return list(await load(ids))
    except (CorruptSessionError, InvalidSessionError):
        pass
    loaded: list[Loaded] = []
    for session_id in ids:
        try:
            (one,) = await load([session_id])
            loaded.append(one)
        except (CorruptSessionError, InvalidSessionError) as exc:
            loaded.append(Unreadable(str(exc)))
    return loaded


async def _load_batch(
    storage: SessionStorage, ids: list[str], unreadable: list[str], *, heads: bool = False
) -> list[StoredSession]:
    """The live sessions of ``ids``; the ids of undecodable ones are appended to ``unreadable``."""
    found: list[StoredSession] = []
    for session_id, loaded in zip(ids, await load_each(storage, ids, heads=heads), strict=True):
        if isinstance(loaded, Unreadable):
            unreadable.append(session_id)
        elif (alive := live(loaded)) is not None:
            found.append(alive)
    return found


async def list_page(
    storage: SessionStorage,
    *,
    user_id: str | None,
    project_id: str | None,
    limit: int,
    cursor: str | None,
) -> SessionPage:
    """One page of ``storage``'s sessions, newest ``last_activity`` first (see the module)."""
    if not 1 <= limit <= 1000:
        raise InvalidSessionError(f"limit must be 1-1000, got {limit!r}")
    after = decode_cursor(cursor) if cursor else None
    ordered = await _page_in_activity_order(
        storage, user_id=user_id, project_id=project_id, limit=limit, after=after
    )
    if ordered is not None:
        return ordered
    ids = await storage.list_sessions(user_id=user_id, project_id=project_id)
    summaries: list[SessionSummary] = []
    unreadable: list[str] = []
    for start in range(0, len(ids), BATCH):
        loaded = await _load_batch(storage, ids[start : start + BATCH], unreadable, heads=True)
        summaries.extend(s for s in map(SessionSummary.of, loaded) if _below(s, after))
    return _page_of(summaries, limit, unreadable)


def _position(summary: SessionSummary) -> tuple[datetime, str]:
    """Where ``summary`` stands in a listing (newest first) and in a cursor."""
    return summary.last_activity, summary.session_id


def _below(summary: SessionSummary, after: tuple[datetime, str] | None) -> bool:
    """Whether ``summary`` belongs after the cursor ``after`` (``None``: the first page)."""
    return after is None or _position(summary) < after


def _page_of(summaries: list[SessionSummary], limit: int, unreadable: list[str]) -> SessionPage:
    """The newest ``limit`` of ``summaries``, with a cursor when more follow."""
    summaries.sort(key=_position, reverse=True)
    page = summaries[:limit]
    next_cursor = encode_cursor(page[-1]) if len(summaries) > limit and page else None
    return SessionPage(sessions=page, next_cursor=next_cursor, unreadable=unreadable)


async def _page_in_activity_order(
    storage: SessionStorage,
    *,
    user_id: str | None,
    project_id: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> SessionPage | None:
    """The page read from the storage's activity order: O(page), whatever the owner holds.

    ``None`` when the storage keeps no complete activity order (see
    :meth:`SessionStorage.recent_sessions`). Candidates are read a chunk at a time from the
    cursor down, their heads loaded, and those expired, of another project, or moved above the
    cursor since (a write meanwhile) skipped, until the page and one more are found.
    """
    before = None if after is None else (after[0].timestamp(), after[1])
    summaries: list[SessionSummary] = []
    unreadable: list[str] = []
    chunk = limit + 1
    while len(summaries) <= limit:
        found = await storage.recent_sessions(
            user_id=user_id, project_id=project_id, limit=chunk, before=before
        )
        if found is None:
            return None
        ids = [session_id for session_id, _ in found]
        for stored in await _load_batch(storage, ids, unreadable, heads=True):
            summary = SessionSummary.of(stored)
            if (project_id is None or summary.project_id == project_id) and _below(summary, after):
                summaries.append(summary)
        if len(found) < chunk:
            break
        before = found[-1][1], found[-1][0]
        chunk = min(BATCH, chunk * 2)
    return _page_of(summaries, limit, unreadable)


async def iter_live(
    storage: SessionStorage, *, unreadable: list[str] | None = None
) -> AsyncIterator[StoredSession]:
    """Every live session of ``storage``, streamed a batch at a time.

    An undecodable session raises :class:`CorruptSessionError`, unless ``unreadable`` is given:
    then its id is appended there and iteration goes on.
    """
    ids: list[str] = []
    async for session_id in storage.iter_session_ids():
        ids.append(session_id)
        if len(ids) >= BATCH:
            for stored in await _load_for_iteration(storage, ids, unreadable):
                yield stored
            ids = []
    for stored in await _load_for_iteration(storage, ids, unreadable):
        yield stored


async def _load_for_iteration(
    storage: SessionStorage, ids: list[str], unreadable: list[str] | None
) -> list[StoredSession]:
    if unreadable is None:
        return [found for found in map(live, await storage.load_sessions(ids)) if found is not None]
    return await _load_batch(storage, ids, unreadable)

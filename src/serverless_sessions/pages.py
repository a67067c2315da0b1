"""Paginated listing: summaries, not whole sessions, so a page stays small, and its cursors.

A cursor is opaque to callers: the (``last_activity``, ``session_id``) of the last summary shown,
so the next page starts strictly after it even when sessions are added meanwhile.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from serverless_sessions.errors import InvalidSessionError
from serverless_sessions.storage.base import StoredSession

__all__ = ["SessionPage", "SessionSummary", "decode_cursor", "encode_cursor"]


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
        expires = (
            None if stored.expires_at is None else datetime.fromtimestamp(stored.expires_at, UTC)
        )
        return cls(
            session_id=state.session_id,
            user_id=state.user_id,
            project_id=state.project_id,
            created_at=state.created_at,
            last_activity=state.last_activity,
            expires_at=expires,
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

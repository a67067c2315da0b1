"""Result types of paginated listing: summaries, not whole sessions, so a page stays small."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from serverless_sessions.storage.base import StoredSession

__all__ = ["SessionPage", "SessionSummary"]


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

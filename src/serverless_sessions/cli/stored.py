"""A session as both front ends show it: the stored copy, with its expiry as a UTC time.

Shared by the CLI and the MCP server (so, like :mod:`.backends`, it imports neither click nor
rich). ``get``, ``update`` and ``touch`` show when the session expires, which only the stored
copy knows, so they read it back with :func:`require_stored` after their write.
"""

from __future__ import annotations

from datetime import UTC, datetime

from serverless_sessions.errors import SessionNotFoundError
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.storage.base import StoredSession

__all__ = ["expiry_time", "require_stored"]


async def require_stored(manager: ServerlessSessionManager, session_id: str) -> StoredSession:
    """The session as stored now; a missing or expired one is :class:`SessionNotFoundError`."""
    stored = await manager.load_session(session_id)
    if stored is None:
        raise SessionNotFoundError(session_id)
    return stored


def expiry_time(stored: StoredSession) -> datetime | None:
    """When ``stored`` expires unless there is activity first (``None``: never)."""
    return None if stored.expires_at is None else datetime.fromtimestamp(stored.expires_at, UTC)

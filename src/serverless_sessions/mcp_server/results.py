"""Typed results of the MCP tools: structured content for programs, one line for the model.

The original tools returned only prose, including prose saying "failed" on failure. Here every
successful call returns one of these models (published as the tool's output schema) plus its
:meth:`ToolResult.text`; failures never produce a result — they are tool errors.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime
from typing import Any, Self

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from serverless_sessions.conversation import message_page
from serverless_sessions.listing import SessionPage, expiry_time
from serverless_sessions.manager import UserErasure
from serverless_sessions.model import SessionState
from serverless_sessions.storage.base import StoredSession

__all__ = [
    "CleanupResult",
    "MessagesAppended",
    "SessionCreated",
    "SessionDeleted",
    "SessionList",
    "SessionResult",
    "SessionTouched",
    "SessionUpdated",
    "StorageConfigured",
    "StorageStatus",
    "ToolResult",
    "UserErased",
    "reply",
]


class ToolResult(BaseModel):
    """A tool's structured result."""

    @abstractmethod
    def text(self) -> str:
        """A short readable summary, shown to the model next to the structured content."""


def reply(result: ToolResult) -> CallToolResult:
    """The MCP result carrying ``result`` both as structured content and as text."""
    return CallToolResult(
        content=[TextContent(type="text", text=result.text())],
        structured_content=result.model_dump(mode="json"),
    )


def _expires(moment: datetime | None) -> str:
    return "it never expires" if moment is None else f"it expires at {moment:%Y-%m-%d %H:%M:%S} UTC"


class SessionCreated(ToolResult):
    """A new session; ``ttl_hours`` is its idle timeout (``None``: it never expires)."""

    session_id: str
    user_id: str
    project_id: str
    ttl_hours: float | None

    def text(self) -> str:
        lifetime = (
            "it never expires"
            if self.ttl_hours is None
            else f"it expires after {self.ttl_hours:g} h without activity"
        )
        return (
            f"Created session {self.session_id} for user {self.user_id} in project "
            f"{self.project_id}; {lifetime}."
        )


class SessionResult(ToolResult):
    """A session as stored now, and when it expires unless there is activity before then.

    ``session.conversation_history`` may be a window of the conversation: it starts at position
    ``history_start`` of the ``message_count`` messages there are. ``messages_cursor``, passed
    back as ``before``, reads the messages before it (``None``: the window starts at the first).
    """

    session: SessionState
    expires_at: datetime | None
    message_count: int
    history_start: int
    messages_cursor: str | None

    @classmethod
    def of(cls, stored: StoredSession, **extra: Any) -> Self:
        """The result for ``stored`` with the messages it holds and where they sit.

        ``extra``: the fields a subclass adds.
        """
        page = message_page(stored)
        return cls(
            session=stored.state,
            expires_at=expiry_time(stored),
            message_count=page.total,
            history_start=page.start,
            messages_cursor=page.next_cursor,
            **extra,
        )

    def _describe(self) -> str:
        """Identity, messages, activity and revision, as a clause."""
        state = self.session
        shown = len(state.conversation_history)
        messages = f"{self.message_count} message(s)"
        if shown != self.message_count:
            messages += f" ({shown} shown, from position {self.history_start})"
        return (
            f"session {state.session_id} (user {state.user_id}, project {state.project_id}): "
            f"{messages}, last activity {state.last_activity:%Y-%m-%d %H:%M:%S} UTC, "
            f"revision {state.revision}"
        )

    def text(self) -> str:
        text = self._describe()
        text = f"{text[0].upper()}{text[1:]}; {_expires(self.expires_at)}."
        if self.messages_cursor is None:
            return text
        return (
            f"{text} Older messages: call get_serverless_session with "
            f"before={self.messages_cursor!r} (and last=N for at most N of them)."
        )


class SessionUpdated(SessionResult):
    """A session after an update, with the fields the update set."""

    updated_fields: list[str]

    def text(self) -> str:
        fields = ", ".join(self.updated_fields) or "no fields"
        return f"Updated {fields} of {self._describe()}; {_expires(self.expires_at)}."


class MessagesAppended(ToolResult):
    """Messages added at the end of a session's conversation; the idle timeout restarted."""

    session_id: str
    message_count: int
    expires_at: datetime | None

    def text(self) -> str:
        return (
            f"Appended: session {self.session_id} now has {self.message_count} message(s); "
            f"{_expires(self.expires_at)}."
        )


class SessionTouched(ToolResult):
    """A session whose idle timeout restarted now."""

    session_id: str
    last_activity: datetime
    idle_ttl_hours: float | None
    expires_at: datetime | None

    @classmethod
    def of(cls, stored: StoredSession) -> Self:
        """The result for ``stored``, just touched."""
        idle = stored.state.idle_ttl_seconds
        return cls(
            session_id=stored.state.session_id,
            last_activity=stored.state.last_activity,
            idle_ttl_hours=None if idle is None else idle / 3600,
            expires_at=expiry_time(stored),
        )

    def text(self) -> str:
        return f"Session {self.session_id} is active; {_expires(self.expires_at)}."


class SessionDeleted(ToolResult):
    """A deleted session (deleting an unknown session is an error, not a result)."""

    session_id: str

    def text(self) -> str:
        return f"Deleted session {self.session_id}."


class SessionList(SessionPage, ToolResult):
    """One page of sessions, newest activity first; pass ``next_cursor`` back as ``cursor``."""

    def text(self) -> str:
        lines = [f"{len(self.sessions)} session(s), newest activity first:"]
        lines += [
            f"- {item.session_id} (user {item.user_id}, project {item.project_id})" for item in self.sessions
        ]
        if self.unreadable:
            lines.append(f"Unreadable (corrupt or undecryptable): {', '.join(self.unreadable)}")
        if self.next_cursor:
            lines.append(f"More: call again with cursor={self.next_cursor!r}.")
        return "\n".join(lines)


class StorageStatus(ToolResult):
    """The storage answered; ``details`` is its health report (no secrets)."""

    backend: str
    available: bool
    details: dict[str, Any]

    def text(self) -> str:
        latency = self.details.get("latency_ms")
        timing = f" in {latency} ms" if latency is not None else ""
        return f"The {self.backend} session storage is available (answered{timing})."


class CleanupResult(ToolResult):
    """How many expired sessions a cleanup removed."""

    removed: int

    def text(self) -> str:
        return f"Removed {self.removed} expired session(s)."


class UserErased(UserErasure, ToolResult):
    """The sessions of one user that an erase deleted (with ``dry_run``: would delete)."""

    def text(self) -> str:
        if self.dry_run:
            return f"Dry run: erasing user {self.user_id} would delete {self.count} session(s)."
        return f"Erased {self.count} session(s) of user {self.user_id}; nothing of theirs is left."


class StorageConfigured(ToolResult):
    """The storage the tools of this server process now use; ``settings`` has secrets masked.

    The switch is held in memory: every client of this process sees it, other instances of
    the server do not, and a restart returns to the configured storage.
    """

    backend: str
    previous_backend: str
    settings: dict[str, Any]

    def text(self) -> str:
        where = self.settings.get("url") or "the default SQLite file"
        return (
            f"Session storage switched from {self.previous_backend} to {self.backend} "
            f"({where}); the new backend answered before the switch. This applies to this "
            "server process only, for all its clients, until it restarts."
        )

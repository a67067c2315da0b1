"""Typed results of the MCP tools: structured content for programs, one line for the model.

The original tools returned only prose, including prose saying "failed" on failure. Here every
successful call returns one of these models (published as the tool's output schema) plus its
:meth:`ToolResult.text`; failures never produce a result — they are tool errors.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from serverless_sessions.model import SessionState
from serverless_sessions.pages import SessionPage

__all__ = [
    "CleanupResult",
    "SessionCreated",
    "SessionDeleted",
    "SessionList",
    "SessionResult",
    "SessionUpdated",
    "StorageConfigured",
    "StorageStatus",
    "ToolResult",
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


def _describe(state: SessionState) -> str:
    return (
        f"session {state.session_id} (user {state.user_id}, project {state.project_id}): "
        f"{len(state.conversation_history)} message(s), last activity "
        f"{state.last_activity:%Y-%m-%d %H:%M:%S} UTC, revision {state.revision}"
    )


class SessionCreated(ToolResult):
    """A new session; ``ttl_hours`` is its idle timeout."""

    session_id: str
    user_id: str
    project_id: str
    ttl_hours: float

    def text(self) -> str:
        return (
            f"Created session {self.session_id} for user {self.user_id} in project "
            f"{self.project_id}; it expires after {self.ttl_hours:g} h without activity."
        )


class SessionResult(ToolResult):
    """A session as stored now."""

    session: SessionState

    def text(self) -> str:
        text = _describe(self.session)
        return text[0].upper() + text[1:] + "."


class SessionUpdated(ToolResult):
    """A session after an update, with the fields the update set."""

    session: SessionState
    updated_fields: list[str]

    def text(self) -> str:
        fields = ", ".join(self.updated_fields) or "no fields"
        return f"Updated {fields} of {_describe(self.session)}."


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


class StorageConfigured(ToolResult):
    """The storage the tools now use; ``settings`` has every secret masked."""

    backend: str
    previous_backend: str
    settings: dict[str, Any]

    def text(self) -> str:
        where = self.settings.get("url") or "the default SQLite file"
        return (
            f"Session storage switched from {self.previous_backend} to {self.backend} "
            f"({where}); the new backend answered before the switch."
        )

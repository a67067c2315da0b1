"""The MCP server: the original eight tools plus ``touch``, on the official SDK, over the manager.

Names, parameters and meanings are the original module's, so existing prompts keep working
(``session_data`` of the create tool is the session's metadata; listing gained optional
``limit``/``cursor``). Each tool is one manager call; every library error becomes a
:class:`ToolError` carrying the library's message (the SDK would otherwise hide it behind
"Error executing tool"), so a failure is always ``is_error`` and never a cheerful text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from serverless_sessions.cli.backends import configured_settings, default_ttl_hours
from serverless_sessions.cli.stored import require_stored
from serverless_sessions.errors import SessionError, SessionNotFoundError
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.mcp_server.results import (
    CleanupResult,
    SessionCreated,
    SessionDeleted,
    SessionList,
    SessionResult,
    SessionTouched,
    SessionUpdated,
    StorageConfigured,
    StorageStatus,
    reply,
)
from serverless_sessions.mcp_server.state import StorageHolder
from serverless_sessions.settings import StorageSettings
from serverless_sessions.storage.base import SessionStorage

__all__ = ["build_server", "run"]

INSTRUCTIONS = (
    "Session state that survives serverless restarts: create a session, keep its id, and "
    "resume it later (from any instance) with get_serverless_session. Sessions expire after "
    "ttl_hours without activity; every update, or touch_serverless_session, is activity and "
    "restarts that timeout. Reading is not activity."
)

SessionId = Annotated[str, Field(description="Session id returned by create_serverless_session.")]
NewTTLHours = Annotated[
    float | None,
    Field(description="New idle timeout in hours; omitted restarts the session's own.", gt=0),
]


@asynccontextmanager
async def _using(
    holder: StorageHolder,
) -> AsyncIterator[tuple[ServerlessSessionManager, SessionStorage]]:
    """Borrow the current storage; a library error becomes a tool error with its message."""
    try:
        async with holder.borrow() as borrowed:
            yield borrowed
    except SessionError as exc:
        raise ToolError(str(exc)) from exc



def build_server(holder: StorageHolder) -> MCPServer:
    """An MCP server whose tools act on ``holder``'s storage (the caller closes ``holder``)."""
    server = MCPServer("serverless-sessions", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool()
    async def create_serverless_session(
        user_id: str,
        project_id: str,
        session_data: Annotated[
            dict[str, Any] | None,
            Field(
                description="Any JSON object, stored as the session's metadata. Set "
                "conversation_history or permissions later with update_serverless_session."
            ),
        ] = None,
        ttl_hours: Annotated[
            float | None,
            Field(description="Idle timeout in hours; omitted: the server's default_ttl.", gt=0),
        ] = None,
    ) -> Annotated[CallToolResult, SessionCreated]:
        """Create a session for a user and project; returns its id."""
        hours = default_ttl_hours(holder.settings) if ttl_hours is None else ttl_hours
        async with _using(holder) as (manager, _):
            session_id = await manager.create_session(user_id, project_id, session_data, ttl_hours=hours)
        return reply(
            SessionCreated(session_id=session_id, user_id=user_id, project_id=project_id, ttl_hours=hours)
        )

    @server.tool()
    async def get_serverless_session(
        session_id: SessionId,
    ) -> Annotated[CallToolResult, SessionResult]:
        """Resume a session: its full state and expiry (an error if it does not exist or expired).

        Reading does not renew the session; see touch_serverless_session.
        """
        async with _using(holder) as (manager, _):
            stored = await require_stored(manager, session_id)
        return reply(SessionResult.of(stored))

    @server.tool()
    async def update_serverless_session(
        session_id: SessionId,
        updates: Annotated[
            dict[str, Any],
            Field(description="Fields to set, e.g. {'metadata': {...}, 'conversation_history': [...]}"),
        ],
        ttl_hours: NewTTLHours = None,
    ) -> Annotated[CallToolResult, SessionUpdated]:
        """Set fields of a session (validated; identity fields cannot change).

        The update is activity: it restarts the session's idle timeout.
        """
        async with _using(holder) as (manager, _):
            await manager.update_session(session_id, updates, ttl_hours=ttl_hours)
            stored = await require_stored(manager, session_id)
        return reply(SessionUpdated.of(stored, updated_fields=sorted(updates)))

    @server.tool()
    async def touch_serverless_session(
        session_id: SessionId, ttl_hours: NewTTLHours = None
    ) -> Annotated[CallToolResult, SessionTouched]:
        """Keep a session alive: record activity now, restarting its idle timeout.

        The session's content does not change; a hard deadline, if it has one, still applies.
        """
        async with _using(holder) as (manager, _):
            await manager.touch(session_id, ttl_hours=ttl_hours)
            stored = await require_stored(manager, session_id)
        return reply(SessionTouched.of(stored))

    @server.tool()
    async def delete_serverless_session(
        session_id: SessionId,
    ) -> Annotated[CallToolResult, SessionDeleted]:
        """Delete a session (an error if there is no such session)."""
        async with _using(holder) as (manager, _):
            if not await manager.delete_session(session_id):
                raise SessionNotFoundError(session_id)
        return reply(SessionDeleted(session_id=session_id))

    @server.tool()
    async def list_serverless_sessions(
        user_id: str | None = None,
        project_id: str | None = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Page size.")] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page.")] = None,
    ) -> Annotated[CallToolResult, SessionList]:
        """List live sessions, optionally of one user and/or project, newest first."""
        async with _using(holder) as (manager, _):
            page = await manager.list_sessions(
                user_id=user_id, project_id=project_id, limit=limit, cursor=cursor
            )
        return reply(SessionList.model_validate(page.model_dump()))

    @server.tool()
    async def test_serverless_storage() -> Annotated[CallToolResult, StorageStatus]:
        """Check that the session storage answers (an error saying why if it does not)."""
        async with _using(holder) as (_, storage):
            report = await storage.health()
        if not report.get("available"):
            reason = report.get("error") or "it did not answer"
            raise ToolError(f"the {holder.backend} session storage is unavailable: {reason}")
        return reply(StorageStatus(backend=holder.backend, available=True, details=report))

    @server.tool()
    async def cleanup_serverless_sessions() -> Annotated[CallToolResult, CleanupResult]:
        """Remove expired sessions and their index entries."""
        async with _using(holder) as (manager, _):
            removed = await manager.cleanup_sessions()
        return reply(CleanupResult(removed=removed))

    @server.tool()
    async def configure_serverless_storage(
        backend: Annotated[str, Field(description="memory, sqlite (or local), redis or s3.")],
        config_updates: Annotated[
            dict[str, Any],
            Field(
                description="'url' or connection fields (redis: host, port, db, username, "
                "password, ssl; sqlite: path, storage_dir; s3: bucket_name, key_prefix), "
                "plus any setting (namespace, default_ttl, timeout ...)."
            ),
        ],
    ) -> Annotated[CallToolResult, StorageConfigured]:
        """Switch the session storage; the new one must answer before it replaces the old."""
        try:
            settings = configured_settings(holder.settings, backend, config_updates)
            previous = await holder.switch(settings)
        except SessionError as exc:
            raise ToolError(str(exc)) from exc
        return reply(
            StorageConfigured(
                backend=holder.backend, previous_backend=previous, settings=settings.public_dict()
            )
        )

    return server


def run(
    settings: StorageSettings,
    *,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Serve until the client disconnects (stdio) or the process is stopped (HTTP)."""
    holder = StorageHolder(settings)
    server = build_server(holder)

    async def main() -> None:
        try:
            if transport == "stdio":
                await server.run_stdio_async()
            else:
                await server.run_streamable_http_async(host=host, port=port)
        finally:
            await holder.close()

    anyio.run(main)

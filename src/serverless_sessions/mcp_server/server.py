"""The MCP server: the original eight tools plus touch, append and erase, on the official SDK.

Names, parameters and meanings are the original module's, so existing prompts keep working
(``session_data`` of the create tool is the session's metadata; listing gained optional
``limit``/``cursor``, and get optional ``last``/``before`` to read a long conversation a page
at a time). Each tool is one manager call; every library error becomes a
:class:`ToolError` carrying the library's message (the SDK would otherwise hide it behind
"Error executing tool"), so a failure is always ``is_error`` and never a cheerful text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import Field, ValidationError

from serverless_sessions.backends import BACKENDS
from serverless_sessions.config.selection import configured_settings, default_ttl_hours
from serverless_sessions.errors import SessionError, SessionNotFoundError
from serverless_sessions.listing import expiry_time
from serverless_sessions.manager import ServerlessSessionManager, require_stored
from serverless_sessions.mcp_server.access import Caller, current_caller, owned_session
from serverless_sessions.mcp_server.http import HttpOptions
from serverless_sessions.mcp_server.results import (
    CleanupResult,
    MessagesAppended,
    SessionCreated,
    SessionDeleted,
    SessionList,
    SessionResult,
    SessionTouched,
    SessionUpdated,
    StorageConfigured,
    StorageStatus,
    UserErased,
    reply,
)
from serverless_sessions.mcp_server.state import StorageHolder
from serverless_sessions.model import validation_problems
from serverless_sessions.storage.base import SessionStorage

__all__ = ["build_server"]

INSTRUCTIONS = (
    "Session state that survives serverless restarts: create a session, keep its id, and "
    "resume it later (from any instance) with get_serverless_session. Sessions expire after "
    "ttl_hours without activity; every update, or touch_serverless_session, is activity and "
    "restarts that timeout. Reading is not activity. Add each turn's new messages with "
    "append_to_serverless_session instead of sending the whole conversation again, and read "
    "a long conversation back with get_serverless_session(last=N). Over authenticated HTTP "
    "you see and create only your own sessions: user_id is the principal of your token."
)

SessionId = Annotated[str, Field(description="Session id returned by create_serverless_session.")]
NewTTLHours = Annotated[
    float | None,
    Field(description="New idle timeout in hours; omitted restarts the session's own.", gt=0),
]
UserId = Annotated[
    str | None,
    Field(
        description="The user; over authenticated HTTP it is your principal (omit it or give "
        "your own), otherwise required."
    ),
]
_VERSION = version("serverless-sessions")
# Read from the backend table, so a backend added there is offered here too.
_BACKEND_CHOICES = f"One of {', '.join(BACKENDS)} (or local, the original name of sqlite)."


class _SessionsServer(MCPServer[Any]):
    """The SDK's server, with argument errors as one line naming each argument.

    The SDK reports a call whose arguments fail validation with pydantic's multi-line dump,
    which ends in a documentation URL and repeats the rejected values.
    """

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            raise ToolError(
                f"Error executing tool {name}: invalid arguments: {validation_problems(cause)}"
            ) from cause


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


def build_server(
    holder: StorageHolder, *, http: HttpOptions | None = None, allow_configure: bool = False
) -> MCPServer[Any]:
    """An MCP server whose tools act on ``holder``'s storage (the caller closes ``holder``).

    With ``http`` carrying authentication, the server checks bearer tokens and each principal
    sees only its own sessions (:mod:`.access`); serve its ``streamable_http_app`` with
    ``http.transport_security()``. Without it (stdio, or ``insecure_no_auth``) every caller
    sees every session. ``configure_serverless_storage`` works only with ``allow_configure``
    (and then, with authentication, for admin principals only).
    """
    auth = None if http is None else http.auth
    server = _SessionsServer(
        "serverless-sessions",
        version=_VERSION,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        auth=None if http is None else http.auth_settings(),
        token_verifier=None if auth is None else auth.verifier,
    )

    def caller() -> Caller:
        return current_caller(scoped=auth is not None)

    @server.tool()
    async def create_serverless_session(
        project_id: str,
        user_id: UserId = None,
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
        owner = caller().user_for(user_id, tool="create_serverless_session")
        hours = default_ttl_hours(holder.settings) if ttl_hours is None else ttl_hours
        async with _using(holder) as (manager, _):
            session_id = await manager.create_session(owner, project_id, session_data, ttl_hours=hours)
        return reply(
            SessionCreated(session_id=session_id, user_id=owner, project_id=project_id, ttl_hours=hours)
        )

    @server.tool()
    async def get_serverless_session(
        session_id: SessionId,
        last: Annotated[
            int | None,
            Field(
                ge=0,
                description="Return only the last N messages of conversation_history "
                "(message_count says how many there are); omitted: all of them.",
            ),
        ] = None,
        before: Annotated[
            str | None,
            Field(
                description="messages_cursor of an earlier result: return the messages before "
                "that result's (with last: at most N of them)."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, SessionResult]:
        """Resume a session: its state and expiry (an error if it does not exist or expired).

        A long conversation need not be read whole: last=20 returns its 20 newest messages,
        with message_count (how many there are), history_start (the position of the first one
        returned) and messages_cursor (pass it as before for older ones; null at the start).
        Reading does not renew the session; see touch_serverless_session.
        """
        who = caller()
        async with _using(holder) as (manager, _):
            if before is not None:
                # Ownership first: a cursor is checked against the session it names, and that
                # answer must not tell another principal's session from a missing one.
                await owned_session(manager, who, session_id, history_limit=0)
            stored = await owned_session(manager, who, session_id, history_limit=last, before=before)
        return reply(SessionResult.of(stored))

    @server.tool()
    async def append_to_serverless_session(
        session_id: SessionId,
        messages: Annotated[
            list[Any],
            Field(
                description="The new messages, oldest first: JSON values, e.g. "
                "[{'role': 'user', 'content': '...'}, {'role': 'assistant', 'content': '...'}]."
            ),
        ],
        ttl_hours: NewTTLHours = None,
    ) -> Annotated[CallToolResult, MessagesAppended]:
        """Add messages at the end of a session's conversation_history; returns the new count.

        Use it for every new turn instead of sending the whole conversation again with
        update_serverless_session: only the new messages are sent and written, all of them or
        none, and appends made at the same time by several clients all land. It is activity:
        it restarts the session's idle timeout.
        """
        who = caller()
        async with _using(holder) as (manager, _):
            await owned_session(manager, who, session_id, history_limit=0)
            count = await manager.append_messages(session_id, messages, ttl_hours=ttl_hours)
            stored = await require_stored(manager, session_id, history_limit=0)
        return reply(
            MessagesAppended(session_id=session_id, message_count=count, expires_at=expiry_time(stored))
        )

    @server.tool()
    async def update_serverless_session(
        session_id: SessionId,
        updates: Annotated[
            dict[str, Any],
            Field(
                description="Fields to set, e.g. {'metadata': {...}, 'permissions': [...]}. "
                "conversation_history given here replaces the whole conversation: to add "
                "messages, use append_to_serverless_session."
            ),
        ],
        ttl_hours: NewTTLHours = None,
    ) -> Annotated[CallToolResult, SessionUpdated]:
        """Set fields of a session (validated; identity fields cannot change).

        The update is activity: it restarts the session's idle timeout.
        """
        who = caller()
        async with _using(holder) as (manager, _):
            await owned_session(manager, who, session_id, history_limit=0)
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
        who = caller()
        async with _using(holder) as (manager, _):
            await owned_session(manager, who, session_id, history_limit=0)
            await manager.touch(session_id, ttl_hours=ttl_hours)
            # The reply shows the activity and the expiry: the head has both, the messages neither.
            stored = await require_stored(manager, session_id, history_limit=0)
        return reply(SessionTouched.of(stored))

    @server.tool()
    async def delete_serverless_session(
        session_id: SessionId,
    ) -> Annotated[CallToolResult, SessionDeleted]:
        """Delete a session (an error if there is no such session)."""
        who = caller()
        async with _using(holder) as (manager, _):
            await owned_session(manager, who, session_id, history_limit=0)
            if not await manager.delete_session(session_id):
                raise SessionNotFoundError(session_id)
        return reply(SessionDeleted(session_id=session_id))

    @server.tool()
    async def list_serverless_sessions(
        user_id: UserId = None,
        project_id: str | None = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Page size.")] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page.")] = None,
    ) -> Annotated[CallToolResult, SessionList]:
        """List live sessions, optionally of one user and/or project, newest first.

        Over authenticated HTTP only your own sessions are listed.
        """
        user = caller().user_filter(user_id)
        async with _using(holder) as (manager, _):
            page = await manager.list_sessions(
                user_id=user, project_id=project_id, limit=limit, cursor=cursor
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
        """Remove expired sessions and their index entries (admin principals only over HTTP)."""
        caller().require_admin("cleanup_serverless_sessions")
        async with _using(holder) as (manager, _):
            removed = await manager.cleanup_sessions()
        return reply(CleanupResult(removed=removed))

    @server.tool()
    async def erase_user_sessions(
        user_id: Annotated[str, Field(description="The user whose sessions are all deleted.")],
        dry_run: Annotated[
            bool, Field(description="Only count the user's sessions; delete nothing.")
        ] = False,
    ) -> Annotated[CallToolResult, UserErased]:
        """Delete every session of a user, index entries included (right to be forgotten).

        Admin principals only over HTTP. Also purges the storage's expired sessions, so none
        of the user's is left; it cannot be undone.
        """
        caller().require_admin("erase_user_sessions")
        async with _using(holder) as (manager, _):
            erased = await manager.erase_user(user_id, dry_run=dry_run)
        return reply(UserErased.model_validate(erased.model_dump()))

    @server.tool()
    async def configure_serverless_storage(
        backend: Annotated[str, Field(description=_BACKEND_CHOICES)],
        config_updates: Annotated[
            dict[str, Any],
            Field(
                description="'url' or connection fields (redis: host, port, db, username, "
                "password, ssl; sqlite: path, storage_dir; s3: bucket_name, key_prefix; "
                "postgres: host, port, database, username, password; dynamodb: table, region, "
                "endpoint_url), plus any setting (namespace, default_ttl, timeout ...)."
            ),
        ],
    ) -> Annotated[CallToolResult, StorageConfigured]:
        """Switch the storage of this server process, for all its clients, until it restarts.

        Only when the server was started with --allow-configure (over authenticated HTTP, by
        an admin principal); the new storage must answer before it replaces the old.
        """
        if not allow_configure:
            raise ToolError(
                "configure_serverless_storage is disabled on this server: start it with "
                "`serverless-sessions serve --allow-configure` to enable it"
            )
        caller().require_admin("configure_serverless_storage")
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

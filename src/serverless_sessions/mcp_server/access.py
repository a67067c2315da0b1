"""Who is calling a tool, and what that caller may see and do.

Over HTTP with authentication every call has a *principal*, taken from the access token the
SDK's bearer middleware verified for the request: the token's ``subject`` if the verifier set
one, else its ``client_id``. A principal owns the sessions whose ``user_id`` is its name and
sees no others; it is an *admin* when the token carries :data:`ADMIN_SCOPE`, which admin-only
tools (cleanup, erasing a user, reconfiguration) require. Stdio and ``--insecure-no-auth`` have no principal:
the caller is unscoped and may do everything, as before authentication existed.

A session the caller does not own is reported exactly as a missing one (same error, same
text), so an id cannot be probed for existence by someone else.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver.exceptions import ToolError

from serverless_sessions.errors import CorruptSessionError, SessionNotFoundError
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.storage.base import StoredSession

__all__ = ["ADMIN_SCOPE", "Caller", "current_caller", "owned_session"]

ADMIN_SCOPE = "serverless-sessions:admin"
"""The scope that makes a token's principal an admin (cleanup, erasing a user, reconfiguration)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller of one tool call; ``principal=None`` is an unscoped (local) caller."""

    principal: str | None
    admin: bool

    @classmethod
    def of_token(cls, token: AccessToken) -> Caller:
        """The principal a verified token stands for (see the module docstring)."""
        return cls(principal=token.subject or token.client_id, admin=ADMIN_SCOPE in token.scopes)

    def may_see(self, stored: StoredSession) -> bool:
        """Whether the session is the caller's (every session is, for an unscoped caller)."""
        return self.principal is None or stored.state.user_id == self.principal

    def user_for(self, user_id: str | None, *, tool: str) -> str:
        """The owner of a session this caller creates: itself, whether named or not."""
        if self.principal is None:
            if user_id is None:
                raise ToolError(f"{tool} needs user_id (this server has no authentication to take it from)")
            return user_id
        self._refuse_other_user(user_id)
        return self.principal

    def user_filter(self, user_id: str | None) -> str | None:
        """The user a listing is limited to: the principal, or ``user_id`` if unscoped."""
        if self.principal is None:
            return user_id
        self._refuse_other_user(user_id)
        return self.principal

    def require_admin(self, tool: str) -> None:
        """Refuse ``tool`` to a principal that is not an admin."""
        if not self.admin:
            raise ToolError(
                f"{tool} needs an admin principal; {self.principal!r} is not one "
                f"(its token lacks the {ADMIN_SCOPE!r} scope)"
            )

    def _refuse_other_user(self, user_id: str | None) -> None:
        if user_id is not None and user_id != self.principal:
            raise ToolError(
                f"user_id {user_id!r} is not yours: you are authenticated as {self.principal!r}; "
                "omit user_id or pass your own"
            )


def current_caller(*, scoped: bool) -> Caller:
    """The caller of the running tool call: its token's principal, or unscoped.

    ``scoped`` is whether the server verifies tokens; then a call without a verified token
    cannot happen (the middleware answers 401 first), and refusing it is the safe reading.
    """
    if not scoped:
        return Caller(principal=None, admin=True)
    token = get_access_token()
    if token is None:
        raise ToolError("not authenticated: send a bearer token")
    return Caller.of_token(token)


async def owned_session(
    manager: ServerlessSessionManager,
    caller: Caller,
    session_id: str,
    *,
    history_limit: int | None = None,
    before: str | None = None,
) -> StoredSession:
    """The session if it exists, is live and is the caller's; else :class:`SessionNotFoundError`.

    ``history_limit`` and ``before`` are :meth:`~ServerlessSessionManager.load_session`'s: a tool that only
    checks ownership before writing passes 0, so a long conversation is not read for nothing.
    A session that cannot be decoded has no readable owner: it is reported as corrupt only to
    a caller whose own index lists it, and as missing to anyone else.
    """
    try:
        stored = await manager.load_session(session_id, history_limit=history_limit, before=before)
    except CorruptSessionError:
        if caller.principal is not None and session_id not in await manager.list_user_sessions(
            caller.principal
        ):
            raise SessionNotFoundError(session_id) from None
        raise
    if stored is None or not caller.may_see(stored):
        raise SessionNotFoundError(session_id)
    return stored

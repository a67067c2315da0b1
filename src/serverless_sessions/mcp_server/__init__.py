"""The MCP server of serverless-sessions (needs the ``mcp`` extra).

``serverless-sessions serve`` calls :func:`run`. An application embedding the server builds it
around its own :class:`StorageHolder` with :func:`build_server`; for HTTP it passes
:class:`HttpOptions` with an :class:`HttpAuth` whose verifier is :class:`StaticTokenVerifier`
or its own (OAuth introspection, JWT: see :mod:`.verifiers` for what a token must carry).
"""

from __future__ import annotations

from serverless_sessions.mcp_server.access import ADMIN_SCOPE, Caller
from serverless_sessions.mcp_server.http import HttpAuth, HttpOptions
from serverless_sessions.mcp_server.runner import run
from serverless_sessions.mcp_server.server import build_server
from serverless_sessions.mcp_server.state import StorageHolder
from serverless_sessions.mcp_server.verifiers import StaticTokenVerifier, load_token_verifier

__all__ = [
    "ADMIN_SCOPE",
    "Caller",
    "HttpAuth",
    "HttpOptions",
    "StaticTokenVerifier",
    "StorageHolder",
    "build_server",
    "load_token_verifier",
    "run",
]

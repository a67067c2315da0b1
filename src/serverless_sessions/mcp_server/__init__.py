"""The MCP server of serverless-sessions (needs the ``mcp`` extra).

``serverless-sessions serve`` calls :func:`run`; tests and embedding applications can build the
server around their own :class:`StorageHolder` with :func:`build_server`.
"""

from __future__ import annotations

from serverless_sessions.mcp_server.server import build_server, run
from serverless_sessions.mcp_server.state import StorageHolder

__all__ = ["StorageHolder", "build_server", "run"]

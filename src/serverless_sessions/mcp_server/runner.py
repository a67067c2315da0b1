"""Running the server: over stdio for one local client, or over streamable HTTP.

For HTTP the port is bound here, before the startup line is printed, so the line never
announces an endpoint that is not listening, and a port in use is a one-line error.
"""

from __future__ import annotations

import socket
import sys

import anyio

from serverless_sessions.config.settings import StorageSettings
from serverless_sessions.errors import ConfigurationError
from serverless_sessions.mcp_server.http import HttpOptions
from serverless_sessions.mcp_server.server import build_server
from serverless_sessions.mcp_server.state import StorageHolder

__all__ = ["run"]


def run(settings: StorageSettings, *, http: HttpOptions | None = None, allow_configure: bool = False) -> None:
    """Serve over stdio until the client disconnects, or over HTTP (``http``) until stopped."""
    listener = None if http is None else _listen(http)
    try:
        holder = StorageHolder(settings)
        server = build_server(holder, http=http, allow_configure=allow_configure)

        async def main() -> None:
            try:
                if http is None or listener is None:
                    await server.run_stdio_async()
                    return
                import uvicorn

                app = server.streamable_http_app(transport_security=http.transport_security(), host=http.host)
                config = uvicorn.Config(app, log_level="warning")
                print(http.describe(allow_configure=allow_configure), file=sys.stderr, flush=True)
                await uvicorn.Server(config).serve(sockets=[listener])
            finally:
                await holder.close()

        anyio.run(main)
    finally:
        if listener is not None:
            listener.close()


def _listen(http: HttpOptions) -> socket.socket:
    family = socket.AF_INET6 if ":" in http.host else socket.AF_INET
    try:
        return socket.create_server((http.host, http.port), family=family)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigurationError(f"cannot listen on {http.host} port {http.port}: {reason}") from None

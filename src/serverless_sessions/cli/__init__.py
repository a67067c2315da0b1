"""The ``serverless-sessions`` operator CLI.

This module stays import-light on purpose: a missing ``cli`` extra becomes one clear line naming
what to install instead of a traceback. The CLI and the MCP server share the configuration
(:mod:`serverless_sessions.config.selection`) and the backend table, never each other's code.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script passes it to ``sys.exit``)."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ModuleNotFoundError as exc:
        print(
            f"serverless-sessions: the CLI needs {exc.name!r}; "
            "install it with: pip install 'serverless-sessions[cli]'",
            file=sys.stderr,
        )
        return 2
    from serverless_sessions.cli.app import run

    return run(argv)

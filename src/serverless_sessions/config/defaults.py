"""What applies when nothing is configured, readable without loading the settings machinery.

:func:`~serverless_sessions.factory.create_session_storage` given only a URL (or nothing) asks
:func:`configured_outside_arguments` first: when no ``SERVERLESS_SESSIONS_*`` variable is set
and no config file would be read, the settings would be these defaults plus the arguments, so
the storage is built from them directly and pydantic-settings, the config-file readers and the
settings model are never imported (a serverless cold start pays ~20-30 ms less). The settings
model (:mod:`.settings`) takes its defaults from here, so both paths build the same storage.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "ENV_PREFIX",
    "ORIGINAL_CONFIG_FILE",
    "configured_outside_arguments",
]

ENV_PREFIX = "SERVERLESS_SESSIONS_"
ORIGINAL_CONFIG_FILE = Path("~/.claude/data/serverless_config.json")
"""Where the original module kept its config; read when no config file is named."""

DEFAULT_NAMESPACE = "session"
DEFAULT_TTL = 86400.0
"""Seconds a new session lives without activity when no TTL is given."""
DEFAULT_TIMEOUT = 5.0
"""Seconds a backend operation may take."""


def configured_outside_arguments() -> bool:
    """Whether the environment or a config file would add to the arguments' settings.

    Matches variable names the way the settings read them: without regard to case.
    """
    if any(name.upper().startswith(ENV_PREFIX) for name in os.environ):
        return True
    return ORIGINAL_CONFIG_FILE.expanduser().is_file()

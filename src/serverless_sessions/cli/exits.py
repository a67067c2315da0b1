"""Exit codes, and the one table mapping the library's error tree onto them.

Scripts branch on these codes, so they are part of the CLI's interface::

    0  success
    1  not found / nothing done (unknown session, nothing deleted, conflicting writes,
       a migration or re-encryption that left sessions behind)
    2  usage or configuration error (bad option, URL, config file, id, update or size)
    3  backend unavailable or failing (unreachable, timed out, unreadable stored data)
    70 internal error (a bug: please report it with the ``--debug`` traceback)
"""

from __future__ import annotations

from enum import IntEnum

from serverless_sessions.errors import (
    CapabilityNotSupportedError,
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionError,
    MigrationError,
    SessionConflictError,
    SessionError,
    SessionNotFoundError,
    SessionTooLargeError,
    StorageError,
)

__all__ = ["CommandFailed", "ExitCode", "exit_code_for"]


class ExitCode(IntEnum):
    """The CLI's exit codes (see the module docstring)."""

    OK = 0
    NOTHING_DONE = 1
    USAGE = 2
    UNAVAILABLE = 3
    INTERNAL = 70


# First match wins, so a subclass must come before its base (the capability error is a
# StorageError, but it means "choose another backend", a configuration matter).
_BY_ERROR: tuple[tuple[type[SessionError], ExitCode], ...] = (
    (SessionNotFoundError, ExitCode.NOTHING_DONE),
    (MigrationError, ExitCode.NOTHING_DONE),
    (SessionConflictError, ExitCode.NOTHING_DONE),
    (InvalidSessionError, ExitCode.USAGE),
    (SessionTooLargeError, ExitCode.USAGE),
    (ConfigurationError, ExitCode.USAGE),
    (CapabilityNotSupportedError, ExitCode.USAGE),
    (StorageError, ExitCode.UNAVAILABLE),
    (CorruptSessionError, ExitCode.UNAVAILABLE),
)


def exit_code_for(error: SessionError) -> ExitCode:
    """The exit code for a library error; an error class missing from the table is a bug."""
    for kind, code in _BY_ERROR:
        if isinstance(error, kind):
            return code
    return ExitCode.INTERNAL


class CommandFailed(Exception):
    """A command that ran but did not achieve its goal (not a library error); carries its code."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.NOTHING_DONE) -> None:
        super().__init__(message)
        self.exit_code = exit_code

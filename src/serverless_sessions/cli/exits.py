"""Exit codes, and the one table mapping the library's error tree onto them.

Scripts branch on these codes, so they are part of the CLI's interface; :data:`MEANINGS` says
what each means (``--help`` shows it). In more detail:

* 1 covers an unknown session, nothing deleted, conflicting writes, and a migration or
  re-encryption that left sessions behind;
* 2 a bad option, URL, config file, id, update or size;
* 3 a backend that is unreachable, timed out or failing;
* 4 stored bytes that do not decode, ciphertext none of the configured keys opens, or a
  plaintext session where encryption is required;
* 70 a bug: please report it with the ``--debug`` traceback.
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

__all__ = ["MEANINGS", "CommandFailed", "ExitCode", "exit_code_for", "exit_codes_help"]


class ExitCode(IntEnum):
    """The CLI's exit codes (each one's meaning is in :data:`MEANINGS`)."""

    OK = 0
    NOTHING_DONE = 1
    USAGE = 2
    UNAVAILABLE = 3
    UNREADABLE = 4
    INTERNAL = 70
    INTERRUPTED = 130


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.NOTHING_DONE: "not found / nothing done",
    ExitCode.USAGE: "usage or configuration error",
    ExitCode.UNAVAILABLE: "backend unavailable",
    ExitCode.UNREADABLE: "a stored session cannot be read (corrupt, or not decryptable with the "
    "configured keys)",
    ExitCode.INTERNAL: "internal error",
    ExitCode.INTERRUPTED: "interrupted",
}


def exit_codes_help() -> str:
    """Every exit code and its meaning, as one sentence for ``--help``."""
    return "Exit codes: " + ", ".join(f"{int(code)} {meaning}" for code, meaning in MEANINGS.items()) + "."


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
    (CorruptSessionError, ExitCode.UNREADABLE),
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

"""The one exception tree of serverless-sessions.

Every error this library raises on purpose derives from :class:`SessionError`, so a caller can
catch one class at a boundary (the CLI maps it to an exit code, the MCP server to a tool error)::

    SessionError
    ├── SessionNotFoundError          the session does not exist, was deleted, or expired
    ├── SessionConflictError          a write carried a stale revision (optimistic concurrency)
    ├── SessionTooLargeError          the session's JSON exceeds max_session_bytes
    ├── InvalidSessionError           input rejected before anything was written
    │   ├── InvalidSessionIdError     a session id with a bad length or character set
    │   └── InvalidSessionUpdateError an update naming an unknown/immutable field or a bad value
    ├── CorruptSessionError           stored bytes that cannot be decoded (names the key)
    │   └── DecryptionError           ciphertext that fails authentication or has an unknown key
    ├── StorageError                  the backend failed
    │   ├── StorageUnavailableError   unreachable, timed out, or refused the connection
    │   └── CapabilityNotSupportedError  the cache lacks an optional capability
    ├── ConfigurationError            a bad URL, setting, or config file (names file and field)
    │   └── MissingDependencyError    an optional package is not installed (names the extra)
    ├── MigrationError                a migration could not finish (carries its report)
    │   └── MigrationVerificationError  the copies differ from, or lack, live source sessions
    └── ClosedError                   a cache, storage or manager used after ``close()``

Backend exceptions (redis-py, botocore, sqlite3) are translated at the adapter boundary with
``raise ... from exc`` so the original stays reachable as ``__cause__``. Messages carry context
(backend, operation, key, host) and never a password or key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serverless_sessions.operations.migration import MigrationReport

__all__ = [
    "CapabilityNotSupportedError",
    "ClosedError",
    "ConfigurationError",
    "CorruptSessionError",
    "DecryptionError",
    "InvalidSessionError",
    "InvalidSessionIdError",
    "InvalidSessionUpdateError",
    "MigrationError",
    "MigrationVerificationError",
    "MissingDependencyError",
    "SessionConflictError",
    "SessionError",
    "SessionNotFoundError",
    "SessionTooLargeError",
    "StorageError",
    "StorageUnavailableError",
]


class SessionError(Exception):
    """Root of every error raised on purpose by serverless-sessions."""


class SessionNotFoundError(SessionError, LookupError):
    """The session does not exist: never created, deleted, or expired."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} not found (never created, deleted or expired)")
        self.session_id = session_id


class SessionConflictError(SessionError):
    """A write was based on a revision that is no longer the stored one."""

    def __init__(self, key: str, expected: int, actual: int | None, *, message: str | None = None) -> None:
        found = "absent" if actual is None else f"revision {actual}"
        if message is None and expected == 0 and actual is not None:
            message = f"cannot create session {key!r}: it already exists"  # revision 0 means "new"
        super().__init__(
            message or f"conflicting write to {key!r}: expected revision {expected}, found {found}"
        )
        self.key = key
        self.expected = expected
        self.actual = actual


class SessionTooLargeError(SessionError, ValueError):
    """The session is larger than ``max_session_bytes`` (or a backend's own bound); nothing was written."""

    def __init__(
        self, session_id: str, size: int, limit: int, *, part: str | None = None, bound: str | None = None
    ) -> None:
        subject = f"session {session_id!r}" if part is None else f"{part} of session {session_id!r}"
        if bound is None:  # the library's own limit, on the JSON
            detail = (
                f"as JSON, over the limit of {limit} bytes "
                "(max_session_bytes, SERVERLESS_SESSIONS_MAX_SESSION_BYTES)"
            )
        else:  # a backend's own limit, on the bytes it would store
            detail = f"as stored, over the {limit} bytes left by {bound}"
        super().__init__(f"{subject} is {size} bytes {detail}")
        self.session_id = session_id
        self.size = size
        self.limit = limit


class InvalidSessionError(SessionError, ValueError):
    """Input was rejected before anything was written."""


class InvalidSessionIdError(InvalidSessionError):
    """A session id (or a namespace / user / project id) with a bad length or charset."""

    def __init__(self, value: object, reason: str, *, what: str = "session id") -> None:
        super().__init__(f"invalid {what} {value!r}: {reason}")
        self.value = value
        self.reason = reason


class InvalidSessionUpdateError(InvalidSessionError):
    """An update named an unknown or immutable field, or a value that fails validation."""


class CorruptSessionError(SessionError):
    """Stored bytes could not be decoded into a session."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"corrupt session payload at key {key!r}: {reason}")
        self.key = key
        self.reason = reason


class DecryptionError(CorruptSessionError):
    """Ciphertext failed authentication, was moved to another key, or names an unknown key."""


class StorageError(SessionError):
    """The storage backend failed an operation."""


class StorageUnavailableError(StorageError, ConnectionError):
    """The backend could not be reached within its timeout, or refused the connection."""


class CapabilityNotSupportedError(StorageError, NotImplementedError):
    """The cache in use lacks an optional capability the operation needs."""

    def __init__(self, cache: object, capability: str, operation: str) -> None:
        super().__init__(
            f"{type(cache).__name__} does not offer the {capability!r} capability "
            f"needed by {operation}; every built-in adapter offers it "
            f"(serverless_sessions.adapters.cache.<name>.Cache)"
        )
        self.capability = capability
        self.operation = operation


class ConfigurationError(SessionError, ValueError):
    """A bad URL, setting or config file; the message names the file and the field."""


class MissingDependencyError(ConfigurationError):
    """A feature needs an optional package that is missing or does not import.

    The message is one line naming the ``serverless-sessions`` extra that installs it, so a
    fresh install that lacks an extra gets an instruction instead of a ``ModuleNotFoundError``.
    """

    def __init__(self, feature: str, extra: str, package: str | None, reason: str | None = None) -> None:
        name = "" if package is None else f" {package!r}"
        # With a reason the package is there but broken or too old (or unknown: ``package=None``).
        what = f"the{name} package" if reason is None else f"a working{name} package ({reason})"
        super().__init__(f"{feature} needs {what}: pip install 'serverless-sessions[{extra}]'")
        self.feature = feature
        self.extra = extra
        self.package = package

    @classmethod
    @contextmanager
    def on_import(cls, *, feature: str, extra: str) -> Iterator[None]:
        """Wrap the import of an optional module: a failing import becomes this error.

        A missing module of serverless-sessions itself is a bug, not a missing extra, and keeps
        its traceback.
        """
        try:
            yield
        except ImportError as exc:
            package = (exc.name or "").partition(".")[0] or None
            if package == __name__.partition(".")[0]:
                raise
            missing = isinstance(exc, ModuleNotFoundError) and package is not None
            reason = None if missing else str(exc)
            raise cls(feature, extra, package, reason) from exc


class MigrationError(SessionError):
    """A migration could not finish; ``report`` (when known) says how far it got."""

    def __init__(self, message: str, report: MigrationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class MigrationVerificationError(MigrationError):
    """After copying, the destination does not hold every live source session unchanged."""


class ClosedError(SessionError, RuntimeError):
    """An object was used after ``close()``."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is closed; create a new one instead of reusing it")

"""Ids and namespaces: new ids from :mod:`secrets`; every id or name checked before it is a key.

Session ids are generated with 128 bits; user, project and namespace names are validated.

The original derived 64-bit ids from sha256(user:project:timestamp): predictable and colliding.
A caller-supplied id is validated because it becomes part of a key, a file name and an object
name; the charset below is safe in all three (no ``/``, no ``..`` traversal, no NUL).
"""

from __future__ import annotations

import re
import secrets

from serverless_sessions.errors import InvalidSessionIdError

__all__ = [
    "MAX_ID_LENGTH",
    "new_session_id",
    "validate_namespace",
    "validate_owner_id",
    "validate_session_id",
]

MAX_ID_LENGTH = 128
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*")
_OWNER_MAX_LENGTH = 256
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# One regex search instead of a Python test per character: every session read checks two ids.
_OWNER_FORBIDDEN_RE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def new_session_id() -> str:
    """A fresh id: 16 random bytes (128 bits) as 32 lowercase hex digits, safe in any key."""
    return secrets.token_hex(16)


def validate_session_id(session_id: object) -> str:
    """Return ``session_id`` if it is a safe id; raise :class:`InvalidSessionIdError` if not.

    Allowed: 1-128 characters of ``A-Z a-z 0-9 _ . : -``, starting with a letter or digit (so
    ``..`` and ``.hidden`` are refused, and ids containing ``:`` round-trip).
    """
    if not isinstance(session_id, str):
        raise InvalidSessionIdError(session_id, "must be a string")
    if not 1 <= len(session_id) <= MAX_ID_LENGTH:
        raise InvalidSessionIdError(session_id, f"length must be 1-{MAX_ID_LENGTH} characters")
    if not _SESSION_ID_RE.fullmatch(session_id):
        raise InvalidSessionIdError(
            session_id, "allowed characters are A-Z a-z 0-9 _ . : - (starting with a letter or digit)"
        )
    return session_id


def validate_owner_id(value: object, *, what: str) -> str:
    """Validate a user or project id: any non-blank unicode text without control characters."""
    if not isinstance(value, str):
        raise InvalidSessionIdError(value, "must be a string", what=what)
    if not value.strip():
        raise InvalidSessionIdError(value, "must not be empty or blank", what=what)
    if len(value) > _OWNER_MAX_LENGTH:
        raise InvalidSessionIdError(value, f"longer than {_OWNER_MAX_LENGTH} characters", what=what)
    if _OWNER_FORBIDDEN_RE.search(value):
        raise InvalidSessionIdError(value, "contains control or surrogate characters", what=what)
    return value


def validate_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is safe as a key prefix; raise a typed error otherwise.

    A colon is refused because it is the separator: ``"a:b" + "c"`` and ``"a" + "b:c"`` would
    otherwise collide.
    """
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise InvalidSessionIdError(
            namespace, "must be 1-64 characters of A-Z a-z 0-9 _ . -", what="namespace"
        )
    return namespace

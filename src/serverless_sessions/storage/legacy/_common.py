"""What the three legacy storages share: config parsing, the payload format, revision and TTL rules.

The payload is the original module's: gzip-compressed JSON of ``SessionState.to_dict()``. That
dict now also holds ``revision`` (and ``absolute_expires_at``), which the original module's
pydantic model ignored on read, so data written here stays readable by it. A payload without a
revision — written by the original module — counts as revision 1: it exists.
"""

from __future__ import annotations

import gzip
import logging
import warnings
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from serverless_sessions.codec import Codec
from serverless_sessions.errors import (
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionIdError,
    SessionConflictError,
    StorageError,
)
from serverless_sessions.ids import validate_session_id
from serverless_sessions.model import SessionState
from serverless_sessions.storage.base import SessionStorage, StoredSession
from serverless_sessions.ttl import KEEP_TTL, TTLArg
from serverless_sessions.ttl import ttl_seconds as validate_ttl

__all__ = [
    "LegacyConfig",
    "LegacyStorage",
    "decode_session",
    "encode_session",
    "next_revision",
    "owned_by",
    "parse_config",
    "session_id_from_name",
    "session_json",
    "ttl_for_write",
]

logger = logging.getLogger("serverless_sessions.storage.legacy")

DEFAULT_TTL_SECONDS = 24 * 3600.0
"""The original module's ``session_ttl_hours`` default, applied to new sessions without a TTL."""

_DECODER = Codec(compression="none")
_Config = TypeVar("_Config", bound="LegacyConfig")


class LegacyConfig(BaseModel):
    """Keys every legacy config dict accepts.

    Unknown keys are errors: a misspelt ``key_prefix`` would otherwise silently read and write
    somewhere else.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_ttl_seconds: float | None = Field(default=DEFAULT_TTL_SECONDS, gt=0)


def parse_config(model: type[_Config], config: Mapping[str, Any] | None, owner: str) -> _Config:
    """Validate ``config`` for ``owner``; errors name the field, never echo its value."""
    if config is not None and not isinstance(config, Mapping):
        raise ConfigurationError(f"{owner} config must be a dict, got {type(config).__name__}")
    try:
        return model.model_validate(dict(config or {}))
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigurationError(f"invalid {owner} config: {problems}") from None


def session_json(state: SessionState, revision: int) -> bytes:
    """The JSON body: the session dict as the original wrote it, plus its revision.

    Built by the codec so a legacy write is refused by the same limits (size, depth, exact
    JSON) that its reader enforces: nothing is stored that cannot be read back.
    """
    return _DECODER.json_body(state.model_copy(update={"revision": revision}))


def encode_session(state: SessionState, revision: int) -> bytes:
    """The original payload: gzip-compressed :func:`session_json`."""
    return gzip.compress(session_json(state, revision))


def decode_session(data: bytes, *, session_id: str, key: str) -> SessionState:
    """Parse a payload stored for ``session_id`` at ``key`` (named in every error)."""
    state = _DECODER.decode(data, key=key)
    if state.session_id != session_id:
        raise CorruptSessionError(key, f"payload belongs to session {state.session_id!r}")
    if state.revision == 0:
        state.revision = 1
    return state


def next_revision(state: SessionState, stored: int | None) -> int:
    """Check ``state.revision`` against the ``stored`` one (``None``: absent or expired).

    Returns the revision to write; raises :class:`SessionConflictError` on a stale revision.
    """
    if state.revision != (stored or 0):
        raise SessionConflictError(state.session_id, state.revision, stored)
    return state.revision + 1


def owned_by(user_id: str, project_id: str, want_user: str | None, want_project: str | None) -> bool:
    """Whether a session of ``user_id``/``project_id`` passes a listing filter (``None``: any)."""
    return want_user in (None, user_id) and want_project in (None, project_id)


def ttl_for_write(ttl: float | None, *, exists: bool, default: float | None) -> TTLArg:
    """``ttl`` if given; else keep an existing session's expiry, or give a new one ``default``."""
    if ttl is not None:
        return ttl
    return KEEP_TTL if exists else default


class LegacyStorage(SessionStorage):
    """Shared behaviour: a deprecation warning, id validation, revision bookkeeping, probing.

    Subclasses implement the ``_``-prefixed hooks; the public methods validate ids first, so
    no hook ever sees an id that could escape its key prefix or directory.
    """

    replacement: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        warnings.warn(
            f"{type(self).__name__} is deprecated and will be removed; use {self.replacement}",
            DeprecationWarning,
            stacklevel=3,
        )

    @abstractmethod
    async def _load(self, session_id: str) -> StoredSession | None: ...

    @abstractmethod
    async def _store(self, state: SessionState, ttl: float | None) -> int:
        """Write ``state`` if its revision is current; return the new revision."""

    @abstractmethod
    async def _delete(self, session_id: str) -> bool: ...

    @abstractmethod
    async def _list(self, user_id: str | None, project_id: str | None) -> list[str]: ...

    @abstractmethod
    def _iter_ids(self) -> AsyncIterator[str]: ...

    @abstractmethod
    async def _cleanup(self) -> int: ...

    @abstractmethod
    async def _ping(self) -> None:
        """Raise a :class:`StorageError` if the backend cannot serve requests now."""

    @abstractmethod
    def _public(self) -> dict[str, Any]:
        """Config facts for :meth:`describe`, without secrets."""

    async def store_session(self, session_state: SessionState, ttl_seconds: float | None = None) -> bool:
        self._check_open()
        validate_session_id(session_state.session_id)
        session_state.revision = await self._store(session_state, validate_ttl(ttl_seconds))
        return True

    async def load_session(self, session_id: str) -> StoredSession | None:
        self._check_open()
        return await self._load(validate_session_id(session_id))

    async def delete_session(self, session_id: str) -> bool:
        self._check_open()
        return await self._delete(validate_session_id(session_id))

    async def list_sessions(self, user_id: str | None = None, project_id: str | None = None) -> list[str]:
        self._check_open()
        return await self._list(user_id, project_id)

    async def iter_session_ids(self) -> AsyncIterator[str]:
        self._check_open()
        async for session_id in self._iter_ids():
            yield session_id

    async def cleanup_expired_sessions(self) -> int:
        self._check_open()
        return await self._cleanup()

    async def is_available(self) -> bool:
        if self._closed:
            return False
        try:
            await self._ping()
        except StorageError as exc:
            logger.info("%s is unavailable: %s", type(self).__name__, exc)
            return False
        return True

    async def health(self) -> dict[str, Any]:
        """:meth:`describe` plus ``available`` and, when it is not, the backend's ``error``."""
        self._check_open()
        try:
            await self._ping()
        except StorageError as exc:
            return {**self.describe(), "available": False, "error": str(exc)}
        return {**self.describe(), "available": True}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "deprecated": True, **self._public()}


def session_id_from_name(name: str, prefix: str, suffix: str) -> str | None:
    """The session id in an object or file ``name`` of the original layout, or ``None``.

    Names that do not hold a valid id (foreign files, temp files) are skipped and logged:
    they cannot have been written by a legacy storage.
    """
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    candidate = name[len(prefix) : len(name) - len(suffix)]
    try:
        return validate_session_id(candidate)
    except InvalidSessionIdError:
        logger.warning("skipping %r: not a session of the original layout", name)
        return None

"""``LocalFileStorage``: the original ``{storage_dir}/{session_id}.json.gz`` files, made safe.

Layout: one gzip file per session holding the original JSON. The expiry (absolute UNIX seconds)
rides in the gzip header's FEXTRA field (RFC 1952, subfield ``SS``), so a session and its expiry
are one file replaced atomically, and every gzip reader — the original module included — still
reads the body unchanged. Files written by the original module have no such field: they never
expire (the original ignored TTLs), until they are rewritten.

Guarantees:

* Session ids are validated (no ``/``, ``..``, NUL or absolute paths; ``:`` is refused on
  Windows, where it names an alternate stream), so nothing is written outside ``storage_dir``.
* Writes go to a temp file in the same directory, are fsynced, then ``os.replace``-d: a reader
  sees the old file or the new one, never a torn one.
* A write or delete holds a per-session lock file (``.{id}.lock``, created with ``O_EXCL``)
  while it reads the stored revision, checks it and replaces the file; concurrent writers of one
  session are serialised across threads and processes. Remaining race: a lock older than
  ``stale_lock_seconds`` is taken to be left by a crashed writer and removed; a writer stalled
  that long (a suspended process) can then race with the next one, and the last rename wins.
* File I/O runs in worker threads (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pydantic import Field

from serverless_sessions.errors import (
    CorruptSessionError,
    InvalidSessionIdError,
    SessionError,
    StorageError,
    StorageUnavailableError,
)
from serverless_sessions.ids import validate_session_id
from serverless_sessions.model import SessionState
from serverless_sessions.storage.base import StoredSession
from serverless_sessions.storage.legacy._common import (
    LegacyConfig,
    LegacyStorage,
    decode_session,
    next_revision,
    owned_by,
    parse_config,
    session_id_from_name,
    session_json,
    ttl_for_write,
)
from serverless_sessions.ttl import expiry_for, is_expired, now

__all__ = ["LocalFileStorage", "gzip_with_expiry", "read_expiry"]

_SUFFIX = ".json.gz"
_FEXTRA = 0x04
_SUBFIELD = b"SS"
_TEMP_MAX_AGE = 3600.0
_P = ParamSpec("_P")
_R = TypeVar("_R")


def gzip_with_expiry(body: bytes, expires_at: float | None) -> bytes:
    """A gzip member of ``body`` whose header records ``expires_at`` in an FEXTRA subfield."""
    field = json.dumps({"expires_at": expires_at}).encode("ascii")
    extra = _SUBFIELD + struct.pack("<H", len(field)) + field
    header = b"\x1f\x8b\x08" + bytes([_FEXTRA]) + bytes(4) + b"\x00\xff" + struct.pack("<H", len(extra))
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body_crc = struct.pack("<II", zlib.crc32(body), len(body) & 0xFFFFFFFF)
    return header + extra + deflate.compress(body) + deflate.flush() + body_crc


def read_expiry(data: bytes, *, key: str) -> float | None:
    """The expiry recorded by :func:`gzip_with_expiry`; ``None`` if the header records none.

    A malformed ``SS`` subfield raises :class:`CorruptSessionError` naming ``key``.
    """
    if len(data) < 12 or data[:3] != b"\x1f\x8b\x08" or not data[3] & _FEXTRA:
        return None
    (length,) = struct.unpack_from("<H", data, 10)
    extra, offset = data[12 : 12 + length], 0
    while offset + 4 <= len(extra):
        (size,) = struct.unpack_from("<H", extra, offset + 2)
        if extra[offset : offset + 2] == _SUBFIELD:
            try:
                value = json.loads(extra[offset + 4 : offset + 4 + size])["expires_at"]
                return None if value is None else float(value)
            except (ValueError, TypeError, KeyError) as exc:
                raise CorruptSessionError(key, f"bad expiry in the gzip header: {exc!r}") from exc
        offset += 4 + size
    return None


def _read_head(path: Path) -> bytes:
    """Enough of a file to hold its gzip header and extra field."""
    with path.open("rb") as file:
        head = file.read(12)
        if len(head) == 12 and head[3] & _FEXTRA:
            head += file.read(struct.unpack_from("<H", head, 10)[0])
        return head


class _LocalConfig(LegacyConfig):
    storage_dir: Path = Path("~/.claude/data/sessions")
    lock_timeout: float = Field(default=10.0, gt=0)
    stale_lock_seconds: float = Field(default=30.0, gt=0)
    fsync: bool = True


class LocalFileStorage(LegacyStorage):
    """Deprecated file storage: config ``{"storage_dir": ...}`` (default ``~/.claude/data/sessions``).

    Optional keys: ``default_ttl_seconds`` (new sessions stored without a TTL; default 24 h,
    ``None`` for never), ``lock_timeout``, ``stale_lock_seconds``, ``fsync``.
    """

    backend = "legacy-local"
    replacement = "ACBCacheStorage(sqlite.Cache.from_url('sqlite:///path/to/sessions.db'))"

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = parse_config(_LocalConfig, config, "LocalFileStorage")
        self.storage_dir = self.config.storage_dir.expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalFileStorage(storage_dir={str(self.storage_dir)!r})"

    # -- paths and locks (worker-thread side) ------------------------------------------------

    def _path(self, session_id: str) -> Path:
        validate_session_id(session_id)
        if os.name == "nt" and ":" in session_id:
            raise InvalidSessionIdError(session_id, "':' is not allowed in file names on Windows")
        path = self.storage_dir / f"{session_id}{_SUFFIX}"
        if path.parent != self.storage_dir:  # cannot happen for a valid id; never trust it
            raise InvalidSessionIdError(session_id, "resolves outside the storage directory")
        return path

    @contextlib.contextmanager
    def _locked(self, session_id: str) -> Iterator[None]:
        lock = self.storage_dir / f".{session_id}.lock"
        deadline = time.monotonic() + self.config.lock_timeout
        delay = 0.002
        while True:
            try:
                os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                break
            except FileExistsError:
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - lock.stat().st_mtime > self.config.stale_lock_seconds:
                        lock.unlink()
                        continue
                if time.monotonic() > deadline:
                    raise StorageUnavailableError(
                        f"legacy-local: session {session_id!r} stayed locked for "
                        f"{self.config.lock_timeout} s ({lock})"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)

    def _write_atomic(self, path: Path, data: bytes) -> None:
        fd, temp = tempfile.mkstemp(dir=self.storage_dir, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                if self.config.fsync:
                    os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    # -- synchronous operations (run in worker threads) --------------------------------------

    def _read(self, session_id: str) -> StoredSession | None:
        path = self._path(session_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        expires_at = read_expiry(data, key=str(path))
        if is_expired(expires_at):
            return None
        return StoredSession(
            decode_session(data, session_id=session_id, key=str(path)), expires_at, len(data)
        )

    def _write(self, state: SessionState, ttl: float | None) -> int:
        path = self._path(state.session_id)
        self.storage_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._locked(state.session_id):
            current = self._read(state.session_id)
            revision = next_revision(state, current.state.revision if current else None)
            ttl_arg = ttl_for_write(ttl, exists=current is not None, default=self.config.default_ttl_seconds)
            expires_at = expiry_for(ttl_arg, current=current.expires_at if current else None, at=now())
            self._write_atomic(path, gzip_with_expiry(session_json(state, revision), expires_at))
        return revision

    def _remove(self, session_id: str, *, only_expired: bool) -> bool:
        """Remove a session's file under its lock; return whether it was live (or expired)."""
        path = self._path(session_id)
        if not path.exists():
            return False
        with self._locked(session_id):
            try:
                expired = is_expired(read_expiry(_read_head(path), key=str(path)))
            except FileNotFoundError:
                return False
            if only_expired and not expired:
                return False
            path.unlink(missing_ok=True)
            return expired if only_expired else not expired

    def _scan(self) -> Iterator[tuple[str, Path]]:
        with os.scandir(self.storage_dir) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                session_id = session_id_from_name(entry.name, "", _SUFFIX)
                if session_id is not None:
                    yield session_id, Path(entry.path)

    def _live_ids(self, user_id: str | None, project_id: str | None) -> list[str]:
        if not self.storage_dir.is_dir():
            return []
        found: list[str] = []
        for session_id, path in self._scan():
            if user_id is None and project_id is None:  # the header alone tells the expiry
                with contextlib.suppress(FileNotFoundError):
                    if not is_expired(read_expiry(_read_head(path), key=str(path))):
                        found.append(session_id)
            elif (stored := self._read(session_id)) is not None and owned_by(
                stored.state.user_id, stored.state.project_id, user_id, project_id
            ):
                found.append(session_id)
        return found

    def _purge(self) -> int:
        if not self.storage_dir.is_dir():
            return 0
        removed = sum(self._remove(session_id, only_expired=True) for session_id, _ in list(self._scan()))
        cutoff = time.time() - _TEMP_MAX_AGE
        for temp in self.storage_dir.glob(f".*{_SUFFIX}.*.tmp"):  # left by crashed writers
            with contextlib.suppress(FileNotFoundError):
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
        return removed

    def _check_writable(self) -> None:
        self.storage_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.access(self.storage_dir, os.W_OK | os.X_OK):
            raise StorageError(f"legacy-local: {self.storage_dir} is not writable")

    # -- LegacyStorage hooks -----------------------------------------------------------------

    async def _run(
        self, operation: str, subject: str | None, func: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """Run ``func`` in a worker thread; translate OS errors (ours pass through)."""
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except SessionError:
            raise
        except OSError as exc:
            about = f" for session {subject!r}" if subject else ""
            raise StorageError(
                f"legacy-local {operation} failed{about} in {self.storage_dir}: "
                f"{type(exc).__name__}: {exc.strerror or exc}"
            ) from exc

    async def _load(self, session_id: str) -> StoredSession | None:
        return await self._run("load", session_id, self._read, session_id)

    async def _store(self, state: SessionState, ttl: float | None) -> int:
        return await self._run("store", state.session_id, self._write, state, ttl)

    async def _delete(self, session_id: str) -> bool:
        return await self._run("delete", session_id, self._remove, session_id, only_expired=False)

    async def _list(self, user_id: str | None, project_id: str | None) -> list[str]:
        return await self._run("list", None, self._live_ids, user_id, project_id)

    async def _iter_ids(self) -> AsyncIterator[str]:
        for session_id in await self._list(None, None):
            yield session_id

    async def _cleanup(self) -> int:
        return await self._run("cleanup", None, self._purge)

    async def _ping(self) -> None:
        await self._run("ping", None, self._check_writable)

    def _public(self) -> dict[str, Any]:
        return {"storage_dir": str(self.storage_dir)}

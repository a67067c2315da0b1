"""Migration: copy every live session from one storage to any other, resumably, then verify.

:func:`migrate` works between any two :class:`~serverless_sessions.storage.base.SessionStorage`
— the original layouts (legacy local/Redis/S3) and cache storages (SQLite/Redis/S3/memory), in
either direction. Open both ends from URLs or config files with
:func:`serverless_sessions.factory.open_storage`.

Why it is built this way:

* **Streaming.** Ids come from ``source.iter_session_ids()`` and sessions are read ``batch_size``
  at a time with ``load_sessions``: memory holds one batch of sessions (plus the ids a resumed
  run skips), never the whole store.
* **Lifetimes kept.** Each session is written with the TTL it has left (absolute expiry minus
  now), so a move neither extends nor shortens a lifetime; one already expired is skipped. A
  session without expiry stays without expiry on a cache storage.
* **A new record.** The copy is written at revision 0, which means "must not exist yet": the
  destination's compare-and-set creates it and can never overwrite a session already there.
* **Resumable.** After each batch the ids now settled in the destination are appended to the
  checkpoint file and fsynced; a resumed run skips them. A crash between a write and its
  checkpoint entry is harmless: the destination already holds that session with the same
  content digest, which counts as ``already_present`` — different content is a mismatch, never
  overwritten. So nothing is copied twice and nothing is lost.
* **Verified.** A second streaming pass reads every live source session again and compares it
  with the destination's copy by content digest (:func:`session_digest`); any missing or
  different session raises :class:`MigrationVerificationError` carrying the report.

Run it with writers stopped: a session changed in the source after it was copied is reported
as a mismatch.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from serverless_sessions.errors import (
    InvalidSessionError,
    MigrationError,
    MigrationVerificationError,
)
from serverless_sessions.ids import validate_session_id
from serverless_sessions.listing import Loaded, Unreadable, load_each
from serverless_sessions.model import SessionState
from serverless_sessions.operations.checkpoint import CheckpointFile
from serverless_sessions.storage.base import SessionStorage, StoredSession
from serverless_sessions.storage.batch import store_each
from serverless_sessions.storage.cache_storage import ACBCacheStorage
from serverless_sessions.ttl import now

__all__ = [
    "MigrationCounts",
    "MigrationError",
    "MigrationProgress",
    "MigrationReport",
    "MigrationVerificationError",
    "Mismatch",
    "migrate",
    "session_digest",
]

_CHECKPOINT_FORMAT = 1
# A copy this close to its expiry may lapse in the destination before it is verified.
_EXPIRY_SLACK = 2.0


class Mismatch(BaseModel):
    """A source session the destination does not hold unchanged."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    reason: str


class MigrationCounts(BaseModel):
    """Counters of one run; a resumed run counts its own work and, in ``resumed``, what it skipped.

    ``bytes`` is the stored size (in the source) of the sessions migrated — or, in a dry run,
    that would be. ``verified`` counts sessions found equal in the destination by the final pass
    (0 in a dry run).
    """

    scanned: int = 0
    migrated: int = 0
    skipped_expired: int = 0
    already_present: int = 0
    resumed: int = 0
    bytes: int = 0
    verified: int = 0


class MigrationReport(MigrationCounts):
    """What a run did; ``failed`` maps ids unreadable in the source to the reason."""

    model_config = ConfigDict(frozen=True)

    dry_run: bool
    mismatches: list[Mismatch]
    failed: dict[str, str]


@dataclass(frozen=True, slots=True)
class MigrationProgress:
    """Where a run is, after each batch: ``done`` of ``total`` ids (total unknown while copying)."""

    phase: Literal["copy", "verify"]
    done: int
    total: int | None
    counts: MigrationCounts


def session_digest(state: SessionState) -> str:
    """sha256 of the session's canonical JSON without ``revision`` (a storage-local counter)."""
    data = state.model_dump(mode="json", exclude={"revision"})
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _left(stored: StoredSession) -> float | None:
    """Seconds ``stored`` has left now; ``None`` if it never expires."""
    return None if stored.expires_at is None else stored.expires_at - now()


def _expires_within(stored: StoredSession, seconds: float) -> bool:
    left = _left(stored)
    return left is not None and left <= seconds


async def _batches(ids: AsyncIterator[str], size: int) -> AsyncIterator[list[str]]:
    batch: list[str] = []
    async for session_id in ids:
        batch.append(session_id)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(slots=True)
class _Tally:
    counts: MigrationCounts = field(default_factory=MigrationCounts)
    mismatches: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def progress(self, phase: Literal["copy", "verify"], done: int, total: int | None) -> MigrationProgress:
        return MigrationProgress(phase, done, total, self.counts.model_copy())

    def report(self, *, dry_run: bool) -> MigrationReport:
        return MigrationReport(
            **self.counts.model_dump(),
            dry_run=dry_run,
            mismatches=[Mismatch(session_id=k, reason=v) for k, v in sorted(self.mismatches.items())],
            failed=dict(self.failed),
        )


class _Checkpoint:
    """The ids settled in the destination: a JSON header line, then one id per line.

    Appended once per batch, after that batch is in the destination, so it never names a
    session the destination lacks. A crash mid-append leaves a last line without its newline;
    resuming cuts it off (those sessions are then found already present). The header names both
    storages, so a checkpoint of another migration is refused instead of skipping sessions.
    """

    def __init__(self, path: Path | None, source: SessionStorage, destination: SessionStorage) -> None:
        self.file = None if path is None else CheckpointFile(path, self._fail)
        self.path = path
        self.header = json.dumps(
            {
                "format": _CHECKPOINT_FORMAT,
                "source": _identity(source),
                "destination": _identity(destination),
            },
            sort_keys=True,
        )

    def _fail(self, problem: str) -> MigrationError:
        return MigrationError(f"migration checkpoint {self.path}: {problem}")

    def open(self, *, create: bool) -> set[str]:
        """The ids done by earlier runs; ``create`` writes the header if there is no file yet."""
        if self.file is None:
            return set()
        text = self.file.read()
        if text is None:
            if create:
                self.file.replace(self.header + "\n")
            return set()
        header, _, body = text.partition("\n")
        if header != self.header:
            raise self._fail(f"belongs to another migration ({header[:200]}), expected {self.header}")
        complete, _, torn = body.rpartition("\n")
        ids = complete.split("\n") if complete else []
        for number, session_id in enumerate(ids, start=2):
            try:
                validate_session_id(session_id)
            except InvalidSessionError as exc:
                raise self._fail(f"line {number} is not a session id: {exc}") from exc
        if torn and create:
            self.file.truncate(len(text.encode("utf-8")) - len(torn.encode("utf-8")))
        return set(ids)

    def append(self, ids: Sequence[str]) -> None:
        """Record ``ids`` as settled, durably, in one write."""
        if self.file is not None and ids:
            self.file.append("".join(f"{session_id}\n" for session_id in ids))

    def remove(self) -> None:
        if self.file is not None:
            self.file.remove()


def _identity(storage: SessionStorage) -> dict[str, str]:
    described = storage.describe()
    return {key: str(described[key]) for key in ("backend", "namespace") if key in described}


class _Copier:
    """Copies batches into the destination, settling each session as migrated or present."""

    def __init__(
        self, source: SessionStorage, destination: SessionStorage, tally: _Tally, *, dry_run: bool
    ) -> None:
        self.source = source
        self.destination = destination
        self.tally = tally
        self.dry_run = dry_run

    def _settle(self, session_id: str, original: StoredSession, existing: Loaded) -> bool:
        """Compare with what the destination already holds; ``True`` if it is the same session."""
        if isinstance(existing, Unreadable):
            self.tally.mismatches[session_id] = f"unreadable in the destination: {existing.reason}"
        elif existing is not None and session_digest(existing.state) == session_digest(original.state):
            self.tally.counts.already_present += 1
            return True
        else:
            self.tally.mismatches[session_id] = "the destination holds different content"
        return False

    async def copy(self, ids: Sequence[str]) -> tuple[list[str], BaseException | None]:
        """Copy the sessions ``ids`` names; return those now settled, and the first write error.

        The writes go out as one batch (:func:`store_each`: concurrent compare-and-sets, which
        a pipelining adapter sends together) and all finish before this returns, so a failed
        write leaves the others settled and ready for the checkpoint; the caller raises the
        error after.
        """
        live: list[tuple[str, StoredSession]] = []
        for session_id, loaded in zip(ids, await load_each(self.source, ids), strict=True):
            if isinstance(loaded, Unreadable):
                self.tally.failed[session_id] = loaded.reason
            elif loaded is None or _expires_within(loaded, 0):
                self.tally.counts.skipped_expired += 1
            else:
                live.append((session_id, loaded))
        present = await load_each(self.destination, [session_id for session_id, _ in live])
        settled: list[str] = []
        writes: list[tuple[SessionState, StoredSession, Callable[[], Awaitable[None]]]] = []
        for (session_id, original), existing in zip(live, present, strict=True):
            if existing is not None:
                if self._settle(session_id, original, existing):
                    settled.append(session_id)
                continue
            left = _left(original)  # again: time has passed since the batch was read
            if left is not None and left <= 0:
                self.tally.counts.skipped_expired += 1
            elif self.dry_run:
                self._migrated(original)
                settled.append(session_id)
            else:
                state = original.state.model_copy(update={"revision": 0})
                writes.append((state, original, partial(_store, self.destination, state, left)))
        result = await store_each([(state, write) for state, _, write in writes])
        error: BaseException | None = None
        for (state, original, _), outcome in zip(writes, result, strict=True):
            if outcome.stored:
                self._migrated(original)
                settled.append(state.session_id)
            elif outcome.conflicted:
                # Created since we looked (a concurrent run, or a writer): compare, never overwrite.
                (existing,) = await load_each(self.destination, [state.session_id])
                if self._settle(state.session_id, original, existing):
                    settled.append(state.session_id)
            elif error is None:
                error = outcome.error
        return settled, error

    def _migrated(self, original: StoredSession) -> None:
        self.tally.counts.migrated += 1
        self.tally.counts.bytes += original.size


async def _store(destination: SessionStorage, state: SessionState, left: float | None) -> None:
    if left is None and isinstance(destination, ACBCacheStorage):
        # store_session(ttl_seconds=None) would give a new session the default TTL.
        await destination.write(state, ttl=None)
    else:
        await destination.store_session(state, ttl_seconds=left)


async def _verify(
    source: SessionStorage,
    destination: SessionStorage,
    tally: _Tally,
    batch_size: int,
    progress: Callable[[MigrationProgress], None] | None,
) -> None:
    """Read every live source session again and compare it with the destination's copy."""
    checked = 0
    async for batch in _batches(source.iter_session_ids(), batch_size):
        checked += len(batch)
        ids = [session_id for session_id in batch if session_id not in tally.failed]
        originals = await load_each(source, ids)
        live = [(i, o) for i, o in zip(ids, originals, strict=True) if isinstance(o, StoredSession)]
        copies = await load_each(destination, [session_id for session_id, _ in live])
        for (session_id, original), copy in zip(live, copies, strict=True):
            if isinstance(copy, Unreadable):
                tally.mismatches[session_id] = f"unreadable in the destination: {copy.reason}"
            elif copy is None:
                if not _expires_within(original, _EXPIRY_SLACK):
                    tally.mismatches[session_id] = "missing in the destination"
            elif session_digest(copy.state) != session_digest(original.state):
                tally.mismatches[session_id] = "the destination holds different content"
            else:
                tally.counts.verified += 1
        if progress is not None:
            progress(tally.progress("verify", checked, tally.counts.scanned))


async def migrate(
    source: SessionStorage,
    destination: SessionStorage,
    *,
    dry_run: bool = False,
    checkpoint: Path | None = None,
    progress: Callable[[MigrationProgress], None] | None = None,
    batch_size: int = 200,
) -> MigrationReport:
    """Copy every live session of ``source`` into ``destination``, then verify the copies.

    ``dry_run`` reads both ends and reports what would be copied (counts, bytes, sessions the
    destination already holds or holds differently) without writing anything, the checkpoint
    included. ``checkpoint``: a file recording progress; call again with the same file after an
    interruption to resume (it is removed once a run verifies with nothing failed). ``progress``
    is called after every batch; an exception it raises stops the run, resumable.

    Raises :class:`MigrationVerificationError` (with ``report``) if the destination then lacks
    or differs from any live source session; backend failures propagate as
    :class:`~serverless_sessions.errors.StorageError`, leaving the checkpoint consistent.
    """
    if batch_size < 1:
        raise MigrationError(f"batch_size must be at least 1, got {batch_size}")
    journal = _Checkpoint(checkpoint, source, destination)
    done = await asyncio.to_thread(journal.open, create=not dry_run)
    tally = _Tally()
    copier = _Copier(source, destination, tally, dry_run=dry_run)
    async for batch in _batches(source.iter_session_ids(), batch_size):
        todo = [session_id for session_id in batch if session_id not in done]
        tally.counts.scanned += len(batch)
        tally.counts.resumed += len(batch) - len(todo)
        settled, error = await copier.copy(todo)
        if not dry_run:
            await asyncio.to_thread(journal.append, settled)
        if error is not None:
            raise error
        if progress is not None:
            progress(tally.progress("copy", tally.counts.scanned, None))
    if dry_run:
        return tally.report(dry_run=True)
    await _verify(source, destination, tally, batch_size, progress)
    report = tally.report(dry_run=False)
    if report.mismatches:
        shown = "; ".join(f"{m.session_id}: {m.reason}" for m in report.mismatches[:10])
        raise MigrationVerificationError(
            f"verification failed for {len(report.mismatches)} session(s) "
            f"({report.verified} verified): {shown}",
            report,
        )
    if not report.failed:
        await asyncio.to_thread(journal.remove)
    return report

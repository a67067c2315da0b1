"""Re-encryption: rewrite every session under the newest key of the storage's key ring.

After a key is added to ``encryption_keys`` new writes use it, but sessions written earlier stay
under older keys (or in clear, if encryption was just switched on) until something rewrites
them. :func:`reencrypt` is that something; once it reports no failures the old keys can be
removed from the setting.

Why it is built this way:

* **Compare-and-set per session.** Each rewrite carries the revision it read, so a session that
  a live writer changed in between is never overwritten: the conflict makes us read it again and
  retry. The remaining TTL is kept (``KEEP_TTL``): re-encryption must not extend a lifetime.
* **Clear header first.** Whether a payload is under the newest key is read from its envelope
  header (:func:`~serverless_sessions.encryption.key_id_of`) without decrypting, so a second run
  over an already rotated store costs one batched read per 100 sessions.
* **Sorted ids, checkpoint = last id done.** Backends list keys in no stable order, so the ids
  are listed once and sorted; the checkpoint file then needs only the last id finished (plus the
  running counts). Sessions created after the listing are written under the newest key anyway.
  The checkpoint names the backend, namespace and target key id: a checkpoint for another store
  is refused, one for an older target key is ignored (that run is obsolete). It is removed when
  a run finishes.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from serverless_sessions.adapters.cache.base import AtomicCache, Entry, LogSlice, gather_bounded
from serverless_sessions.backoff import CONFLICT_BACKOFF
from serverless_sessions.encryption import KeyRing, key_id_of
from serverless_sessions.errors import (
    CapabilityNotSupportedError,
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionError,
    SessionConflictError,
    SessionTooLargeError,
)
from serverless_sessions.operations.checkpoint import CheckpointFile
from serverless_sessions.storage.cache_storage import ACBCacheStorage
from serverless_sessions.ttl import KEEP_TTL

__all__ = ["ReencryptReport", "reencrypt"]

logger = logging.getLogger(__name__)

_BATCH = 100
_MAX_ATTEMPTS = 50
_READS_IN_FLIGHT = 16
"""Sessions read at once with their message logs (one read each): enough to hide round trips."""
_CHECKPOINT_FORMAT = 1

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ReencryptReport:
    """What a run (including the runs it resumed) did; ``failed`` maps session id -> reason."""

    key_id: str
    total: int
    rewritten: int
    already_current: int
    vanished: int
    conflicts: int
    failed: dict[str, str]
    resumed_after: str | None

    @property
    def complete(self) -> bool:
        """Whether every listed session is now under ``key_id`` (or gone)."""
        return not self.failed


@dataclass(slots=True)
class _Tally:
    rewritten: int = 0
    already_current: int = 0
    vanished: int = 0
    conflicts: int = 0
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Checkpoint:
    """The persisted position of a run; ``last_id`` is the last session id finished."""

    path: Path | None
    identity: dict[str, str]
    last_id: str | None = None
    tally: _Tally = field(default_factory=_Tally)

    def _file(self) -> CheckpointFile | None:
        if self.path is None:
            return None
        where = self.path
        return CheckpointFile(
            where, lambda problem: ConfigurationError(f"re-encryption checkpoint {where}: {problem}")
        )

    def load(self) -> None:
        file = self._file()
        text = None if file is None else file.read()
        if text is None:
            return
        try:
            document = json.loads(text)
            if document["format"] != _CHECKPOINT_FORMAT:
                raise ValueError(f"unsupported format {document['format']!r}")
            saved = {name: document[name] for name in self.identity}
            last_id, tally = document["last_id"], _Tally(**document["tally"])
            if not isinstance(last_id, str | None):
                raise TypeError("last_id must be a string or null")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"re-encryption checkpoint {self.path}: cannot be read: {exc}") from exc
        ours = (self.identity["backend"], self.identity["namespace"])
        if (saved["backend"], saved["namespace"]) != ours:
            raise ConfigurationError(
                f"re-encryption checkpoint {self.path} belongs to {saved['backend']} namespace "
                f"{saved['namespace']!r}, not {ours[0]} namespace {ours[1]!r}"
            )
        if saved["key_id"] != self.identity["key_id"]:
            logger.info(
                "ignoring checkpoint %s: it targets key id %r, the newest key is %r",
                self.path,
                saved["key_id"],
                self.identity["key_id"],
            )
            return
        self.last_id, self.tally = last_id, tally

    def save(self) -> None:
        """Write atomically: a crash leaves the previous checkpoint or this one, never half."""
        file = self._file()
        if file is not None:
            document = {"format": _CHECKPOINT_FORMAT, **self.identity, "last_id": self.last_id}
            file.replace(json.dumps({**document, "tally": asdict(self.tally)}))

    def remove(self) -> None:
        file = self._file()
        if file is not None:
            file.remove()


async def reencrypt(
    storage: ACBCacheStorage,
    *,
    checkpoint: Path | None = None,
    progress: Progress | None = None,
) -> ReencryptReport:
    """Rewrite every session of ``storage`` that is not sealed under its newest key.

    Plain (unencrypted) sessions are encrypted; sessions already under the newest key are left
    alone. A session that cannot be decoded (unknown key, corrupt) or re-encoded is listed in
    ``failed`` and skipped. Backend failures propagate after the checkpoint is saved, so the
    same call with the same ``checkpoint`` resumes where this one stopped. ``progress`` is
    called with ``(done, total)`` after each session.
    """
    ring = storage.encryptor
    if not isinstance(ring, KeyRing):
        raise ConfigurationError(
            "re-encryption needs encryption keys: set encryption_keys "
            "(SERVERLESS_SESSIONS_ENCRYPTION_KEYS) with the new key last"
        )
    cache = storage.cache
    if not isinstance(cache, AtomicCache):
        raise CapabilityNotSupportedError(cache, "compare-and-set", "reencrypt")
    state = _Checkpoint(
        checkpoint,
        {"backend": storage.backend, "namespace": storage.namespace, "key_id": ring.current_key_id},
    )
    await asyncio.to_thread(state.load)
    await asyncio.to_thread(state.save)  # fail now, not after work, if it cannot be written
    resumed_after = state.last_id
    ids = sorted([session_id async for session_id in storage.iter_session_ids()])
    done = 0 if resumed_after is None else bisect.bisect_right(ids, resumed_after)
    logger.info(
        "re-encrypting %d sessions of %s namespace %r under key id %r%s",
        len(ids) - done,
        storage.backend,
        storage.namespace,
        ring.current_key_id,
        "" if resumed_after is None else f", resuming after {resumed_after!r}",
    )
    rewriter = _Rewriter(storage, cache, ring.current_key_id, state.tally)
    try:
        for start in range(done, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            for session_id, sealed in zip(batch, await rewriter.read(batch), strict=True):
                await rewriter.rewrite(session_id, sealed)
                state.last_id = session_id
                done += 1
                if progress is not None:
                    progress(done, len(ids))
            await asyncio.to_thread(state.save)
    except BaseException:
        await asyncio.to_thread(state.save)
        raise
    await asyncio.to_thread(state.remove)
    tally = state.tally
    logger.info(
        "re-encryption under key id %r done: %d rewritten, %d failed",
        ring.current_key_id,
        tally.rewritten,
        len(tally.failed),
    )
    return ReencryptReport(
        key_id=ring.current_key_id,
        total=len(ids),
        rewritten=tally.rewritten,
        already_current=tally.already_current,
        vanished=tally.vanished,
        conflicts=tally.conflicts,
        failed=dict(tally.failed),
        resumed_after=resumed_after,
    )


@dataclass(frozen=True, slots=True)
class _Sealed:
    """A session's stored bytes: its value and, where the storage keeps one, its message log."""

    entry: Entry
    log: LogSlice | None

    def key_ids(self) -> set[str | None]:
        """The key ids its parts are sealed under (``None`` for a plaintext part)."""
        items = self.log.items if self.log is not None else []
        return {key_id_of(part) for part in (self.entry.value, *items)}


@dataclass(slots=True)
class _Rewriter:
    storage: ACBCacheStorage
    cache: AtomicCache
    key_id: str
    tally: _Tally

    async def read(self, session_ids: Sequence[str]) -> list[_Sealed | None]:
        """The stored bytes of ``session_ids``, messages included."""
        namespace = self.storage.namespace
        log = self.storage.message_log
        if log is None:
            entries = await self.cache.get_entries(session_ids, namespace=namespace)
            return [None if entry is None else _Sealed(entry, None) for entry in entries]
        found = await gather_bounded(
            [partial(log.get_with_log, session_id, namespace=namespace) for session_id in session_ids],
            _READS_IN_FLIGHT,
        )
        return [None if pair is None else _Sealed(*pair) for pair in found]

    async def rewrite(self, session_id: str, sealed: _Sealed | None) -> None:
        """Bring one session under ``key_id``, re-reading it after every conflict."""
        for attempt in range(_MAX_ATTEMPTS):
            if sealed is None:
                self.tally.vanished += 1
                return
            if sealed.key_ids() == {self.key_id}:
                self.tally.already_current += 1
                return
            try:
                if sealed.log is None:
                    state = self.storage.decode(session_id, sealed.entry.value, sealed.entry.version)
                else:
                    whole = self.storage.assemble(session_id, sealed.entry, sealed.log)
                    assert whole is not None  # the whole log was read: every window is in it
                    state = whole.state
                await self.storage.write(state, ttl=KEEP_TTL)
            except SessionConflictError:
                self.tally.conflicts += 1
                await CONFLICT_BACKOFF.wait(attempt)
                (sealed,) = await self.read([session_id])
                continue
            except (CorruptSessionError, InvalidSessionError, SessionTooLargeError) as exc:
                self.tally.failed[session_id] = str(exc)
                return
            self.tally.rewritten += 1
            return
        self.tally.failed[session_id] = f"still conflicting after {_MAX_ATTEMPTS} attempts"

"""The storage behind the tools, swappable at run time by ``configure_serverless_storage``.

Each storage is a *generation*: tool calls borrow the current one for their duration, and a
switch retires it instead of closing it, so a call that started before the switch finishes on
the storage it started with; the retired storage is closed when its last call returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from serverless_sessions.backends import backend_of
from serverless_sessions.config.settings import StorageSettings
from serverless_sessions.errors import StorageUnavailableError
from serverless_sessions.factory import open_configured_storage
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.storage.base import SessionStorage

__all__ = ["StorageHolder"]


@dataclass(eq=False)
class _Generation:
    settings: StorageSettings
    storage: SessionStorage
    manager: ServerlessSessionManager
    borrowers: int = 0
    retired: bool = False

    @classmethod
    def open(cls, settings: StorageSettings) -> _Generation:
        storage = open_configured_storage(settings)
        return cls(settings, storage, ServerlessSessionManager(storage, settings=settings))

    @property
    def backend(self) -> str:
        return backend_of(self.settings.url_value())

    async def close_if_idle(self) -> None:
        if self.retired and self.borrowers == 0:
            await self.storage.close()


class StorageHolder:
    """Owns the current storage (and closes it); see the module docstring for switching."""

    def __init__(self, settings: StorageSettings) -> None:
        self._current = _Generation.open(settings)

    @property
    def settings(self) -> StorageSettings:
        """Settings of the current storage."""
        return self._current.settings

    @property
    def backend(self) -> str:
        """Name of the current backend (a key of :data:`~serverless_sessions.backends.BACKENDS`)."""
        return self._current.backend

    @asynccontextmanager
    async def borrow(self) -> AsyncIterator[tuple[ServerlessSessionManager, SessionStorage]]:
        """The current manager and storage, kept open until the block ends."""
        generation = self._current
        generation.borrowers += 1
        try:
            yield generation.manager, generation.storage
        finally:
            generation.borrowers -= 1
            await generation.close_if_idle()

    async def switch(self, settings: StorageSettings) -> str:
        """Use a storage built from ``settings`` if it answers now; return the old backend.

        Raises :class:`StorageUnavailableError` (keeping the current storage) if it does not.
        """
        candidate = _Generation.open(settings)
        try:
            report = await candidate.storage.health()
        except BaseException:
            await candidate.storage.close()
            raise
        if not report.get("available"):
            await candidate.storage.close()
            reason = report.get("error") or "it did not answer"
            raise StorageUnavailableError(
                f"{candidate.backend} storage is unavailable ({reason}); still using {self.backend}"
            )
        previous, self._current = self._current, candidate
        previous.retired = True
        await previous.close_if_idle()
        return previous.backend

    async def close(self) -> None:
        """Close the current storage (at server shutdown)."""
        self._current.retired = True
        await self._current.close_if_idle()

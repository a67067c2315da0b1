"""The explicit lifecycle shared by caches, storages and the manager.

Whoever creates a resource closes it, with ``close()`` or ``async with``; using it afterwards
raises :class:`~serverless_sessions.errors.ClosedError` with a reason instead of failing somewhere
deep inside a backend client.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from serverless_sessions.errors import ClosedError

__all__ = ["Closable"]


class Closable:
    """Async context manager that refuses reuse after :meth:`close`."""

    _closed: bool = False

    def _check_open(self) -> None:
        if self._closed:
            backend = getattr(self, "backend", None)
            suffix = f" ({backend})" if isinstance(backend, str) else ""
            raise ClosedError(f"{type(self).__name__}{suffix}")

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    async def close(self) -> None:
        """Release what this object owns. Idempotent; later use raises :class:`ClosedError`."""
        self._closed = True

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

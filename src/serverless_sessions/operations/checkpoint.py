"""Checkpoint files of the long-running operations (migration, re-encryption): written here only.

An operation that may be interrupted records its progress in a file so the same call with the
same file resumes where it stopped. What the file says is the operation's business; how it is
written is this class's: every write is flushed and fsynced before the operation goes on, so a
crash never loses progress already reported, and :meth:`CheckpointFile.replace` swaps a whole
new text in atomically (a crash leaves the old text or the new one, never half of either).
A failing write raises the operation's own error type, naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from serverless_sessions.errors import SessionError

__all__ = ["CheckpointFile"]


class CheckpointFile:
    """One checkpoint file; ``fail(problem)`` builds the operation's error for a failed I/O."""

    def __init__(self, path: Path, fail: Callable[[str], SessionError]) -> None:
        self.path = path
        self._fail = fail

    def read(self) -> str | None:
        """The file's text, or ``None`` if there is no file."""
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail(f"cannot be read: {exc.strerror or exc}") from exc

    def replace(self, text: str) -> None:
        """Make ``text`` the whole content, atomically and durably."""
        partial = self.path.with_name(self.path.name + ".partial")
        try:
            with partial.open("w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(self.path)
            _fsync_directory(self.path.parent)
        except OSError as exc:
            raise self._fail(f"cannot be written: {exc.strerror or exc}") from exc

    def append(self, text: str) -> None:
        """Add ``text`` at the end, durably, in one write."""
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise self._fail(f"cannot be written: {exc.strerror or exc}") from exc

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes (a torn last record)."""
        try:
            os.truncate(self.path, size)
        except OSError as exc:
            raise self._fail(f"cannot be written: {exc.strerror or exc}") from exc

    def remove(self) -> None:
        """Delete the file (the operation finished); a missing file is fine."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._fail(f"cannot be removed: {exc.strerror or exc}") from exc


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power loss (POSIX needs the directory synced)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

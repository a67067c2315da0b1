"""Long-running operations over a whole storage, resumable from a checkpoint file.

* :func:`migrate` (:mod:`.migration`): copy every live session to another storage, then verify;
* :func:`reencrypt` (:mod:`.reencryption`): rewrite every session under the newest key.

Both write their progress through the one :class:`~.checkpoint.CheckpointFile`. The names are
loaded on first access: re-encryption needs the ``crypto`` extra, migration does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serverless_sessions.lazy import lazy_exports

if TYPE_CHECKING:
    from serverless_sessions.operations.migration import (
        MigrationCounts,
        MigrationProgress,
        MigrationReport,
        Mismatch,
        migrate,
        session_digest,
    )
    from serverless_sessions.operations.reencryption import ReencryptReport, reencrypt

_MIGRATION = "serverless_sessions.operations.migration"
_LOCATIONS = {
    "MigrationCounts": _MIGRATION,
    "MigrationProgress": _MIGRATION,
    "MigrationReport": _MIGRATION,
    "Mismatch": _MIGRATION,
    "ReencryptReport": "serverless_sessions.operations.reencryption",
    "migrate": _MIGRATION,
    "reencrypt": "serverless_sessions.operations.reencryption",
    "session_digest": _MIGRATION,
}

__all__ = [
    "MigrationCounts",
    "MigrationProgress",
    "MigrationReport",
    "Mismatch",
    "ReencryptReport",
    "migrate",
    "reencrypt",
    "session_digest",
]


__getattr__ = lazy_exports(globals(), _LOCATIONS)

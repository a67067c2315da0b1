"""Object names and metadata of the S3 cache adapter (the layout is drawn in ``s3``'s docstring).

Keys and index names are percent-encoded into a single path segment: every byte outside
``A-Z a-z 0-9 _ - ~`` is escaped, dots included, so no name is a ``.``/``..`` segment, none holds a
``/``, and the encoding is reversible (:func:`urllib.parse.unquote`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from serverless_sessions.adapters.cache.s3.bucket import ObjectInfo
from serverless_sessions.errors import CorruptSessionError, InvalidSessionIdError
from serverless_sessions.ttl import is_expired

__all__ = ["Layout", "Record", "encode_name", "live", "metadata"]

_VERSION = "ss-version"
_EXPIRES = "ss-expires-at"
_INDEXES = "ss-indexes"


def encode_name(part: str) -> str:
    """Percent-encode a key or index name into one safe object-name segment."""
    if not isinstance(part, str) or not part:
        raise InvalidSessionIdError(part, "must be a non-empty string", what="key")
    return quote(part, safe="").replace(".", "%2E")


@dataclass(frozen=True, slots=True)
class Layout:
    """Object names under ``prefix`` (empty, or ending in ``/``)."""

    prefix: str

    def root(self, ns: str) -> str:
        """Folder of one namespace; ``ns`` is validated, so it never holds ``/``."""
        return f"{self.prefix}ns-{ns}/" if ns else f"{self.prefix}ns/"

    def data_prefix(self, ns: str) -> str:
        """Folder of a namespace's data objects."""
        return f"{self.root(ns)}d/"

    def data(self, ns: str, key: str) -> str:
        """Name of the data object of ``key``."""
        return self.data_prefix(ns) + encode_name(key)

    def index_prefix(self, ns: str, index: str) -> str:
        """Folder of the markers of ``index``."""
        return f"{self.root(ns)}i/{encode_name(index)}/"

    def markers(self, ns: str, key: str, indexes: Sequence[str]) -> list[str]:
        """Names of the markers listing ``key`` in each of ``indexes``."""
        return [self.index_prefix(ns, index) + encode_name(key) for index in indexes]

    @staticmethod
    def keys(prefix: str, names: Sequence[str]) -> list[str]:
        """The keys encoded in object ``names`` found under ``prefix``."""
        return [unquote(name[len(prefix) :]) for name in names]


def metadata(version: int, expires_at: float | None, indexes: Sequence[str]) -> dict[str, str]:
    """Object metadata recording a version, an absolute expiry and index names (ASCII only)."""
    meta = {_VERSION: str(version)}
    if expires_at is not None:
        meta[_EXPIRES] = repr(expires_at)
    if indexes:
        meta[_INDEXES] = ",".join(quote(index, safe="") for index in indexes)
    return meta


@dataclass(frozen=True, slots=True)
class Record:
    """A data object's ETag and parsed metadata."""

    etag: str
    version: int
    expires_at: float | None
    indexes: tuple[str, ...]

    @classmethod
    def parse(cls, info: ObjectInfo, key: str) -> Record:
        """Read :func:`metadata` back; anything else is corrupt (the error names ``key``)."""
        meta = info.metadata
        try:
            version = int(meta[_VERSION])
            expires = meta.get(_EXPIRES)
            expires_at = float(expires) if expires else None
        except (KeyError, ValueError) as exc:
            raise CorruptSessionError(key, f"S3 object metadata is not ours: {exc!r}") from exc
        raw_indexes = meta.get(_INDEXES, "")
        indexes = tuple(unquote(item) for item in raw_indexes.split(",")) if raw_indexes else ()
        return cls(info.etag, version, expires_at, indexes)


def live(record: Record | None, at: float | None = None) -> Record | None:
    """``record`` if it exists and has not expired, else ``None``."""
    return record if record is not None and not is_expired(record.expires_at, at) else None

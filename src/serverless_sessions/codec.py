"""Bytes on the wire: a versioned envelope around pydantic JSON, optionally compressed.

Layout of format version 1::

    b"SSN" | version (1 byte) | compression id (1 byte) | body

``body`` is the session's JSON, compressed by the named algorithm. The reader dispatches on the
stored compression id, not on its own settings, so a session written with zstd stays readable by
a codec configured for brotli or none. Payloads of the original module (bare gzip JSON) are read
too. Nothing here ever unpickles.

zstd is the default because it compresses a session about 2.4-2.9x; brotli at its default
quality 11 costs ~4 ms for a similar ratio (BACKGROUND §5), so its quality is a setting.

Only bodies of :data:`DEFAULT_THRESHOLD` (8 KiB) or more are compressed by default. Measured
on this project's bench machine (``bench/cases_codec.py``), zstd-3 makes an encode + decode
round trip 2x the cost of the uncompressed one at 1 KB (+9 us to save 440 bytes) and 2.4x
at 5 KB (+31 us to save 3 KB); at 10 Gbit/s those 3 KB cross the wire in under 3 us. Above
8 KiB the space saved (memory of a Redis node, S3 and DynamoDB bytes) grows with the session
while the relative cost stays flat, so it is worth paying there. ``threshold`` moves the line.

The size rule: nothing is stored that a reader would refuse
------------------------------------------------------------

One number bounds a session: ``Codec.max_size`` (setting ``max_session_bytes``, default 1 MiB)
is the largest JSON body, the session as JSON before compression and encryption, that
:meth:`Codec.encode` accepts. It is checked before compressing, so a 70 MB string of one
character is refused even though it would compress to 2 KB. Compression only ever makes the
stored copy smaller (a body that would not shrink is stored uncompressed), so the stored bytes
are at most ``max_size`` plus the 5-byte envelope header (plus at most 97 bytes when sealed by
:mod:`serverless_sessions.encryption`).

Readers do not apply their own ``max_size``: every reader accepts bodies up to
:data:`BODY_CEILING` (64 MiB), a constant of the format, and ``max_size`` may not exceed it
(:class:`~serverless_sessions.errors.ConfigurationError`). A reader configured with a smaller
limit than the writer therefore still reads everything the writer stored; only hostile or
foreign bytes expand past the ceiling, and they are refused before more than ceiling + 1 bytes
are inflated.

The other checks on read are met on write too: the contents must be plain JSON (no NaN, no
64-bit overflow, no lone surrogate, string keys) nested at most 64 levels below a field, which
:meth:`Codec.encode` refuses with :class:`~serverless_sessions.errors.InvalidSessionError` (a
shape error, not a size one: 65 nested empty lists are 130 bytes). The JSON parser reads
documents nested about 200 levels deep, well past the 65 a stored session can reach.
"""

from __future__ import annotations

import enum
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
import pydantic_core
import zstandard
from pydantic_core import PydanticSerializationError

from serverless_sessions.errors import (
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionError,
    SessionTooLargeError,
)
from serverless_sessions.model import (
    CONTENTS_CHECKED,
    SessionState,
    check_contents,
    check_message,
    validation_problems,
)

__all__ = [
    "BODY_CEILING",
    "DEFAULT_THRESHOLD",
    "FORMAT_VERSION",
    "MAGIC",
    "Codec",
    "Compression",
    "check_appended",
    "is_plaintext",
]

MAGIC = b"SSN"
FORMAT_VERSION = 1
_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_SIZE = len(MAGIC) + 2
BODY_CEILING = 64 * 1024 * 1024
"""The largest JSON body any reader accepts, whatever its settings; ``max_size`` stays below it."""
DEFAULT_THRESHOLD = 8 * 1024
"""JSON bodies shorter than this are stored uncompressed by default (see the module docstring)."""


def is_plaintext(data: bytes) -> bool:
    """Whether stored bytes are an unencrypted envelope (ours or the original gzip JSON)."""
    return data.startswith((MAGIC, _GZIP_MAGIC))


class Compression(enum.IntEnum):
    """Compression ids as stored in the envelope; never renumber."""

    NONE = 0
    ZSTD = 1
    BROTLI = 2


CompressionName = Literal["none", "zstd", "brotli"]


def _brotli() -> Any:
    try:
        import brotli
    except ImportError as exc:
        raise ConfigurationError(
            "compression 'brotli' needs the brotli package: pip install 'serverless-sessions[brotli]'"
        ) from exc
    return brotli


@dataclass(frozen=True, slots=True)
class Codec:
    """Encode sessions to envelopes and back.

    ``threshold``: JSON bodies shorter than this many bytes are stored uncompressed (compression
    would not pay). ``max_size``: the largest JSON body :meth:`encode` accepts, at most
    :data:`BODY_CEILING` (see the module docstring for the size rule).
    """

    compression: CompressionName = "zstd"
    threshold: int = DEFAULT_THRESHOLD
    zstd_level: int = 3
    brotli_quality: int = 11
    max_size: int = 1024 * 1024

    def __post_init__(self) -> None:
        if self.compression not in ("none", "zstd", "brotli"):
            raise ConfigurationError(
                f"compression must be 'none', 'zstd' or 'brotli', got {self.compression!r}"
            )
        if not 0 <= self.brotli_quality <= 11:
            raise ConfigurationError(f"brotli_quality must be 0-11, got {self.brotli_quality!r}")
        if not 1 <= self.zstd_level <= 22:
            raise ConfigurationError(f"zstd_level must be 1-22, got {self.zstd_level!r}")
        if not 64 <= self.max_size <= BODY_CEILING:
            raise ConfigurationError(
                f"max_size must be 64-{BODY_CEILING} bytes (the most any reader accepts), "
                f"got {self.max_size!r}"
            )
        if self.compression == "brotli":
            _brotli()

    def encode(self, state: SessionState) -> bytes:
        """The envelope of ``state``; refuses what a reader would refuse (see the size rule).

        Raises :class:`SessionTooLargeError` for a JSON body past ``max_size`` and
        :class:`InvalidSessionError` for contents that are not plain JSON.
        """
        return self.wrap(self.json_body(state))

    def wrap(self, body: bytes) -> bytes:
        """The envelope of a JSON body already checked by :meth:`json_body` or :meth:`message_body`."""
        kind = Compression.NONE
        if self.compression != "none" and len(body) >= self.threshold:
            packed_kind, packed = self._compress(body)
            if len(packed) < len(body):
                kind, body = packed_kind, packed
        return MAGIC + bytes((FORMAT_VERSION, kind)) + body

    def json_body(self, state: SessionState) -> bytes:
        """``state`` as the JSON every reader parses back equal, within ``max_size``."""
        try:
            check_contents(state)
            body = _SERIALIZER.to_json(state, warnings="error")
        except (PydanticSerializationError, ValueError, UnicodeEncodeError) as exc:
            raise InvalidSessionError(
                f"session {state.session_id!r} cannot be stored exactly as JSON: {exc}"
            ) from None
        if len(body) > self.max_size:
            raise SessionTooLargeError(state.session_id, len(body), self.max_size)
        return body

    def message_body(self, message: Any, *, session_id: str, path: str) -> bytes:
        """One conversation message as JSON, under the rules of a whole session's contents.

        A message is stored on its own when the storage keeps a message log, and must read back
        equal, fit within ``max_size`` by itself, and be accepted again inside a whole session.
        """
        check_appended(message, session_id=session_id, path=path)
        try:
            body = pydantic_core.to_json(message)
        except (PydanticSerializationError, ValueError, UnicodeEncodeError) as exc:
            raise _unstorable(session_id, path, exc) from None
        if len(body) > self.max_size:
            raise SessionTooLargeError(session_id, len(body), self.max_size, part=path)
        return body

    def decode_message(self, data: bytes, *, key: str) -> Any:
        """Parse the envelope of one stored conversation message; errors name ``key``."""
        try:
            return pydantic_core.from_json(self.decode_body(data, key=key), allow_inf_nan=False)
        except ValueError as exc:
            raise CorruptSessionError(key, f"message is not JSON: {exc}") from None

    def _compress(self, body: bytes) -> tuple[Compression, bytes]:
        if self.compression == "zstd":
            return Compression.ZSTD, _zstd_compressor(self.zstd_level).compress(body)
        return Compression.BROTLI, _brotli().compress(body, quality=self.brotli_quality)

    def decode(self, data: bytes, *, key: str) -> SessionState:
        """Parse an envelope (or an original gzip payload); errors name ``key``."""
        body = self.decode_body(data, key=key)
        try:
            # Rust parser refusing NaN/Infinity: what it returns is plain JSON, so validation
            # can skip the model's Python-level content walk.
            document = pydantic_core.from_json(body, allow_inf_nan=False)
        except ValueError as exc:
            raise CorruptSessionError(key, f"payload is not JSON: {exc}") from None
        try:
            return SessionState.model_validate(document, context=CONTENTS_CHECKED)
        except pydantic.ValidationError as exc:
            raise CorruptSessionError(
                key, f"payload is not a valid session: {validation_problems(exc)}"
            ) from None

    def decode_body(self, data: bytes, *, key: str) -> bytes:
        """The JSON body of an envelope, decompressed."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise CorruptSessionError(key, f"expected bytes, found {type(data).__name__}")
        data = bytes(data)
        if data.startswith(_GZIP_MAGIC):
            return _guarded(key, "gzip", lambda: _gunzip(data), (zlib.error,))
        if not data.startswith(MAGIC) or len(data) < _HEADER_SIZE:
            raise CorruptSessionError(key, "not a serverless-sessions envelope")
        version, kind, body = data[3], data[4], data[_HEADER_SIZE:]
        if version != FORMAT_VERSION:
            raise CorruptSessionError(key, f"unsupported envelope version {version}")
        if kind == Compression.NONE:
            if len(body) > BODY_CEILING:
                raise CorruptSessionError(key, f"body is past the {BODY_CEILING}-byte ceiling")
            return body
        if kind == Compression.ZSTD:
            return _guarded(key, "zstd", lambda: _unzstd(body), (zstandard.ZstdError,))
        if kind == Compression.BROTLI:
            brotli = _brotli()
            return _guarded(key, "brotli", lambda: _unbrotli(brotli, body), (brotli.error,))
        raise CorruptSessionError(key, f"unknown compression id {kind}")


def check_appended(message: Any, *, session_id: str, path: str) -> None:
    """Refuse a message of an append that could not be stored as JSON, naming it by ``path``.

    ``path`` names it in the caller's batch (``messages[i]``), whether the storage keeps it
    in a log (:meth:`Codec.message_body`) or in the whole session's conversation.
    """
    try:
        check_message(message, path)
    except ValueError as exc:
        raise _unstorable(session_id, path, exc) from None


def _unstorable(session_id: str, path: str, exc: Exception) -> InvalidSessionError:
    return InvalidSessionError(f"session {session_id!r}: {path} cannot be stored exactly as JSON: {exc}")


_SERIALIZER = SessionState.__pydantic_serializer__


def _guarded(
    key: str,
    name: str,
    decompress: Callable[[], bytes],
    errors: tuple[type[BaseException], ...],
) -> bytes:
    try:
        result = decompress()
    except errors as exc:
        raise CorruptSessionError(key, f"{name} body does not decompress: {exc}") from exc
    if len(result) > BODY_CEILING:
        raise CorruptSessionError(key, f"{name} body expands past {BODY_CEILING} bytes")
    return result


# Every decompressor below stops at BODY_CEILING + 1 bytes of output, so a small hostile
# payload (a "bomb") cannot make the reader allocate more than that before being refused.


def _unzstd(body: bytes) -> bytes:
    size = zstandard.frame_content_size(body)
    if 0 <= size <= BODY_CEILING:
        # The frame states its size (our writer always does): one exact allocation.
        return bytes(_zstd_decompressor().decompress(body))
    chunks: list[bytes] = []
    total = 0
    with _zstd_decompressor().stream_reader(body) as reader:
        while chunk := reader.read(_ZSTD_CHUNK):
            total += len(chunk)
            if total > BODY_CEILING:
                raise zstandard.ZstdError(f"output exceeds {BODY_CEILING} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


# zstd contexts are costly to create and not thread-safe: one per thread, reused.
_zstd_contexts = threading.local()
_ZSTD_CHUNK = 256 * 1024


def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    compressors: dict[int, zstandard.ZstdCompressor] = _zstd_contexts.__dict__.setdefault("compressors", {})
    if level not in compressors:
        compressors[level] = zstandard.ZstdCompressor(level=level)
    return compressors[level]


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    if not hasattr(_zstd_contexts, "decompressor"):
        _zstd_contexts.decompressor = zstandard.ZstdDecompressor()
    decompressor: zstandard.ZstdDecompressor = _zstd_contexts.decompressor
    return decompressor


def _unbrotli(brotli: Any, body: bytes) -> bytes:
    inflater = brotli.Decompressor()
    result = bytes(inflater.process(body, output_buffer_limit=BODY_CEILING + 1))
    if not inflater.is_finished() and len(result) <= BODY_CEILING:
        raise brotli.error("truncated brotli stream")
    return result


def _gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    result = inflater.decompress(data, BODY_CEILING + 1)
    if not inflater.eof:
        raise zlib.error("truncated or oversized gzip stream")
    return result

r"""Encryption at rest: an AES-256-GCM envelope and a key ring that rotates keys.

Layout of a sealed payload (format version 1)::

    b"SSE" | version (1 byte) | key id length n (1 byte) | key id (n bytes, ASCII)
           | nonce (12 bytes) | ciphertext | tag (16 bytes)

The magic differs from the codec's ``b"SSN"`` and from gzip's ``b"\x1f\x8b"``, which is how the
storage layer tells sealed payloads from plain ones. The key id is stored in clear so a reader
knows which key to use and :mod:`serverless_sessions.operations.reencryption` can find payloads still under an
old key without decrypting them.

Sealing adds 33 bytes plus the key id (at most 64): a sealed session is at most 97 bytes larger
than its envelope, which the codec's size rule keeps far below what AES-GCM seals in one message.

What is authenticated: the whole header (magic, version, key id, nonce) and the caller's
associated data — the storage passes ``b"<namespace>:<session_id>"`` — so a ciphertext copied to
another session or namespace, relabelled with another key id, truncated or altered in any byte
fails with :class:`~serverless_sessions.errors.DecryptionError`. The header is length-prefixed,
so header plus associated data is an unambiguous concatenation.

Nonces are 96 random bits per message. The GCM bound for random nonces (about 2**32 messages
per key) is far above what a session store writes under one key between rotations.

Keys never leave this module's objects: the ring keeps only the ciphers built from them (whose
repr shows nothing), error messages name the key *id* and the session key, and ``repr`` lists
key ids only.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Iterable

from serverless_sessions.errors import ConfigurationError, DecryptionError

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigurationError(
        "encryption at rest needs the cryptography package: pip install 'serverless-sessions[crypto]'"
    ) from exc

__all__ = [
    "ENVELOPE_MAGIC",
    "ENVELOPE_VERSION",
    "KEY_BYTES",
    "KeyRing",
    "generate_key",
    "key_id_of",
]

ENVELOPE_MAGIC = b"SSE"
ENVELOPE_VERSION = 1
KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _check_key_id(key_id: str, *, where: str) -> str:
    # A malformed id is not echoed: a mangled entry can put key text where the id should be.
    if not _KEY_ID_RE.fullmatch(key_id):
        raise ConfigurationError(f"{where}: a key id must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return key_id


def _decode_key(text: str, *, where: str) -> bytes:
    """Standard or URL-safe base64, padding optional; errors never echo the key text."""
    normalized = text.strip().replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        raw = base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where}: the key is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise ConfigurationError(
            f"{where}: the key must decode to {KEY_BYTES} bytes (AES-256), got {len(raw)}"
        )
    return raw


def generate_key(key_id: str) -> str:
    """A new random key as one ``KEY_ID:BASE64`` entry of the ``encryption_keys`` setting."""
    _check_key_id(key_id, where="generate_key")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"


def _split_header(sealed: bytes) -> tuple[int, str, int] | None:
    """``(version, key id, header length)`` of a sealed payload, or ``None`` if not one.

    Only the magic, the id length and the id's characters are checked here; the version is
    returned for the caller to judge.
    """
    if len(sealed) < len(ENVELOPE_MAGIC) + 2 or not sealed.startswith(ENVELOPE_MAGIC):
        return None
    version, id_length = sealed[3], sealed[4]
    end = 5 + id_length
    if len(sealed) < end:
        return None
    try:
        key_id = sealed[5:end].decode("ascii")
    except UnicodeDecodeError:
        return None
    if not _KEY_ID_RE.fullmatch(key_id):
        return None
    return version, key_id, end


def key_id_of(sealed: bytes) -> str | None:
    """The key id a sealed payload names, or ``None`` for anything else (plain, foreign).

    Reads the clear header only: it does not prove the payload authentic.
    """
    header = _split_header(sealed)
    return None if header is None else header[1]


class KeyRing:
    """AES-256-GCM keys by id: the newest seals, every configured one opens.

    Rotation: append a new key (it becomes the writer), keep the old ones until
    :func:`serverless_sessions.operations.reencrypt` has rewritten every session, then drop them.
    """

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys:
            _check_key_id(key_id, where="encryption keys")
            if key_id in ciphers:
                raise ConfigurationError(f"encryption keys: key id {key_id!r} is given twice")
            if len(key) != KEY_BYTES:
                raise ConfigurationError(
                    f"encryption key {key_id!r} must be {KEY_BYTES} bytes (AES-256), got {len(key)}"
                )
            ciphers[key_id] = AESGCM(key)
        if not ciphers:
            raise ConfigurationError("encryption keys: at least one key is needed")
        self._ciphers = ciphers
        self._current = next(reversed(ciphers))

    @classmethod
    def from_setting(cls, setting: str) -> KeyRing:
        """Parse ``"KEY_ID:BASE64_32_BYTES,..."`` (newest last), as in the settings.

        Errors name the entry by position only: in a mangled entry (a lost colon, id and key
        swapped) the text where the id should be may well be the key.
        """
        keys: list[tuple[str, bytes]] = []
        first_seen: dict[str, int] = {}
        for position, entry in enumerate(setting.split(","), start=1):
            where = f"encryption keys entry {position}"
            key_id, colon, text = entry.strip().partition(":")
            key_id = key_id.strip()
            if not colon or not key_id or not text.strip():
                raise ConfigurationError(f"{where} must look like KEY_ID:BASE64_32_BYTES")
            _check_key_id(key_id, where=where)
            if key_id in first_seen:
                raise ConfigurationError(f"{where} repeats the key id of entry {first_seen[key_id]}")
            first_seen[key_id] = position
            keys.append((key_id, _decode_key(text, where=where)))
        return cls(keys)

    @property
    def current_key_id(self) -> str:
        """The id of the newest key, the one :meth:`seal` uses."""
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Configured key ids, oldest first (the last one seals)."""
        return tuple(self._ciphers)

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={list(self._ciphers)!r}, current={self.current_key_id!r})"

    def seal(self, plaintext: bytes, *, associated_data: bytes) -> bytes:
        """Encrypt under the newest key, binding ``associated_data`` and the header."""
        key_id = self.current_key_id.encode("ascii")
        nonce = os.urandom(_NONCE_BYTES)
        header = ENVELOPE_MAGIC + bytes((ENVELOPE_VERSION, len(key_id))) + key_id + nonce
        body = self._ciphers[self.current_key_id].encrypt(nonce, plaintext, header + associated_data)
        return header + body

    def open(self, sealed: bytes, *, associated_data: bytes, key: str) -> bytes:
        """Authenticate and decrypt; every failure is a DecryptionError naming ``key``."""
        header = _split_header(sealed)
        if header is None:
            raise DecryptionError(key, "not an encrypted serverless-sessions envelope")
        version, key_id, end = header
        if version != ENVELOPE_VERSION:
            raise DecryptionError(key, f"unsupported encryption envelope version {version}")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(
                key,
                f"sealed with key id {key_id!r}, which is not configured "
                f"(configured: {', '.join(self._ciphers)})",
            )
        nonce_end = end + _NONCE_BYTES
        if len(sealed) < nonce_end + _TAG_BYTES:
            raise DecryptionError(key, f"envelope under key id {key_id!r} is truncated")
        try:
            return cipher.decrypt(
                sealed[end:nonce_end], sealed[nonce_end:], sealed[:nonce_end] + associated_data
            )
        except InvalidTag:
            raise DecryptionError(
                key,
                f"authentication failed under key id {key_id!r}: the payload was altered, "
                "truncated, or belongs to another session or namespace",
            ) from None

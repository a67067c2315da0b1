"""Encryption at rest: the AES-256-GCM envelope, key rotation, and the storage wiring."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from serverless_sessions.adapters.cache.base import CacheBase
from serverless_sessions.encryption import (
    ENVELOPE_MAGIC,
    KeyRing,
    generate_key,
    key_id_of,
)
from serverless_sessions.errors import ConfigurationError, DecryptionError
from serverless_sessions.factory import create_session_storage
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.storage.cache_storage import ACBCacheStorage

KEY1 = generate_key("k1")
KEY2 = generate_key("k2")
AD = b"ns:session-1"


def key_text(entry: str) -> str:
    return entry.partition(":")[2]


def ring(*entries: str) -> KeyRing:
    return KeyRing.from_setting(",".join(entries))


# -- the envelope ------------------------------------------------------------------------------


def test_envelope_layout_and_round_trip() -> None:
    keys = ring(KEY1)
    sealed = keys.seal(b"hello", associated_data=AD)
    assert sealed[:3] == ENVELOPE_MAGIC == b"SSE"
    assert not sealed.startswith((b"SSN", b"\x1f\x8b"))
    assert sealed[3] == 1  # format version
    assert sealed[4] == 2 and sealed[5:7] == b"k1"  # key id, length-prefixed
    assert len(sealed) == 7 + 12 + len(b"hello") + 16  # header, nonce, ciphertext, tag
    assert b"hello" not in sealed
    assert keys.open(sealed, associated_data=AD, key="ns:session-1") == b"hello"
    assert key_id_of(sealed) == "k1"


def test_nonces_are_random_per_message() -> None:
    keys = ring(KEY1)
    sealed = {keys.seal(b"same", associated_data=AD) for _ in range(500)}
    assert len(sealed) == 500
    assert len({item[7:19] for item in sealed}) == 500


def test_every_altered_byte_and_every_truncation_is_a_decryption_error() -> None:
    keys = ring(KEY1, KEY2)
    sealed = keys.seal(b'{"secret": "value"}', associated_data=AD)
    for position in range(len(sealed)):
        for flip in (0x01, 0x80):
            altered = bytearray(sealed)
            altered[position] ^= flip
            with pytest.raises(DecryptionError, match="ns:session-1"):
                keys.open(bytes(altered), associated_data=AD, key="ns:session-1")
    for length in range(len(sealed)):
        with pytest.raises(DecryptionError):
            keys.open(sealed[:length], associated_data=AD, key="ns:session-1")
    with pytest.raises(DecryptionError):
        keys.open(sealed + b"\x00", associated_data=AD, key="ns:session-1")


def test_header_relabelled_to_another_configured_key_fails_authentication() -> None:
    keys = ring(generate_key("aa"), generate_key("bb"))
    sealed = keys.seal(b"payload", associated_data=AD)
    assert key_id_of(sealed) == "bb"
    relabelled = sealed[:5] + b"aa" + sealed[7:]
    with pytest.raises(DecryptionError, match="authentication failed under key id 'aa'"):
        keys.open(relabelled, associated_data=AD, key="k")


@pytest.mark.parametrize("other", [b"ns:session-2", b"other-ns:session-1", b"", AD + b"x"])
def test_associated_data_binds_the_ciphertext_to_its_session(other: bytes) -> None:
    keys = ring(KEY1)
    sealed = keys.seal(b"payload", associated_data=AD)
    with pytest.raises(DecryptionError, match="belongs to another session or namespace"):
        keys.open(sealed, associated_data=other, key="where-it-was-found")


def test_unsupported_version_and_foreign_bytes() -> None:
    keys = ring(KEY1)
    sealed = bytearray(keys.seal(b"payload", associated_data=AD))
    sealed[3] = 2
    with pytest.raises(DecryptionError, match="unsupported encryption envelope version 2"):
        keys.open(bytes(sealed), associated_data=AD, key="k")
    foreigners = (b"", b"SSN\x01\x00{}", b"\x1f\x8b\x08", b"SSE", b"SSE\x01\x00", b"SSE\x01\x05ab")
    for foreign in foreigners:
        assert key_id_of(foreign) is None
        with pytest.raises(DecryptionError, match="not an encrypted"):
            keys.open(foreign, associated_data=AD, key="k")


def test_rotation_newest_key_writes_all_keys_read() -> None:
    old = ring(KEY1)
    rotated = ring(KEY1, KEY2)
    assert rotated.current_key_id == "k2" and rotated.key_ids == ("k1", "k2")
    sealed_old = old.seal(b"before", associated_data=AD)
    sealed_new = rotated.seal(b"after", associated_data=AD)
    assert key_id_of(sealed_new) == "k2"
    assert rotated.open(sealed_old, associated_data=AD, key="k") == b"before"
    assert rotated.open(sealed_new, associated_data=AD, key="k") == b"after"
    retired = ring(KEY2)
    with pytest.raises(DecryptionError) as caught:
        retired.open(sealed_old, associated_data=AD, key="ns:session-1")
    message = str(caught.value)
    assert "'k1'" in message and "not configured" in message and "ns:session-1" in message
    assert key_text(KEY1) not in message and key_text(KEY2) not in message


def test_same_key_under_another_id_cannot_pass_for_the_original() -> None:
    raw = key_text(KEY1)
    sealed = ring(f"a:{raw}").seal(b"x", associated_data=AD)
    with pytest.raises(DecryptionError, match="'a'"):
        ring(f"b:{raw}").open(sealed, associated_data=AD, key="k")


# -- the setting -------------------------------------------------------------------------------


def test_setting_accepts_standard_urlsafe_unpadded_and_spaces() -> None:
    raw = bytes(range(200, 232))
    standard = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    keys = KeyRing.from_setting(f" one:{standard} ,\ttwo:{urlsafe}\n")
    assert keys.key_ids == ("one", "two")
    sealed = KeyRing([("one", raw)]).seal(b"x", associated_data=AD)
    assert keys.open(sealed, associated_data=AD, key="k") == b"x"


SECRET_TEXT = base64.b64encode(b"S" * 32).decode()


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", "entry 1 must look like KEY_ID:BASE64"),
        ("k1", "entry 1 must look like"),
        ("k1:", "entry 1 must look like"),
        (f":{SECRET_TEXT}", "entry 1 must look like"),
        (f"k1:{SECRET_TEXT},", "entry 2 must look like"),
        (f"bad id:{SECRET_TEXT}", "must be 1-64 characters"),
        (f"{SECRET_TEXT}:{SECRET_TEXT}", "must be 1-64 characters"),  # id and key swapped
        (f"k1:{SECRET_TEXT[:-8]}", "entry 1: the key must decode to 32 bytes"),
        (f"k1:{SECRET_TEXT.rstrip('=')}AAAA", "must decode to 32 bytes"),
        (f"k1:{SECRET_TEXT[:-2]}!!", "entry 1: the key is not valid base64"),
        (f"k1:{SECRET_TEXT},k1:{SECRET_TEXT}", "entry 2 repeats the key id of entry 1"),
        # A lost "id:" prefix puts the key where the id goes (a valid id charset, found by fuzz).
        (f"{SECRET_TEXT.rstrip('=')}:!!", "entry 1: the key is not valid base64"),
    ],
)
def test_bad_settings_name_the_entry_never_the_key(setting: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected) as caught:
        KeyRing.from_setting(setting)
    assert SECRET_TEXT[:12] not in str(caught.value)
    assert SECRET_TEXT[:12] not in repr(caught.value)


def test_keyring_constructor_checks() -> None:
    with pytest.raises(ConfigurationError, match="at least one key"):
        KeyRing([])
    with pytest.raises(ConfigurationError, match="must be 32 bytes"):
        KeyRing([("k", b"short")])
    with pytest.raises(ConfigurationError, match="must be 1-64"):
        generate_key("no spaces")


def test_repr_and_attributes_never_show_key_material() -> None:
    raw = bytes(range(32))
    keys = KeyRing([("k1", raw)])
    shown = repr(keys) + str(keys) + repr(vars(keys) if hasattr(keys, "__dict__") else "")
    assert shown.startswith("KeyRing(key_ids=['k1'], current='k1')")
    for form in (raw.hex(), base64.b64encode(raw).decode(), repr(raw)):
        assert form not in shown


# -- through the storage -----------------------------------------------------------------------


def storage_on(cache: CacheBase, namespace: str, keys: KeyRing | None) -> ACBCacheStorage:
    return ACBCacheStorage(cache, namespace, encryptor=keys)


async def test_sessions_are_sealed_at_rest_and_round_trip(raw_cache: CacheBase) -> None:
    storage = storage_on(raw_cache, "enc", ring(KEY1))
    manager = ServerlessSessionManager(storage)
    marker = "very-private-conversation-" + "x" * 2000
    sid = await manager.create_session(
        "alice", "proj", fields={"conversation_history": [{"role": "user", "content": marker}]}
    )
    raw = await raw_cache.get(sid, namespace="enc")
    assert isinstance(raw, bytes) and key_id_of(raw) == "k1"
    assert b"very-private" not in raw and b"alice" not in raw
    state = await manager.get_session(sid)
    assert state is not None and state.conversation_history[0]["content"] == marker
    await manager.update_session(sid, {"metadata": {"step": 2}})
    state = await manager.get_session(sid)
    assert state is not None and state.metadata == {"step": 2}
    assert await manager.list_user_sessions("alice") == [sid]


async def test_ciphertext_moved_to_another_session_or_namespace_fails(
    raw_cache: CacheBase,
) -> None:
    keys = ring(KEY1)
    home = storage_on(raw_cache, "home", keys)
    away = storage_on(raw_cache, "away", keys)
    manager = ServerlessSessionManager(home)
    sid = await manager.create_session("alice", "proj", session_id="victim")
    sealed = await raw_cache.get(sid, namespace="home")
    await raw_cache.set("attacker", sealed, ttl=60, namespace="home")
    with pytest.raises(DecryptionError, match="'home:attacker'"):
        await home.load_session("attacker")
    await raw_cache.set("victim", sealed, ttl=60, namespace="away")
    with pytest.raises(DecryptionError, match="'away:victim'"):
        await away.load_session("victim")
    assert (await home.load_session("victim")) is not None


async def test_tampered_stored_bytes_raise_a_typed_error(raw_cache: CacheBase) -> None:
    storage = storage_on(raw_cache, "enc", ring(KEY1))
    sid = await ServerlessSessionManager(storage).create_session("u", "p")
    sealed = bytearray(await raw_cache.get(sid, namespace="enc"))
    sealed[-1] ^= 0x01
    await raw_cache.set(sid, bytes(sealed), ttl=60, namespace="enc")
    with pytest.raises(DecryptionError, match=f"enc:{sid}"):
        await storage.load_session(sid)


async def test_plain_sessions_stay_readable_after_turning_encryption_on(
    raw_cache: CacheBase,
) -> None:
    plain = storage_on(raw_cache, "mixed", None)
    sid = await ServerlessSessionManager(plain).create_session("u", "p", {"a": 1})
    encrypted = storage_on(raw_cache, "mixed", ring(KEY1))
    state = await encrypted.retrieve_session(sid)
    assert state is not None and state.metadata == {"a": 1}
    await ServerlessSessionManager(encrypted).update_session(sid, {"metadata": {"a": 2}})
    assert key_id_of(await raw_cache.get(sid, namespace="mixed")) == "k1"
    with pytest.raises(DecryptionError, match="no encryption keys set"):
        await plain.load_session(sid)


async def test_rotation_through_the_storage(raw_cache: CacheBase) -> None:
    before = storage_on(raw_cache, "rot", ring(KEY1))
    sid = await ServerlessSessionManager(before).create_session("u", "p")
    after = storage_on(raw_cache, "rot", ring(KEY1, KEY2))
    manager = ServerlessSessionManager(after)
    assert await manager.get_session(sid) is not None
    await manager.update_session(sid, {"metadata": {"rotated": True}})
    assert key_id_of(await raw_cache.get(sid, namespace="rot")) == "k2"
    with pytest.raises(DecryptionError, match="'k2'"):
        await before.load_session(sid)


def test_factory_builds_a_keyring_from_settings_and_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = create_session_storage(url="memory://", encryption_keys=f"{KEY1},{KEY2}")
    assert isinstance(storage.encryptor, KeyRing)
    assert storage.encryptor.current_key_id == "k2"
    assert storage.describe()["encrypted"] is True
    monkeypatch.setenv("SERVERLESS_SESSIONS_ENCRYPTION_KEYS", KEY1)
    from_env = create_session_storage(url="memory://")
    assert isinstance(from_env.encryptor, KeyRing) and from_env.encryptor.key_ids == ("k1",)
    monkeypatch.setenv("SERVERLESS_SESSIONS_ENCRYPTION_KEYS", f"k1:{SECRET_TEXT[:20]}")
    with pytest.raises(ConfigurationError) as caught:
        create_session_storage(url="memory://")
    assert SECRET_TEXT[:12] not in str(caught.value)


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_keys_setting_means_no_keys(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    monkeypatch.setenv("SERVERLESS_SESSIONS_ENCRYPTION_KEYS", blank)
    storage = create_session_storage(url="memory://")
    assert storage.encryptor is None and storage.describe()["encrypted"] is False
    monkeypatch.setenv("SERVERLESS_SESSIONS_REQUIRE_ENCRYPTION", "true")
    with pytest.raises(ConfigurationError, match="require_encryption needs encryption keys"):
        create_session_storage(url="memory://")


class NonceFirst:
    """A user's own encryptor with no header: AES-GCM output behind a bare nonce."""

    def __init__(self) -> None:
        self.cipher = AESGCM(bytes(32))
        self.next_nonce = bytes(12)

    def seal(self, plaintext: bytes, *, associated_data: bytes) -> bytes:
        nonce = self.next_nonce
        return nonce + self.cipher.encrypt(nonce, plaintext, associated_data)

    def open(self, sealed: bytes, *, associated_data: bytes, key: str) -> bytes:
        return self.cipher.decrypt(sealed[:12], sealed[12:], associated_data)


@pytest.mark.parametrize("unlucky", [b"\x1f\x8b", b"SSN"])
async def test_sealed_bytes_a_reader_would_take_for_plaintext_are_never_stored(
    raw_cache: CacheBase, unlucky: bytes
) -> None:
    """With a random nonce in front, one write in 65,536 starts with gzip's magic; a reader
    would parse it as plaintext and never decrypt it."""
    encryptor = NonceFirst()
    storage = ACBCacheStorage(raw_cache, "own", encryptor=encryptor)
    manager = ServerlessSessionManager(storage)
    sid = await manager.create_session("u", "p", {"v": 1})
    encryptor.next_nonce = unlucky + bytes(12 - len(unlucky))
    with pytest.raises(ConfigurationError, match=f"NonceFirst sealed 'own:{sid}'"):
        await manager.update_session(sid, {"metadata": {"v": 2}})
    state = await manager.get_session(sid)
    assert state is not None and state.metadata == {"v": 1} and state.revision == 1

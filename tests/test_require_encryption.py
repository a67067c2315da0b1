"""With encryption required, a planted plaintext session is refused, not loaded."""

from __future__ import annotations

import pytest

from serverless_sessions import ACBCacheStorage, ConfigurationError, DecryptionError, SessionState
from serverless_sessions.adapters.cache import memory
from serverless_sessions.encryption import KeyRing, generate_key


def state(session_id: str) -> SessionState:
    return SessionState(session_id=session_id, user_id="u", project_id="p", metadata={"k": 1})


async def test_plaintext_is_readable_during_transition_and_refused_after() -> None:
    cache = memory.Cache()
    plain = ACBCacheStorage(cache, namespace="enc")
    await plain.store_session(state("old"), ttl_seconds=60)
    ring = KeyRing.from_setting(generate_key("k1"))
    transition = ACBCacheStorage(cache, namespace="enc", encryptor=ring)
    assert await transition.retrieve_session("old") is not None
    strict = ACBCacheStorage(cache, namespace="enc", encryptor=ring, require_encryption=True)
    with pytest.raises(DecryptionError, match="plaintext is refused"):
        await strict.retrieve_session("old")
    await strict.store_session(state("new"), ttl_seconds=60)
    assert await strict.retrieve_session("new") == await transition.retrieve_session("new")


def test_requiring_encryption_without_keys_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="encryption keys"):
        ACBCacheStorage(memory.Cache(), require_encryption=True)

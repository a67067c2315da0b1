"""The codec: envelope, compression options, cross-reading, size limit, no pickle."""

from __future__ import annotations

import gzip
import pickle

import pytest

from serverless_sessions import Codec, ConfigurationError, CorruptSessionError, SessionState
from serverless_sessions.codec import MAGIC, Compression
from serverless_sessions.errors import SessionTooLargeError


def big_state() -> SessionState:
    return SessionState(
        session_id="s1",
        user_id="u",
        project_id="p",
        conversation_history=[{"role": "assistant", "content": f"message {i} " * 20} for i in range(30)],
    )


@pytest.mark.parametrize("writer", ["none", "zstd", "brotli"])
@pytest.mark.parametrize("reader", ["none", "zstd", "brotli"])
def test_any_setting_reads_any_other(writer: str, reader: str) -> None:
    state = big_state()
    data = Codec(compression=writer).encode(state)  # type: ignore[arg-type]
    assert data.startswith(MAGIC)
    assert Codec(compression=reader).decode(data, key="k") == state  # type: ignore[arg-type]


def test_compression_applies_above_the_threshold_only() -> None:
    small = SessionState(session_id="s", user_id="u", project_id="p")
    assert Codec(threshold=10_000).encode(small)[4] == Compression.NONE
    assert Codec(threshold=0).encode(small)[4] == Compression.ZSTD
    assert len(Codec().encode(big_state())) < len(Codec(compression="none").encode(big_state())) / 2


def test_brotli_quality_is_configurable() -> None:
    state = big_state()
    fast = Codec(compression="brotli", brotli_quality=1).encode(state)
    assert Codec().decode(fast, key="k") == state
    with pytest.raises(ConfigurationError, match="12"):
        Codec(compression="brotli", brotli_quality=12)


def test_original_gzip_payloads_are_readable() -> None:
    original = {
        "session_id": "legacy",
        "user_id": "u",
        "project_id": "p",
        "created_at": "2025-10-28T12:00:00",
        "last_activity": "2025-10-28T12:30:00",
        "permissions": [],
        "conversation_history": [],
        "reflection_data": {},
        "app_monitoring_state": {},
        "llm_provider_configs": {},
        "metadata": {},
    }
    import json

    state = Codec().decode(gzip.compress(json.dumps(original).encode()), key="k")
    assert state.created_at.tzinfo is not None
    assert state.created_at.isoformat() == "2025-10-28T12:00:00+00:00"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"SSN",
        b"SSN\x02\x00{}",
        b"SSN\x01\x07{}",
        b"SSN\x01\x00not json",
        b"SSN\x01\x01\x28\xb5\x2f\xfd",
        b"\x1f\x8b\x08\x00truncated",
        pickle.dumps({"session_id": "x"}),
    ],
)
def test_bad_bytes_raise_corrupt_errors_naming_the_key(payload: bytes) -> None:
    with pytest.raises(CorruptSessionError, match="'ns:key'"):
        Codec().decode(payload, key="ns:key")


def test_size_limit_is_checked_on_the_encoded_bytes() -> None:
    with pytest.raises(SessionTooLargeError, match="'s1'"):
        Codec(compression="none", max_size=1000).encode(big_state())
    assert Codec(max_size=10_000).encode(big_state())

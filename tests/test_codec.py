"""The codec: envelope, compression options, cross-reading, the size rule, no pickle."""

from __future__ import annotations

import gzip
import pickle

import pytest
import zstandard

from serverless_sessions import Codec, ConfigurationError, CorruptSessionError, SessionState
from serverless_sessions.codec import BODY_CEILING, DEFAULT_THRESHOLD, MAGIC, Compression
from serverless_sessions.config.settings import load_settings
from serverless_sessions.errors import InvalidSessionError, SessionTooLargeError


def big_state(messages: int = 30) -> SessionState:
    return SessionState(
        session_id="s1",
        user_id="u",
        project_id="p",
        conversation_history=[
            {"role": "assistant", "content": f"message {i} " * 20} for i in range(messages)
        ],
    )


@pytest.mark.parametrize("writer", ["none", "zstd", "brotli"])
@pytest.mark.parametrize("reader", ["none", "zstd", "brotli"])
def test_any_setting_reads_any_other(writer: str, reader: str) -> None:
    state = big_state(messages=60)
    data = Codec(compression=writer).encode(state)  # type: ignore[arg-type]
    assert data.startswith(MAGIC)
    assert Codec(compression=reader).decode(data, key="k") == state  # type: ignore[arg-type]


def test_compression_applies_above_the_threshold_only() -> None:
    small = SessionState(session_id="s", user_id="u", project_id="p")
    assert Codec(threshold=10_000).encode(small)[4] == Compression.NONE
    assert Codec(threshold=0).encode(small)[4] == Compression.ZSTD
    assert Codec().threshold == DEFAULT_THRESHOLD == load_settings([], url="memory://").compression_threshold
    below = big_state()
    assert len(below.model_dump_json()) < DEFAULT_THRESHOLD
    assert Codec().encode(below)[4] == Compression.NONE
    above = big_state(messages=60)
    assert len(above.model_dump_json()) >= DEFAULT_THRESHOLD
    assert len(Codec().encode(above)) < len(Codec(compression="none").encode(above)) / 2


def test_brotli_quality_is_configurable() -> None:
    state = big_state(messages=60)
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


def body_size(state: SessionState) -> int:
    return len(state.model_dump_json().encode("utf-8"))


def test_the_limit_bounds_the_json_body_before_compression() -> None:
    state = big_state(messages=60)
    size = body_size(state)
    for compression in ("none", "zstd", "brotli"):
        stored = Codec(compression=compression, max_size=size).encode(state)  # type: ignore[arg-type]
        assert len(stored) <= size + 5
        with pytest.raises(SessionTooLargeError, match=rf"'s1'.* {size} bytes.* {size - 1}\b"):
            Codec(compression=compression, max_size=size - 1).encode(state)  # type: ignore[arg-type]


def test_a_body_that_compresses_to_almost_nothing_is_still_refused() -> None:
    state = SessionState(session_id="s1", user_id="u", project_id="p", metadata={"x": "x" * 100_000})
    assert len(zstandard.ZstdCompressor().compress(b"x" * 100_000)) < 100
    with pytest.raises(SessionTooLargeError, match=rf" {body_size(state)} bytes.* 50000\b"):
        Codec(max_size=50_000).encode(state)


def test_the_limit_may_not_exceed_what_every_reader_accepts() -> None:
    assert Codec(max_size=BODY_CEILING).max_size == BODY_CEILING
    with pytest.raises(ConfigurationError, match=f"64-{BODY_CEILING} bytes.*{BODY_CEILING + 1}"):
        Codec(max_size=BODY_CEILING + 1)
    with pytest.raises(ConfigurationError, match=r"max_session_bytes \(argument"):
        load_settings([], url="memory://", max_session_bytes=BODY_CEILING + 1)


def test_an_uncompressed_body_past_the_ceiling_is_corrupt() -> None:
    payload = MAGIC + bytes((1, Compression.NONE)) + b" " * (BODY_CEILING + 1)
    with pytest.raises(CorruptSessionError, match=r"'ns:huge'.*ceiling"):
        Codec().decode(payload, key="ns:huge")


def nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_the_deepest_content_a_writer_accepts_is_read_back() -> None:
    state = SessionState(session_id="s1", user_id="u", project_id="p")
    state.metadata["d"] = nested(63)  # in place: only the codec checks it
    assert Codec().decode(Codec().encode(state), key="k") == state
    state.metadata["d"] = nested(64)
    with pytest.raises(InvalidSessionError, match=r"metadata\.d.*nested deeper than 64 levels"):
        Codec().encode(state)

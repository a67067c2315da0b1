"""SessionState validation: timestamps, identity, JSON-only contents."""

from __future__ import annotations

import enum
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType

import pydantic
import pytest

from serverless_sessions import Codec, SessionState


def test_naive_legacy_timestamps_are_read_as_utc() -> None:
    state = SessionState(session_id="s", user_id="u", project_id="p", created_at="2025-01-02T03:04:05")
    assert state.created_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_aware_timestamps_are_normalised_to_utc() -> None:
    plus_two = datetime(2025, 1, 2, 5, 0, tzinfo=timezone(timedelta(hours=2)))
    state = SessionState(session_id="s", user_id="u", project_id="p", last_activity=plus_two)
    assert state.last_activity == datetime(2025, 1, 2, 3, 0, tzinfo=UTC)
    assert state.last_activity.utcoffset() == timedelta(0)


def test_assignments_are_validated() -> None:
    state = SessionState(session_id="s", user_id="u", project_id="p")
    with pytest.raises(pydantic.ValidationError):
        state.created_at = "not-a-date"  # type: ignore[assignment]
    with pytest.raises(pydantic.ValidationError):
        state.session_id = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        state.revision = -1


class _Text(str):
    pass


class _Number(float):
    pass


class _Level(enum.IntEnum):
    HIGH = 3


def _nested(depth: int, leaf: object) -> object:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def _cycle() -> list[object]:
    loop: list[object] = []
    loop.append(loop)
    return loop


NOT_JSON = [
    float("nan"),
    float("inf"),
    -float("inf"),
    {1: "int key"},
    {"s": {1, 2}},
    "\ud800",
    {"\udfff": "lone surrogate in a key"},
    2**70,
    2**63,
    -(2**63) - 1,
    object(),
    Decimal("1.5"),
    Fraction(1, 2),
    (1, 2),
    b"bytes",
    MappingProxyType({"a": 1}),
    _nested(64, "leaf"),
    _cycle(),
]


@pytest.mark.parametrize("value", NOT_JSON)
def test_non_json_contents_are_refused(value: object) -> None:
    with pytest.raises(pydantic.ValidationError):
        SessionState(session_id="s", user_id="u", project_id="p", metadata={"v": value})


@pytest.mark.parametrize(
    "value",
    [
        2**63 - 1,
        -(2**63),
        1e308,
        -0.0,
        True,
        None,
        "",
        "\U0001f600 \u00e9",
        _Text("a str subclass"),
        _Number(1.5),
        _Level.HIGH,
        OrderedDict(a=[1, {"b": None}]),
        _nested(63, "leaf"),
        _nested(63, []),  # an empty list at the deepest level: only the Python walk accepts it
    ],
)
def test_plain_json_contents_are_accepted_and_read_back_equal(value: object) -> None:
    state = SessionState(session_id="s", user_id="u", project_id="p", metadata={"v": value})
    codec = Codec(compression="none")
    assert codec.decode(codec.encode(state), key="k").metadata == {"v": value}


def test_deep_nesting_is_refused() -> None:
    deep: object = "leaf"
    for _ in range(100):
        deep = [deep]
    with pytest.raises(pydantic.ValidationError, match="nested deeper"):
        SessionState(session_id="s", user_id="u", project_id="p", metadata={"d": deep})


def test_original_helpers_still_work() -> None:
    state = SessionState(session_id="s", user_id="u", project_id="p", metadata={"k": "v" * 1000})
    data = state.to_dict()
    assert isinstance(data["created_at"], str)
    assert SessionState.from_dict(data) == state
    assert 0 < state.get_compressed_size() < 1000


@pytest.mark.parametrize("ttl", [float("inf"), float("nan")])
def test_an_infinite_idle_timeout_is_refused_not_stored_as_none(ttl: float) -> None:
    """JSON has no infinity: it would be written as null and read back as "no idle timeout"."""
    with pytest.raises(pydantic.ValidationError, match="idle_ttl_seconds"):
        SessionState(session_id="s", user_id="u", project_id="p", idle_ttl_seconds=ttl)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_a_timestamp_out_of_range_in_utc_is_a_validation_error(moment: object) -> None:
    with pytest.raises(pydantic.ValidationError, match="out of range in UTC"):
        SessionState(session_id="s", user_id="u", project_id="p", created_at=moment)

"""``SessionState``: the validated record of one assistant session.

Timestamps are timezone-aware UTC; the original module's naive ISO strings are read as UTC.
Every assignment is validated, the identity fields (``session_id``, ``user_id``, ``project_id``)
cannot be reassigned, and the free-form sections must hold plain JSON (finite numbers, string
keys, bounded nesting) so that what is stored is exactly what is read back.
"""

from __future__ import annotations

import functools
import gzip
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any, Self, TypeVar

import pydantic_core
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import core_schema

from serverless_sessions.ids import validate_owner_id, validate_session_id

__all__ = [
    "CONTENTS_CHECKED",
    "MUTABLE_FIELDS",
    "SessionState",
    "check_contents",
    "check_message",
    "mark_partial_history",
    "record_revision",
    "utc_now",
    "validation_problems",
]

_T = TypeVar("_T")
_MAX_DEPTH = 64
_INT_LIMIT = 2**63


def utc_now() -> datetime:
    """Timezone-aware current time."""
    return datetime.now(UTC)


def _to_utc(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from exc
    if isinstance(value, datetime):
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError as exc:  # year 1 or 9999 shifted out of range by its offset
            raise ValueError(f"{value.isoformat()} is out of range in UTC") from exc
    return value


def _check_json(value: Any, path: str = "$") -> None:
    """Refuse ``value`` unless it is plain JSON, naming where it is not.

    The check runs in Rust (:func:`_plain_json`); only a value it refuses is walked in Python,
    to name the offending place. The walk decides: the Rust schema is stricter than the walk
    in places (an empty container at the deepest level) and never looser.
    """
    try:
        _plain_json().validate_python(value)
    except pydantic_core.ValidationError:
        _walk_json(value, path)


@functools.cache
def _plain_json() -> pydantic_core.SchemaValidator:
    """A validator for plain JSON nested at most ``_MAX_DEPTH`` levels, built on first use.

    One definition per level (the depth is in the schema, so a self-referencing list stops at
    the bottom). Choices carry labels: without them pydantic-core names each union after its
    choices, a name that doubles at every level. Strict everywhere: no tuple as a list, no
    int key, no bool as an int; floats must be ``float`` instances (strict float validation
    takes a ``Decimal``); ``max_length`` makes pydantic-core read each string as UTF-8, which
    refuses lone surrogates.
    """
    text = core_schema.str_schema(strict=True, max_length=2**62)
    scalars: list[tuple[core_schema.CoreSchema, str]] = [
        (text, "string"),
        (core_schema.int_schema(strict=True, ge=-_INT_LIMIT, le=_INT_LIMIT - 1), "integer"),
        (
            core_schema.chain_schema(
                [
                    core_schema.is_instance_schema(float),
                    core_schema.float_schema(strict=True, allow_inf_nan=False),
                ]
            ),
            "number",
        ),
        (core_schema.bool_schema(strict=True), "boolean"),
        (core_schema.none_schema(), "null"),
    ]
    levels: list[core_schema.CoreSchema] = []
    for depth in range(_MAX_DEPTH + 1):
        choices = list(scalars)
        if depth < _MAX_DEPTH:
            below = core_schema.definition_reference_schema(f"json{depth + 1}")
            containers: list[tuple[core_schema.CoreSchema, str]] = [
                (core_schema.dict_schema(text, below, strict=True), "object"),
                (core_schema.list_schema(below, strict=True), "array"),
            ]
            choices = choices[:1] + containers + choices[1:]
        levels.append(core_schema.union_schema(list(choices), mode="left_to_right", ref=f"json{depth}"))
    return pydantic_core.SchemaValidator(
        core_schema.definitions_schema(core_schema.definition_reference_schema("json0"), levels)
    )


def _walk_json(value: Any, path: str, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{path}: nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -_INT_LIMIT <= value < _INT_LIMIT:
            raise ValueError(f"{path}: integer {value} is outside the 64-bit range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: {value!r} is not a finite number")
    elif isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk_json(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: key {key!r} is not a string")
            _check_text(key, path)
            _walk_json(item, f"{path}.{key}", depth + 1)
    else:
        raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{path}: text holds a lone surrogate ({exc.reason})") from exc


CONTENTS_CHECKED: Mapping[str, bool] = MappingProxyType({"contents_checked": True})
"""Validation context for data whose contents are already known to be plain JSON (parsed from
JSON text, or about to pass :func:`check_contents` on encode): skips the Python-level walk,
the dominant cost of validating a large session."""


def _json_only(value: _T, info: ValidationInfo) -> _T:
    if not (info.context and info.context.get("contents_checked")):
        _check_json(value)
    return value


UTCDateTime = Annotated[datetime, BeforeValidator(_to_utc)]
SessionId = Annotated[str, AfterValidator(validate_session_id)]
UserId = Annotated[str, AfterValidator(lambda v: validate_owner_id(v, what="user id"))]
ProjectId = Annotated[str, AfterValidator(lambda v: validate_owner_id(v, what="project id"))]
JSONList = Annotated[list[Any], AfterValidator(_json_only)]
JSONDict = Annotated[dict[str, Any], AfterValidator(_json_only)]
Permissions = Annotated[list[str], AfterValidator(_json_only)]


class SessionState(BaseModel):
    """One session: identity, timestamps, the assistant's state, and a revision counter.

    ``revision`` is the stored revision this object was read at (0 = never stored); storage
    refuses a write whose revision is stale, which is how concurrent writers avoid lost updates.
    ``absolute_expires_at`` is an optional hard deadline next to the idle TTL.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid", revalidate_instances="always")

    session_id: SessionId = Field(frozen=True)
    user_id: UserId = Field(frozen=True)
    project_id: ProjectId = Field(frozen=True)
    created_at: UTCDateTime = Field(default_factory=utc_now)
    last_activity: UTCDateTime = Field(default_factory=utc_now)
    permissions: Permissions = Field(default_factory=list)
    conversation_history: JSONList = Field(default_factory=list)
    reflection_data: JSONDict = Field(default_factory=dict)
    app_monitoring_state: JSONDict = Field(default_factory=dict)
    llm_provider_configs: JSONDict = Field(default_factory=dict, repr=False)
    metadata: JSONDict = Field(default_factory=dict)
    absolute_expires_at: UTCDateTime | None = None
    # Infinity would be stored as JSON null, read back as "no idle timeout".
    idle_ttl_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    revision: int = Field(default=0, ge=0)
    # Set by storage on a session read with only part of its conversation (history_limit):
    # storing it whole would drop the messages it does not hold.
    _partial_history: bool = PrivateAttr(default=False)

    @property
    def has_partial_history(self) -> bool:
        """Whether ``conversation_history`` holds only part of the conversation.

        True for a session read with a ``history_limit`` (or a window of messages); such a
        session cannot be stored whole (that would drop the messages it does not hold): append
        to it, or update its other fields, instead.
        """
        # From pydantic's own store: reading a private attribute by name goes through
        # BaseModel.__getattr__ (~2.5 us, on every store).
        private = self.__pydantic_private__
        return bool(private and private.get("_partial_history"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (timestamps as ISO-8601 strings), as the original module returned."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Validate a dict produced by :meth:`to_dict` or by the original module."""
        return cls.model_validate(data)

    def get_compressed_size(self) -> int:
        """Size in bytes of the gzip-compressed JSON, the original module's size measure."""
        return len(gzip.compress(self.model_dump_json().encode("utf-8")))


CONTENT_FIELDS = (
    "permissions",
    "conversation_history",
    "reflection_data",
    "app_monitoring_state",
    "llm_provider_configs",
    "metadata",
)

MUTABLE_FIELDS = frozenset(CONTENT_FIELDS)
"""Fields an update may set. Identity, timestamps, lifetimes and ``revision`` belong to the
manager and the storage: a caller cannot rename a session, move it to another owner, or lift
its absolute lifetime."""


def record_revision(state: SessionState, revision: int) -> None:
    """Set the revision a storage just wrote: a count it keeps, never user input.

    Assigning the field would run pydantic's assignment validation on every store.
    """
    state.__dict__["revision"] = revision
    state.__pydantic_fields_set__.add("revision")


def mark_partial_history(state: SessionState) -> SessionState:
    """Flag ``state`` as holding only part of its conversation (see ``has_partial_history``)."""
    state._partial_history = True
    return state


def check_message(message: Any, path: str) -> None:
    """Refuse a conversation message that could not be stored inside ``conversation_history``.

    It is checked one level down, where it sits in the list, so a message accepted alone is
    also accepted as part of a whole session.
    """
    try:
        _plain_json().validate_python([message])
    except pydantic_core.ValidationError:
        _walk_json(message, path, 1)


def check_contents(state: SessionState) -> None:
    """Re-check the free-form sections before they are stored.

    In-place edits (``state.metadata["x"] = nan``) bypass assignment validation, and must not
    be stored as something else (NaN as null, an int key as a string).
    """
    for name in CONTENT_FIELDS:
        _check_json(getattr(state, name), name)


def validation_problems(exc: ValidationError) -> str:
    """A pydantic error as text without the rejected input, which may hold a secret."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )

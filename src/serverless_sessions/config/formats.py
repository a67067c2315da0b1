"""The three config formats, each read into settings layers.

* **new** (the plan's "after")::

      {"acb": {"cache": {"provider": "redis", "host": ..., "port": ..., "password": ...,
                         "db": ..., "default_ttl": ..., "ssl_enabled": ..., ...}}}

  Keys are :class:`~serverless_sessions.config.settings.StorageSettings` field names, plus ``path``
  for the SQLite file (field ``sqlite_path``).
* **before** (the plan's "before")::

      {"serverless": {"storage_type": "redis" | "s3" | "local" | "acb",
                      "storage_config": {...}}}

* **original** (``~/.claude/data/serverless_config.json``)::

      {"storage_backend": "local", "session_ttl_hours": 24, "cleanup_interval_hours": 6,
       "backends": {"redis": {...}, "s3": {...}, "local": {...}}}

An old format naming ``redis``/``s3``/``local`` points at data in the original module's layout.
It is read as **the legacy storage** (``legacy_url``), so the sessions users have keep being
served instead of silently vanishing, **plus** the equivalent new storage as parts (``url``):
the storage to move them to with ``migrate``, and what ``convert_to_new_format`` writes. The
plan's ``storage_type: "acb"`` has no legacy data: its ``storage_config`` is a new-format section.

When one document holds several formats, the old ones are the lower layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serverless_sessions.config.documents import Document, Key, validation_problems
from serverless_sessions.config.layers import Layer
from serverless_sessions.config.legacy import LEGACY_MODELS, LegacyConfig, LegacyS3
from serverless_sessions.errors import ConfigurationError

__all__ = ["ALIASES", "OLD_KEYS", "FormatLayer", "interpret", "s3_keys_dropped", "to_fields", "to_section"]

ALIASES: Mapping[str, str] = {"path": "sqlite_path"}
"""New-format key -> settings field, where the plan's name differs from ours."""

_REVERSE = {field: key for key, field in ALIASES.items()}
_ORIGINAL_KEYS = ("storage_backend", "session_ttl_hours", "cleanup_interval_hours", "backends")
_HOUR = 3600
OLD_KEYS = frozenset({*_ORIGINAL_KEYS, "serverless"})
"""Top-level keys of the old formats (what ``convert_to_new_format`` replaces)."""

Format = Literal["new", "before", "original"]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class FormatLayer:
    """A layer read from one format, the files it came from, and the original backend it names."""

    format: Format
    layer: Layer
    files: tuple[Path, ...]
    legacy: LegacyConfig | None = None


class _Original(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storage_backend: Literal["local", "redis", "s3"] = "local"
    session_ttl_hours: float | None = Field(default=None, gt=0)
    cleanup_interval_hours: float | None = Field(default=None, gt=0)
    backends: dict[Literal["local", "redis", "s3"], dict[str, Any]] = Field(default_factory=dict)


class _Before(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storage_type: Literal["acb", "local", "redis", "s3"]
    storage_config: dict[str, Any] = Field(default_factory=dict)


def to_fields(section: Mapping[str, Any]) -> dict[str, Any]:
    """New-format keys -> settings field names."""
    return {ALIASES.get(key, key): value for key, value in section.items()}


def to_section(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings values -> a new-format ``acb.cache`` section (the legacy pointer left out)."""
    return {_REVERSE.get(name, name): value for name, value in values.items() if name != "legacy_url"}


def _validated(model: type[M], data: Any, doc: Document, base: Key) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, lambda loc: doc.where((*base, *loc)))
        raise ConfigurationError(f"invalid configuration: {problems}") from None


def _new(doc: Document, section: Key) -> Layer:
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, value in (doc.get(section) or {}).items():
        name = ALIASES.get(key, key)
        if name in values:
            raise ConfigurationError(
                f"{doc.where((*section, key))}: the same setting as {origins[name]}; keep one"
            )
        values[name] = value
        origins[name] = doc.where((*section, key))
    return Layer(values, origins)


def _legacy_config(doc: Document, kind: str, config: Any, section: Key) -> LegacyConfig:
    return _validated(LEGACY_MODELS[kind], config, doc, section)


def _legacy_layer(
    doc: Document, legacy: LegacyConfig, section: Key, extra: Mapping[str, tuple[Key, Any]]
) -> Layer:
    """The legacy storage and its new equivalent, from the backend config at ``section``.

    ``extra`` adds values read elsewhere in the document (``name: (path, value)``).
    """
    values = to_fields(legacy.new_section()) | {"legacy_url": legacy.url()}
    origins = dict.fromkeys(values, doc.where(section))
    for name, (path, value) in extra.items():
        values[name] = value
        origins[name] = doc.where(path)
    return Layer(values, origins)


def _seconds(hours: float) -> float | int:
    """Hours in seconds; whole numbers stay integers so a converted file reads naturally."""
    seconds = hours * _HOUR
    return int(seconds) if seconds.is_integer() else seconds


def _original(doc: Document) -> FormatLayer:
    raw = {key: doc.data[key] for key in _ORIGINAL_KEYS if key in doc.data}
    original = _validated(_Original, raw, doc, ())
    # Every backend is checked, not only the selected one: a typo must not wait for a switch.
    backends = {
        kind: _legacy_config(doc, kind, config, ("backends", kind))
        for kind, config in original.backends.items()
    }
    extra: dict[str, tuple[Key, Any]] = {}
    if original.session_ttl_hours is not None:
        extra["default_ttl"] = (("session_ttl_hours",), _seconds(original.session_ttl_hours))
    if original.cleanup_interval_hours is not None:
        seconds = _seconds(original.cleanup_interval_hours)
        extra["cleanup_interval"] = (("cleanup_interval_hours",), seconds)
    kind = original.storage_backend
    section = ("backends", kind)
    legacy = backends.get(kind) or _legacy_config(doc, kind, {}, section)
    files = tuple(dict.fromkeys(path for key in raw for path in doc.files((key,))))
    return FormatLayer("original", _legacy_layer(doc, legacy, section, extra), files, legacy)


def _before(doc: Document) -> FormatLayer:
    before = _validated(_Before, doc.get(("serverless",)), doc, ("serverless",))
    section = ("serverless", "storage_config")
    files = tuple(doc.files(("serverless",)))
    if before.storage_type == "acb":
        return FormatLayer("before", _new(doc, section), files)
    legacy = _legacy_config(doc, before.storage_type, before.storage_config, section)
    return FormatLayer("before", _legacy_layer(doc, legacy, section, {}), files, legacy)


def interpret(doc: Document) -> list[FormatLayer]:
    """The layers ``doc`` holds, lowest precedence first: original, before, new."""
    found: list[FormatLayer] = []
    if any(key in doc.data for key in _ORIGINAL_KEYS):
        found.append(_original(doc))
    if doc.get(("serverless",)) is not None:
        found.append(_before(doc))
    if doc.get(("acb", "cache")) is not None:
        section = ("acb", "cache")
        found.append(FormatLayer("new", _new(doc, section), tuple(doc.files(section))))
    return found


def s3_keys_dropped(legacy: LegacyConfig | None) -> bool:
    """Whether the new equivalent of ``legacy`` leaves out AWS keys the old config held."""
    return isinstance(legacy, LegacyS3) and (
        legacy.access_key_id is not None or legacy.secret_access_key is not None
    )

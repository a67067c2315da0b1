"""Config files as JSON documents: read, shape-checked, deep-merged with their provenance.

Several files may be given (a shared ``.mcp.json`` and a file of secrets, say). They are merged
as documents before they are interpreted, key by key at every depth, later files winning, so a
file that sets only ``acb.cache.password`` — or only ``backends.redis.password`` in the original
format — completes the others instead of replacing a whole section. Every merged value remembers
the file that set it, so an error can name the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from serverless_sessions.errors import ConfigurationError

__all__ = ["SECTIONS", "Document", "load_documents", "read_document", "validation_problems"]

Key = tuple[str, ...]

SECTIONS: tuple[Key, ...] = (
    ("acb",),
    ("acb", "cache"),
    ("serverless",),
    ("serverless", "storage_config"),
    ("backends",),
    ("backends", "redis"),
    ("backends", "s3"),
    ("backends", "local"),
)
"""Paths this library reads that must hold JSON objects (anything else in a file is left alone)."""

_RECOGNISED = (
    ("acb", "cache"),
    ("serverless",),
    ("storage_backend",),
    ("backends",),
    ("session_ttl_hours",),
    ("cleanup_interval_hours",),
)


def _lookup(data: Any, path: Key) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


@dataclass(frozen=True, slots=True)
class Document:
    """Deep-merged config documents and, for every path in them, the file that set it last."""

    data: dict[str, Any] = field(repr=False)
    owners: dict[Key, Path]

    def get(self, path: Key) -> Any:
        """The value at ``path``, or ``None``."""
        return _lookup(self.data, path)

    def where(self, path: Key) -> str:
        """``file F, field a.b.c`` for messages: the file that set the deepest known prefix.

        A path no file set (a missing section) is blamed on every file read.
        """
        for end in range(len(path), 0, -1):
            owner = self.owners.get(path[:end])
            if owner is not None:
                return f"file {owner}, field {'.'.join(path)}"
        files = ", ".join(str(name) for name in dict.fromkeys(self.owners.values()))
        return f"file {files}, field {'.'.join(path)}"

    def files(self, path: Key) -> list[Path]:
        """Every file that set something at or under ``path``, in order."""
        return list(dict.fromkeys(owner for key, owner in self.owners.items() if key[: len(path)] == path))


def read_document(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a missing, unreadable or malformed file names itself."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"config file {path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigurationError(
            f"config file {path} must hold a JSON object, found {type(document).__name__}"
        )
    for section in SECTIONS:
        value = _lookup(document, section)
        if value is not None and not isinstance(value, dict):
            raise ConfigurationError(
                f"config file {path}, field {'.'.join(section)}: must be an object, "
                f"found {type(value).__name__}"
            )
    if all(_lookup(document, key) is None for key in _RECOGNISED):
        raise ConfigurationError(
            f"config file {path} holds no serverless-sessions settings: expected acb.cache, "
            "serverless (storage_type/storage_config) or storage_backend/backends"
        )
    return document


def _merge(
    into: dict[str, Any], new: dict[str, Any], owners: dict[Key, Path], source: Path, base: Key
) -> None:
    for name, value in new.items():
        path = (*base, name)
        owners[path] = source
        if isinstance(value, dict) and isinstance(into.get(name), dict):
            _merge(into[name], value, owners, source, path)
            continue
        for stale in [key for key in owners if key[: len(path)] == path and key != path]:
            del owners[stale]
        into[name] = _copy(value, owners, source, path)


def _copy(value: Any, owners: dict[Key, Path], source: Path, base: Key) -> Any:
    if not isinstance(value, dict):
        return value
    copied = {}
    for name, item in value.items():
        owners[(*base, name)] = source
        copied[name] = _copy(item, owners, source, (*base, name))
    return copied


def load_documents(paths: Iterable[Path]) -> Document:
    """Read and deep-merge ``paths`` in order (later files win, key by key at every depth)."""
    data: dict[str, Any] = {}
    owners: dict[Key, Path] = {}
    for path in paths:
        _merge(data, read_document(path), owners, path, ())
    return Document(data, owners)


def validation_problems(exc: ValidationError, where: Callable[[Key], str]) -> str:
    """One clause per pydantic error, located by ``where``; input values are never shown.

    Pydantic's own message repeats the input, which may be a password.
    """
    problems = []
    for error in exc.errors():
        # "[key]" marks an error in a dict key (an unknown backend name): the key is the field.
        path = tuple(str(part) for part in error["loc"] if part != "[key]")
        problems.append(f"{where(path)}: {error['msg']}")
    return "; ".join(problems)

"""Config files: turn a JSON file into :class:`~serverless_sessions.settings.StorageSettings` values.

Minimal reader of the new format ``{"acb": {"cache": {"url": ..., "default_ttl": ...}}}``; the
other formats are added beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from serverless_sessions.errors import ConfigurationError

__all__ = ["read_config_file"]


def read_config_file(path: Path) -> dict[str, Any]:
    """Settings values from ``path``; a malformed file raises ConfigurationError naming it."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc}") from exc
    section = document.get("acb", {}).get("cache", {}) if isinstance(document, dict) else None
    if not isinstance(section, dict):
        raise ConfigurationError(f"config file {path}: 'acb.cache' must be an object")
    return dict(section)

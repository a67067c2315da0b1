"""Config files, in any of the three formats, read into settings — and rewritten in the new one.

Formats and how each is read: :mod:`serverless_sessions.config.formats`. Several files are
deep-merged before they are read (:mod:`serverless_sessions.config.documents`). An old format
loads with a :class:`DeprecationWarning` that shows the equivalent new configuration, passwords
masked; :func:`convert_to_new_format` produces that configuration with the secrets kept, for
the user's own file, and :func:`names_legacy_layout` says whether sessions must then be moved.
"""

from __future__ import annotations

import copy
import json
import shlex
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from serverless_sessions.config.documents import load_documents
from serverless_sessions.config.formats import (
    OLD_KEYS,
    FormatLayer,
    interpret,
    s3_keys_dropped,
    to_section,
)
from serverless_sessions.config.layers import Layer, merge_layers
from serverless_sessions.config.urls import mask_url

__all__ = ["convert_to_new_format", "names_legacy_layout", "read_config_files"]

_FORMAT_NAMES = {
    "before": 'plan\'s "before" format (serverless.storage_type / storage_config)',
    "original": "original serverless_config.json format (storage_backend / backends)",
}
_SECRET_KEYS = frozenset({"password", "secret_access_key", "encryption_keys"})
_AWS_KEYS_NOTE = (
    "The AWS keys are not part of the new configuration: the S3 cache reads the standard AWS "
    "credential sources (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, roles)."
)


def _masked(section: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: "***"
        if key in _SECRET_KEYS and value is not None
        else mask_url(value)
        if key in ("url", "legacy_url") and isinstance(value, str)
        else value
        for key, value in section.items()
    }


def _warn_deprecated(found: FormatLayer) -> None:
    new = {"acb": {"cache": _masked(to_section(found.layer.values))}}
    lines = [
        f"config file {', '.join(map(str, found.files))} uses the {_FORMAT_NAMES[found.format]}, "
        "which is deprecated. The equivalent new configuration (in .mcp.json or a file of its "
        "own) is:",
        json.dumps(new, indent=2),
    ]
    if found.legacy is not None:
        old = shlex.quote(str(found.files[-1])) if found.files else "OLD"
        lines.append(
            "Until you switch, sessions are served from the original layout at "
            f"{mask_url(found.legacy.url())}. To switch: serverless-sessions config migrate "
            f"{old} -o NEW.json, then serverless-sessions migrate --from {old} --to NEW.json "
            "(or serverless_sessions.operations.migrate)."
        )
    if s3_keys_dropped(found.legacy):
        lines.append(_AWS_KEYS_NOTE)
    # stacklevel 4: this helper, read_config_files, load_settings, then the caller to blame.
    warnings.warn("\n".join(lines), DeprecationWarning, stacklevel=4)


def read_config_files(paths: Sequence[Path]) -> list[Layer]:
    """Settings layers from ``paths`` (deep-merged, later files winning), lowest first.

    A missing or malformed file, a section that is not an object, an unknown backend or a bad
    value raises :class:`~serverless_sessions.errors.ConfigurationError` naming the file and
    the field. Fields that are not settings at all are refused later, by the settings model,
    with the same naming.
    """
    if not paths:
        return []
    found = interpret(load_documents(paths))
    for item in found:
        if item.format != "new":
            _warn_deprecated(item)
    return [item.layer for item in found]


def _check_loads(path: Path) -> None:
    """Raise the ConfigurationError ``load_settings(path)`` would raise, naming file and field.

    The old formats' own values are checked while they are interpreted; this also checks the
    new-format sections and how the values combine, so no file that would not load is converted.
    """
    # Imported here: settings imports this module.
    from serverless_sessions.config.settings import load_settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the caller is converting it
        load_settings(path)


def convert_to_new_format(path: str | Path) -> dict[str, Any]:
    """The document at ``path`` rewritten in the new format, secrets kept (for the CLI).

    A file that would not load (a port of ``"sixthousand"``, an unknown backend) raises
    :class:`~serverless_sessions.errors.ConfigurationError` naming the file and the field;
    nothing is converted. Keys the old formats own (``serverless``, ``storage_backend``,
    ``backends``, ...) are replaced by ``acb.cache``; anything else in the file (``mcpServers``
    in ``.mcp.json``, other ``acb`` sections) is kept. A document already in the new format
    comes back unchanged. The legacy pointer is left out on purpose: the converted file names
    the new storage, and the sessions still in the original layout must be moved there with
    ``migrate`` (:func:`names_legacy_layout`). AWS keys of an S3 backend have no place in the
    new format; a :class:`UserWarning` says so.
    """
    document = load_documents([Path(path)])
    found = interpret(document)
    _check_loads(Path(path))
    data = copy.deepcopy(document.data)
    if all(item.format == "new" for item in found):
        return data
    section = to_section(merge_layers(item.layer for item in found).values)
    if any(s3_keys_dropped(item.legacy) for item in found):
        warnings.warn(_AWS_KEYS_NOTE, UserWarning, stacklevel=2)
    converted = {key: value for key, value in data.items() if key not in OLD_KEYS}
    converted["acb"] = {**data.get("acb", {}), "cache": section}
    return converted


def names_legacy_layout(path: str | Path) -> bool:
    """Whether the config file at ``path`` reads sessions in the original module's layout.

    Those sessions stay there when the file is converted: ``serverless-sessions migrate --from
    OLD --to NEW`` moves them to the storage the converted file names.
    """
    found = interpret(load_documents([Path(path)]))
    return merge_layers(item.layer for item in found).values.get("legacy_url") is not None

"""Layers of settings and the one rule that merges them.

Sources, lowest precedence first: defaults, config files, environment, explicit arguments. Each
becomes a :class:`Layer` (values by settings field, and where the user wrote each one), and the
layers merge key by key, the higher one winning — with one exception for the connection group
(:data:`~serverless_sessions.config.urls.CONNECTION_FIELDS`): a layer that sets ``url`` or
``legacy_url``, or a ``provider`` other than the one merged so far, names a different storage,
so the connection fields of the layers below it are dropped. Without that, a file's ``host``
would sit next to an environment ``url`` and a Redis ``db`` next to an S3 ``bucket``. A layer
that sets only some parts (typically a password in the environment) completes the storage below.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from serverless_sessions.config.urls import CONNECTION_FIELDS

__all__ = ["Layer", "merge_layers"]


@dataclass(frozen=True, slots=True)
class Layer:
    """Settings values from one source; ``origins`` says where each was written (for errors)."""

    values: dict[str, Any] = field(repr=False)
    origins: dict[str, str]


def _names_another_storage(layer: Layer, merged: dict[str, Any]) -> bool:
    values = layer.values
    if values.get("url") is not None or values.get("legacy_url") is not None:
        return True
    provider = values.get("provider")
    return provider is not None and provider != merged.get("provider")


def merge_layers(layers: Iterable[Layer]) -> Layer:
    """Merge ``layers`` (lowest precedence first) by the rule in the module docstring."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for layer in layers:
        if _names_another_storage(layer, values):
            for name in CONNECTION_FIELDS:
                values.pop(name, None)
                origins.pop(name, None)
        values.update(layer.values)
        origins.update(layer.origins)
    return Layer(values, origins)

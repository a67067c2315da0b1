"""Re-exported names loaded on first access (PEP 562): a package's face without its weight.

A package that re-exports names from its modules would otherwise import them all, and their
libraries, when it is imported; with :func:`lazy_exports` each name is imported when first used
and then kept in the package, so later accesses cost nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(namespace: dict[str, Any], locations: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of the package whose ``globals()`` is ``namespace``.

    ``locations`` maps each re-exported name to the module that defines it.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = locations.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__

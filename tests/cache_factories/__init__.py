"""One module per cache adapter, found by listing this package: adding a module adds the adapter
to the contract suite and to every adapter-parametrised test.

Every module defines ``make_cache(tmp_path, namespace)``: an async context manager yielding a
connected cache of a private store, removed afterwards. A module may also offer:

* ``make_pair(tmp_path)``: two clients over ONE private store (two deployments sharing it);
* ``storage_url(tmp_path)``: a context manager yielding ``(url, environment)`` naming a private
  store that other processes (the CLI, the MCP server, workers) can reach.

Tests that need one of these run on :func:`offering` it; none skips. A factory whose test server
cannot take heavy write contention in reasonable time sets ``SLOW_UNDER_CONTENTION = True`` and
is left out of the multi-process contention test; one whose server answers one request at a time
sets ``SERIAL_SERVER = True``. Contended tests do less work on either
(:func:`few_contended_writes`). ``SS_TEST_ADAPTERS=a,b``
runs the suites on those adapters alone (for the developer of a new adapter; CI never sets it).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from types import ModuleType

__all__ = ["ADAPTERS", "factory", "few_contended_writes", "offering"]

_FOUND = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
ADAPTERS: list[str] = (
    os.environ["SS_TEST_ADAPTERS"].split(",") if os.environ.get("SS_TEST_ADAPTERS") else _FOUND
)


def factory(name: str) -> ModuleType:
    """The factory module of adapter ``name``."""
    return importlib.import_module(f"{__name__}.{name}")


def offering(capability: str) -> list[str]:
    """The adapters of :data:`ADAPTERS` whose factory defines ``capability``."""
    return [name for name in ADAPTERS if hasattr(factory(name), capability)]


def few_contended_writes(name: str) -> bool:
    """Whether contended tests should do less on adapter ``name``'s test server.

    Its factory says its server is slow under contention or answers one request at a time:
    the full counts would take minutes there, and a smaller race still races.
    """
    module = factory(name)
    return bool(getattr(module, "SLOW_UNDER_CONTENTION", False) or getattr(module, "SERIAL_SERVER", False))

"""Helpers for the CLI and MCP tests: the installed console script, run in a subprocess.

Every run gets a clean environment (no ``SERVERLESS_SESSIONS_*`` from the developer's shell,
no colour) plus what the test sets. The ``storage_env`` fixture gives one environment per real
backend, from the adapter's factory in ``tests/cache_factories``: a fresh SQLite file, the shared
Redis under a key prefix of this test only, a fresh bucket, a schema of its own... removed
afterwards.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cache_factories import factory, offering

SCRIPT = Path(sys.executable).with_name("serverless-sessions")
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0?socket_connect_timeout=0.5&retry_attempts=0"


def without_modules(env: dict[str, str], directory: Path, *modules: str) -> dict[str, str]:
    """``env`` for a Python in which ``modules`` are not installed, as on a fresh install.

    A ``sitecustomize`` on ``PYTHONPATH`` sets each to ``None`` in ``sys.modules``, Python's own
    way to make ``import name`` (and ``from name.sub import x``) raise ``ModuleNotFoundError``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["import sys", *(f"sys.modules[{name!r}] = None" for name in modules)]
    (directory / "sitecustomize.py").write_text("\n".join(lines) + "\n")
    return {**env, "PYTHONPATH": str(directory)}


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a test run: no inherited settings, no colour, a private data dir."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SERVERLESS_SESSIONS_")}
    env.update(NO_COLOR="1", XDG_DATA_HOME=str(tmp_path / "xdg-data"), COLUMNS="200")
    env.update(extra)
    return env


@dataclass(frozen=True)
class Run:
    """The outcome of one CLI invocation."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60) -> Run:
    done = subprocess.run(
        [str(SCRIPT), *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )
    return Run(done.returncode, done.stdout, done.stderr)


def ok(*args: str, env: dict[str, str], stdin: str | None = None) -> Any:
    """Run with ``--json`` and return the parsed output, failing the test on a non-zero exit."""
    result = run_cli(*args, "--json", env=env, stdin=stdin)
    assert result.code == 0, f"{args}: exit {result.code}\n{result.stderr}"
    return result.json()


@pytest.fixture(params=offering("storage_url"))
async def storage_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """An environment naming one real backend (fresh and private to this test): every adapter
    whose factory offers a storage URL other processes can reach."""
    async with factory(str(request.param)).storage_url(tmp_path) as (url, extra):
        yield base_env(tmp_path, SERVERLESS_SESSIONS_URL=url, **extra)


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    """An environment naming a fresh SQLite file."""
    return base_env(tmp_path, SERVERLESS_SESSIONS_URL=f"sqlite://{tmp_path / 'sessions.db'}")


def spoil_message(env: dict[str, str], position: int) -> None:
    """Make message ``position`` of the one conversation in ``env``'s SQLite file unreadable."""
    path = env["SERVERLESS_SESSIONS_URL"].removeprefix("sqlite://")
    with closing(sqlite3.connect(path)) as db, db:
        spoiled = db.execute("UPDATE log_items SET item = x'00' WHERE position = ?", (position,))
        assert spoiled.rowcount == 1

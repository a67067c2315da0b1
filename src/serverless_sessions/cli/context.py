"""What every command shares: the global options, the output, and a manager to run against.

Commands are synchronous click callbacks; each runs one coroutine through :meth:`AppContext.run`,
which opens the storage, hands the manager over, and closes both however the coroutine ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import click

from serverless_sessions.cli.output import Output
from serverless_sessions.config.selection import resolve_settings
from serverless_sessions.config.settings import StorageSettings
from serverless_sessions.factory import open_configured_storage
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.storage.base import SessionStorage

__all__ = ["AppContext", "json_option", "pass_app"]

T = TypeVar("T")


@dataclass
class AppContext:
    """Global options of one invocation; created before parsing so errors can honour them."""

    config_file: Path | None = None
    url: str | None = None
    backend: str | None = None
    namespace: str | None = None
    json: bool = False
    debug: bool = False
    _output: Output | None = field(default=None, repr=False)

    @property
    def output(self) -> Output:
        """The output, built on first use (after every ``--json`` flag has been parsed)."""
        if self._output is None:
            self._output = Output(json_mode=self.json)
        return self._output

    def settings(self) -> StorageSettings:
        """Settings from ``--config``, ``--url``/``--backend``, ``--namespace`` and the env."""
        return resolve_settings(
            self.config_file, url=self.url, backend=self.backend, namespace=self.namespace
        )

    def run(self, job: Callable[[ServerlessSessionManager], Awaitable[T]]) -> T:
        """Run ``job`` against a manager over the configured storage, then close both."""
        return self._run(lambda storage, manager: job(manager))

    def run_on_storage(self, job: Callable[[SessionStorage], Awaitable[T]]) -> T:
        """Run ``job`` against the configured storage itself (health, re-encryption)."""
        return self._run(lambda storage, manager: job(storage))

    def _run(self, job: Callable[[SessionStorage, ServerlessSessionManager], Awaitable[T]]) -> T:
        async def main() -> T:
            settings = self.settings()
            storage = open_configured_storage(settings)
            async with storage, ServerlessSessionManager(storage, settings=settings) as manager:
                return await job(storage, manager)

        return asyncio.run(main())


pass_app = click.make_pass_decorator(AppContext)


def _set_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(AppContext).json = True


json_option = click.option(
    "--json",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_set_json,
    help="Machine-readable JSON on stdout (errors as one JSON line on stderr).",
)
"""``--json`` is accepted after the command name too (``get ID --json``), not only before it.

Eager, so it takes effect before the other options and arguments are checked: their usage
errors are then reported as JSON too.
"""

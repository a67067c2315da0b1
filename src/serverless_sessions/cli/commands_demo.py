"""``demo``: the project's main job, shown end to end on the embedded SQLite default.

A session is created here, resumed by a second process (``python -m serverless_sessions get``,
exactly what another serverless instance would do), listed, and then left idle to expire: after
its short idle timeout it is gone from ``get`` (in both processes) and from ``list``, and
``cleanup`` removes what is left. With no storage configured the demo uses a throw-away
database file, so it never touches real data; ``--url``/``--backend``/``--config`` point it at
a real backend instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from serverless_sessions.cli.context import AppContext, json_option, pass_app
from serverless_sessions.cli.exits import CommandFailed, ExitCode
from serverless_sessions.cli.views import human_duration, render_page
from serverless_sessions.config.settings import ENV_PREFIX
from serverless_sessions.manager import ServerlessSessionManager

__all__ = ["demo"]

# While the demo works with the session it lives this long; only then is its timeout cut to
# --ttl, so a slow second process (a loaded machine) can never see it expire too early.
_WORKING_TTL = 600.0

_CONVERSATION = [
    {"role": "user", "content": "Where did we stop on the release checklist?"},
    {"role": "assistant", "content": "Step 3 of 5: changelog done, tagging next."},
]


@dataclass
class _Narrator:
    """Prints each step as it happens (people) and keeps them for the JSON report."""

    app: AppContext
    steps: list[dict[str, Any]] = field(default_factory=list)

    def step(self, title: str, **data: Any) -> None:
        self.steps.append({"step": Text.from_markup(title).plain, **data})
        self.show(lambda console: console.print(f"[bold cyan]{len(self.steps)}.[/] {title}"))

    def show(self, render: Callable[[Console], None]) -> None:
        if not self.app.json:
            render(self.app.output.console)


@dataclass(frozen=True)
class _SecondProcess:
    """Runs the CLI in another interpreter against the same storage settings."""

    app: AppContext
    url: str | None
    namespace: str

    async def get(self, session_id: str) -> tuple[int, int, dict[str, Any] | None]:
        """``(pid, exit code, session or None)`` of ``get SESSION_ID --json`` in a new process."""
        args = [sys.executable, "-m", "serverless_sessions"]
        if self.app.config_file is not None:
            args += ["--config", str(self.app.config_file)]
        env = {**os.environ, f"{ENV_PREFIX}NAMESPACE": self.namespace}
        if self.url is not None:  # via the environment, so a password never shows in `ps`
            env[f"{ENV_PREFIX}URL"] = self.url
        process = await asyncio.create_subprocess_exec(
            *args,
            "get",
            session_id,
            "--json",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        code = process.returncode if process.returncode is not None else -1
        if code not in (ExitCode.OK, ExitCode.NOTHING_DONE):
            raise CommandFailed(f"the second process failed ({code}): {err.decode().strip()}")
        return process.pid, code, json.loads(out) if code == ExitCode.OK else None


@click.command()
@click.option(
    "--ttl",
    "ttl_seconds",
    type=click.FloatRange(0.5, 600),
    default=3.0,
    show_default=True,
    help="Idle seconds after which the demo session expires.",
)
@json_option
@pass_app
def demo(app: AppContext, ttl_seconds: float) -> None:
    """Create a session, resume it from a second process, list it, watch it expire."""
    with tempfile.TemporaryDirectory(prefix="serverless-sessions-demo-") as scratch:
        settings = app.settings()
        if settings.url_value() is None and settings.sqlite_path is None:
            app = replace(app, url=f"sqlite://{Path(scratch).absolute() / 'demo.db'}")
            settings = app.settings()
        narrator = _Narrator(app)
        other = _SecondProcess(app, settings.url_value(), settings.namespace)
        where = settings.masked_url() or "the default SQLite file"
        narrator.show(
            lambda console: console.print(f"Storage: [bold]{where}[/] (namespace {settings.namespace!r})")
        )
        session_id = app.run(lambda manager: _play(manager, narrator, other, ttl_seconds))
    app.output.emit(
        {"session_id": session_id, "storage": where, "steps": narrator.steps},
        lambda console: console.print("[bold green]Demo complete.[/]"),
    )


async def _play(
    manager: ServerlessSessionManager,
    narrator: _Narrator,
    other: _SecondProcess,
    ttl_seconds: float,
) -> str:
    user = f"demo-{secrets.token_hex(3)}"
    session_id = await manager.create_session(
        user,
        "release-planning",
        {"created_by_pid": os.getpid()},
        ttl_hours=_WORKING_TTL / 3600,
        fields={"conversation_history": _CONVERSATION},
    )
    narrator.step(
        f"Created session [cyan]{session_id}[/] for {user} in process {os.getpid()}, "
        f"expiring after {human_duration(_WORKING_TTL)} idle",
        session_id=session_id,
        user_id=user,
        pid=os.getpid(),
        ttl_seconds=_WORKING_TTL,
    )

    pid, _, resumed = await other.get(session_id)
    if resumed is None or resumed.get("conversation_history") != _CONVERSATION:
        raise CommandFailed("the second process could not resume the session")
    last = resumed["conversation_history"][-1]["content"]
    narrator.step(
        f"Resumed it in a second process ({pid}): last message {last!r}",
        pid=pid,
        messages=len(resumed["conversation_history"]),
    )

    page = await manager.list_sessions(user_id=user)
    if [item.session_id for item in page.sessions] != [session_id]:
        raise CommandFailed(f"listing {user}'s sessions did not show {session_id}")
    narrator.step(f"Listed {user}'s sessions", listed=[session_id])
    narrator.show(lambda console: render_page(console, page))

    await manager.touch(session_id, ttl_hours=ttl_seconds / 3600)
    narrator.step(
        f"Left it idle with its idle timeout restarted at {human_duration(ttl_seconds)}",
        ttl_seconds=ttl_seconds,
    )
    await _wait(narrator, ttl_seconds)
    pid, code, after = await other.get(session_id)
    still_here = await manager.get_session(session_id)
    listed = (await manager.list_sessions(user_id=user)).sessions
    if after is not None or still_here is not None or listed:
        raise CommandFailed(f"session {session_id} was still there after its TTL")
    narrator.step(
        f"After {human_duration(ttl_seconds)} it has expired: get exits {code} in process "
        f"{pid}, get and list find nothing here",
        second_process_exit_code=code,
    )

    removed = await manager.cleanup_sessions()
    narrator.step(f"Cleanup removed {removed} expired record(s)", removed=removed)
    return session_id


async def _wait(narrator: _Narrator, ttl_seconds: float) -> None:
    """Sleep just past the TTL, with a countdown bar on a terminal."""
    total = ttl_seconds + 0.2
    with narrator.app.output.progress("Waiting for the session to expire") as update:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while (elapsed := loop.time() - start) < total:
            update(round(elapsed * 10), round(total * 10))
            await asyncio.sleep(min(0.1, total - elapsed))

"""Session commands: create, get, update, delete, list, cleanup — one manager call each."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

from serverless_sessions.cli.context import AppContext, json_option, pass_app
from serverless_sessions.cli.views import human_duration, render_page, render_session
from serverless_sessions.errors import SessionNotFoundError
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.model import SessionState

__all__ = ["cleanup", "create", "delete", "get", "list_sessions", "update"]


def _json_object(text: str, what: str) -> dict[str, Any]:
    """Parse ``text`` (``-`` reads stdin) as a JSON object; anything else is a usage error."""
    if text == "-" and sys.stdin.isatty():
        click.echo(f"Reading {what} as JSON from stdin (end with Ctrl-D)...", err=True)
    raw = sys.stdin.read() if text == "-" else text
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=what) from exc
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=what)
    return value


def _show_session(app: AppContext, state: SessionState, headline: str | None = None) -> None:
    def render(console: Console) -> None:
        if headline:
            console.print(headline)
        render_session(console, state)

    app.output.emit(state.to_dict(), render)



ttl_option = click.option(
    "--ttl-hours", type=click.FloatRange(min=0, min_open=True), help="Idle timeout in hours."
)


@click.command()
@click.argument("user_id")
@click.argument("project_id")
@click.option("--data", default=None, help="Initial fields as a JSON object ('-' reads stdin).")
@ttl_option
@click.option("--id", "session_id", default=None, help="Use this id instead of a random one.")
@json_option
@pass_app
def create(
    app: AppContext,
    user_id: str,
    project_id: str,
    data: str | None,
    ttl_hours: float | None,
    session_id: str | None,
) -> None:
    """Create a session for USER_ID in PROJECT_ID."""
    fields = _json_object(data, "--data") if data is not None else None
    hours = 24 if ttl_hours is None else ttl_hours

    async def job(manager: ServerlessSessionManager) -> SessionState:
        created = await manager.create_session(
            user_id, project_id, fields, ttl_hours=hours, session_id=session_id
        )
        return await manager.require_session(created)

    state = app.run(job)
    _show_session(
        app,
        state,
        f"[green]Created[/] session [cyan]{state.session_id}[/] "
        f"(expires after {human_duration(hours * 3600)} idle)",
    )


@click.command()
@click.argument("session_id")
@json_option
@pass_app
def get(app: AppContext, session_id: str) -> None:
    """Show a session (exit 1 if it does not exist or expired)."""
    _show_session(app, app.run(lambda manager: manager.require_session(session_id)))


@click.command()
@click.argument("session_id")
@click.argument("updates", default="-")
@ttl_option
@json_option
@pass_app
def update(app: AppContext, session_id: str, updates: str, ttl_hours: float | None) -> None:
    """Set fields of a session from a JSON object (UPDATES, or stdin when omitted or '-').

    Without --ttl-hours the session keeps its remaining lifetime.
    """
    changes = _json_object(updates, "UPDATES")

    async def job(manager: ServerlessSessionManager) -> SessionState:
        await manager.update_session(session_id, changes, ttl_hours=ttl_hours)
        return await manager.require_session(session_id)

    state = app.run(job)
    _show_session(app, state, f"[green]Updated[/] {', '.join(sorted(changes)) or 'nothing'}")


@click.command()
@click.argument("session_id")
@json_option
@pass_app
def delete(app: AppContext, session_id: str) -> None:
    """Delete a session (exit 1 if there was none)."""
    if not app.run(lambda manager: manager.delete_session(session_id)):
        raise SessionNotFoundError(session_id)
    app.output.emit(
        {"session_id": session_id, "deleted": True},
        lambda console: console.print(f"[green]Deleted[/] session [cyan]{session_id}[/]"),
    )


@click.command("list")
@click.option("--user", "user_id", default=None, help="Only this user's sessions.")
@click.option("--project", "project_id", default=None, help="Only this project's sessions.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--cursor", default=None, help="Continue after a previous page.")
@json_option
@pass_app
def list_sessions(
    app: AppContext,
    user_id: str | None,
    project_id: str | None,
    limit: int,
    cursor: str | None,
) -> None:
    """List live sessions, newest activity first, one page at a time."""
    page = app.run(
        lambda manager: manager.list_sessions(
            user_id=user_id, project_id=project_id, limit=limit, cursor=cursor
        )
    )
    app.output.emit(page, lambda console: render_page(console, page))


@click.command()
@json_option
@pass_app
def cleanup(app: AppContext) -> None:
    """Remove expired sessions and their index entries."""
    with app.output.progress("Removing expired sessions"):
        removed = app.run(lambda manager: manager.cleanup_sessions())
    app.output.emit(
        {"removed": removed},
        lambda console: console.print(f"[green]Removed[/] {removed} expired session(s)"),
    )

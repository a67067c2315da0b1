"""Session commands: create, get, update, append, touch, delete, list, cleanup — one manager call each.

JSON input (``create --data/--fields``, ``update UPDATES``, ``append MESSAGES``) is given
inline, as ``@FILE``, or as ``-`` for stdin: a large session does not fit on a command line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from serverless_sessions.cli.context import AppContext, json_option, pass_app
from serverless_sessions.cli.views import (
    human_duration,
    human_time,
    render_page,
    render_session,
    render_session_summary,
)
from serverless_sessions.config.selection import default_ttl_hours
from serverless_sessions.conversation import message_page
from serverless_sessions.errors import SessionNotFoundError
from serverless_sessions.listing import expiry_time
from serverless_sessions.manager import ServerlessSessionManager, require_stored
from serverless_sessions.storage.base import StoredSession

__all__ = ["append", "cleanup", "create", "delete", "get", "list_sessions", "touch", "update"]

JSON_INPUT = "JSON|@FILE|-"
F = TypeVar("F", bound=Callable[..., Any])


def _json_value(text: str, what: str) -> Any:
    """Parse ``text`` as JSON: inline, ``@FILE``, or ``-`` for stdin.

    Anything that is not readable JSON is a usage error naming ``what``.
    """
    if text == "-":
        if sys.stdin.isatty():
            click.echo(f"Reading {what} as JSON from stdin (end with Ctrl-D)...", err=True)
        raw = sys.stdin.read()
    elif text.startswith("@"):
        path = Path(text[1:])
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise click.BadParameter(f"cannot read {str(path)!r}: {reason}", param_hint=what) from exc
    else:
        raw = text
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=what) from exc


def _json_object(text: str, what: str) -> dict[str, Any]:
    """Parse ``text`` as :func:`_json_value` does; anything but a JSON object is a usage error."""
    value = _json_value(text, what)
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=what)
    return value


def _show(
    app: AppContext,
    stored: StoredSession,
    headline: str | None = None,
    *,
    whole: bool,
) -> None:
    """The session as JSON, or for people: ``whole`` (shortened) or only its summary.

    The JSON is the stored session plus ``expires_at`` (as ``list`` shows it: ``null`` for
    never), since the expiry lives beside the session in storage, not in it, and where its
    ``conversation_history`` sits in the conversation: ``message_count`` messages in all, the
    first shown at ``history_start``, ``messages_cursor`` for the ones before (``get
    --before``).
    """
    page = message_page(stored)

    def render(console: Console) -> None:
        if headline:
            console.print(headline)
        if whole:
            render_session(console, stored, page)
        else:
            render_session_summary(console, stored)

    app.output.emit(
        {
            **stored.state.to_dict(),
            "expires_at": expiry_time(stored),
            "message_count": page.total,
            "history_start": page.start,
            "messages_cursor": page.next_cursor,
        },
        render,
    )


def ttl_option(help_text: str) -> Callable[[F], F]:
    """``--ttl-hours``, a positive number of hours."""
    return click.option("--ttl-hours", type=click.FloatRange(min=0, min_open=True), help=help_text)


@click.command()
@click.argument("user_id")
@click.argument("project_id")
@click.option(
    "--data",
    default=None,
    metavar=JSON_INPUT,
    help="The session's metadata, a JSON object (the original session_data).",
)
@click.option(
    "--fields",
    default=None,
    metavar=JSON_INPUT,
    help="Other initial fields as a JSON object: conversation_history, permissions, ...",
)
@ttl_option("Idle timeout in hours [default: the configured default_ttl, else 24].")
@click.option("--id", "session_id", default=None, help="Use this id instead of a random one.")
@json_option
@pass_app
def create(
    app: AppContext,
    user_id: str,
    project_id: str,
    data: str | None,
    fields: str | None,
    ttl_hours: float | None,
    session_id: str | None,
) -> None:
    """Create a session for USER_ID in PROJECT_ID.

    --data and --fields take a JSON object inline, from a file (@FILE) or from stdin (-).
    """
    if data == "-" and fields == "-":
        raise click.UsageError("only one of --data and --fields can read stdin")
    metadata = None if data is None else _json_object(data, "--data")
    initial = None if fields is None else _json_object(fields, "--fields")
    hours = default_ttl_hours(app.settings()) if ttl_hours is None else ttl_hours

    async def job(manager: ServerlessSessionManager) -> StoredSession:
        created = await manager.create_session(
            user_id, project_id, metadata, ttl_hours=hours, session_id=session_id, fields=initial
        )
        return await require_stored(manager, created)

    stored = app.run(job)
    idle = "never expires" if hours is None else f"expires after {human_duration(hours * 3600)} idle"
    _show(app, stored, f"[green]Created[/] session [cyan]{stored.state.session_id}[/] ({idle})", whole=False)


@click.command()
@click.argument("session_id")
@click.option(
    "--last",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Only the last N messages of the conversation [default: all].",
)
@click.option(
    "--before",
    default=None,
    metavar="CURSOR",
    help="Only messages before those of an earlier `get` (its messages_cursor).",
)
@json_option
@pass_app
def get(app: AppContext, session_id: str, last: int | None, before: str | None) -> None:
    """Show a session and when it expires (exit 1 if it does not exist or expired).

    Long values are shortened for the terminal; --json prints the session in full. A long
    conversation is read a page at a time: --last N shows its newest N messages, and --before
    with the cursor printed then shows the N before those. Reading a session does not renew
    it: see `touch`.
    """

    async def job(manager: ServerlessSessionManager) -> StoredSession:
        return await require_stored(manager, session_id, history_limit=last, before=before)

    _show(app, app.run(job), whole=True)


@click.command()
@click.argument("session_id")
@click.argument("updates", default="-", metavar=f"[UPDATES: {JSON_INPUT}]")
@ttl_option("New idle timeout in hours [default: the session's own].")
@json_option
@pass_app
def update(app: AppContext, session_id: str, updates: str, ttl_hours: float | None) -> None:
    """Set fields of a session from a JSON object (UPDATES inline, @FILE, or stdin when omitted).

    Every update is activity: it restarts the session's idle timeout (capped by its hard
    deadline, if it has one).
    """
    changes = _json_object(updates, "UPDATES")

    async def job(manager: ServerlessSessionManager) -> StoredSession:
        await manager.update_session(session_id, changes, ttl_hours=ttl_hours)
        return await require_stored(manager, session_id)

    stored = app.run(job)
    _show(app, stored, f"[green]Updated[/] {', '.join(sorted(changes)) or 'nothing'}", whole=False)


@click.command()
@click.argument("session_id")
@click.argument("messages", default="-", metavar=f"[MESSAGES: {JSON_INPUT}]")
@ttl_option("New idle timeout in hours [default: the session's own].")
@json_option
@pass_app
def append(app: AppContext, session_id: str, messages: str, ttl_hours: float | None) -> None:
    """Add messages at the end of a session's conversation (MESSAGES inline, @FILE, or stdin).

    A JSON array is a list of messages, added in order; any other JSON value is one message
    (wrap a message that is itself an array: [[...]]). All of them are added or none; only
    they are written, however long the conversation. Prints the new number of messages.
    Every append is activity: it restarts the session's idle timeout.
    """
    value = _json_value(messages, "MESSAGES")
    batch = value if isinstance(value, list) else [value]

    async def job(manager: ServerlessSessionManager) -> tuple[int, StoredSession]:
        count = await manager.append_messages(session_id, batch, ttl_hours=ttl_hours)
        return count, await require_stored(manager, session_id, history_limit=0)

    count, stored = app.run(job)
    expires = expiry_time(stored)
    app.output.emit(
        {"session_id": session_id, "message_count": count, "expires_at": expires},
        lambda console: console.print(
            f"[green]Appended[/] {len(batch)} message(s) to session [cyan]{session_id}[/]: "
            f"{count} message(s) now; expires {human_time(expires)}"
        ),
    )


@click.command()
@click.argument("session_id")
@ttl_option("New idle timeout in hours [default: the session's own].")
@json_option
@pass_app
def touch(app: AppContext, session_id: str, ttl_hours: float | None) -> None:
    """Mark a session active now, restarting its idle timeout (exit 1 if it does not exist).

    A hard deadline (max_lifetime), if the session has one, still caps the new expiry.
    """

    async def job(manager: ServerlessSessionManager) -> StoredSession:
        await manager.touch(session_id, ttl_hours=ttl_hours)
        # What is printed is the activity and the expiry: the head has both, the messages neither.
        return await require_stored(manager, session_id, history_limit=0)

    stored = app.run(job)
    expires = expiry_time(stored)
    app.output.emit(
        {
            "session_id": session_id,
            "last_activity": stored.state.last_activity,
            "idle_ttl_seconds": stored.state.idle_ttl_seconds,
            "expires_at": expires,
        },
        lambda console: console.print(
            f"[green]Touched[/] session [cyan]{session_id}[/]: expires {human_time(expires)}"
        ),
    )


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
    """List live sessions, newest activity first, one page at a time.

    Without --user or --project this reads every session in the storage to sort them, which
    takes seconds on a large store; filter by user or project where you can.
    """
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

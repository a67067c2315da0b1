"""``erase --user U``: delete every session of one user (the right to be forgotten).

Erasing cannot be undone, so on a terminal the command first counts the user's sessions and
asks; ``--yes`` skips the question, and a non-interactive run (a script, a pipe, ``--json``)
never asks: it erases, as every other command acts without prompting there.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape

from serverless_sessions.cli.context import AppContext, json_option, pass_app
from serverless_sessions.cli.exits import CommandFailed
from serverless_sessions.manager import UserErasure

__all__ = ["erase"]


@click.command()
@click.option("--user", "user_id", required=True, help="The user whose sessions are erased.")
@click.option("--dry-run", is_flag=True, help="Only count and list the user's sessions.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation on a terminal.")
@json_option
@pass_app
def erase(app: AppContext, user_id: str, dry_run: bool, yes: bool) -> None:
    """Delete every session of a user, leaving no index entry of it behind.

    Expired sessions are purged too (the whole storage's, as `cleanup` does), so nothing of
    the user remains. Exit 0 when done (also when the user had no sessions), 1 if the
    confirmation is declined.
    """
    if not dry_run and not yes and not app.json and sys.stdin.isatty():
        found = app.run(lambda manager: manager.erase_user(user_id, dry_run=True))
        if found.count and not click.confirm(
            f"Erase {found.count} session(s) of user {user_id!r}? This cannot be undone", err=True
        ):
            raise CommandFailed("nothing erased")
    result = app.run(lambda manager: manager.erase_user(user_id, dry_run=dry_run))
    app.output.emit(result, lambda console: _render(console, result))


def _render(console: Console, result: UserErasure) -> None:
    user = escape(repr(result.user_id))
    if result.dry_run:
        console.print(f"[yellow]Dry run:[/] would erase {result.count} session(s) of user {user}")
        for session_id in result.session_ids:
            console.print(f"  [cyan]{session_id}[/]")
    else:
        console.print(f"[green]Erased[/] {result.count} session(s) of user {user}")

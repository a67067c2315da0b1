"""rich renderings of sessions, pages and reports, shared by every command that shows them.

A session can be megabytes of text, so the human view never prints it all: ``create``,
``update`` and ``touch`` show a summary (identity, expiry, section sizes), and ``get`` shortens
long strings, long lists and deep nesting, saying so; ``--json`` always has everything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.json import JSON
from rich.markup import escape
from rich.table import Table

from serverless_sessions.conversation import MessagePage
from serverless_sessions.listing import SessionPage, expiry_time
from serverless_sessions.model import utc_now
from serverless_sessions.storage.base import StoredSession

__all__ = [
    "human_duration",
    "human_size",
    "human_time",
    "render_mapping",
    "render_page",
    "render_session",
    "render_session_summary",
]

_SECTIONS = (
    "conversation_history",
    "permissions",
    "reflection_data",
    "app_monitoring_state",
    "llm_provider_configs",
    "metadata",
)
# What `get` shows of one value before shortening it (--json shows everything).
_MAX_TEXT = 2000
_MAX_ITEMS = 100
_MAX_DEPTH = 16


def human_duration(seconds: float) -> str:
    """``3d 4h``, ``5m 10s``, ``2.5s``: the two largest units, enough to read at a glance."""
    if seconds < 10:
        return f"{max(seconds, 0):.1f}s"
    counts: list[tuple[int, str]] = []
    remaining = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count or counts:
            counts.append((count, unit))
    return " ".join(f"{count}{unit}" for count, unit in counts[:2] if count)


def human_size(size: float) -> str:
    """``512 B``, ``4.2 KiB``, ``1.0 MiB``."""
    if size < 1024:
        return f"{size:.0f} B"
    if size < 1024**2:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024**2:.1f} MiB"


def human_time(moment: datetime | None) -> str:
    """``2025-01-02 03:04:05 UTC (in 5m 10s)``, or ``never``."""
    if moment is None:
        return "never"
    delta = (moment - utc_now()).total_seconds()
    direction = f"in {human_duration(delta)}" if delta >= 0 else f"{human_duration(-delta)} ago"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({direction})"


def render_mapping(console: Console, title: str, data: Mapping[str, Any]) -> None:
    """A two-column table of ``data`` (nested values shown as JSON)."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in data.items():
        table.add_row(escape(str(key)), escape(_scalar(value)))
    console.print(table)


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _identity(console: Console, stored: StoredSession) -> None:
    state = stored.state
    idle = state.idle_ttl_seconds
    render_mapping(
        console,
        f"Session {state.session_id}",
        {
            "user": state.user_id,
            "project": state.project_id,
            "created": human_time(state.created_at),
            "last activity": human_time(state.last_activity),
            "idle timeout": "none" if idle is None else human_duration(idle),
            "expires": human_time(expiry_time(stored)),
            "hard deadline": human_time(state.absolute_expires_at),
            "revision": state.revision,
            "stored size": human_size(stored.size),
        },
    )


def render_session_summary(console: Console, stored: StoredSession) -> None:
    """Identity, expiry and the size of each non-empty section, never the contents."""
    _identity(console, stored)
    for name in _SECTIONS:
        value = getattr(stored.state, name)
        if value:
            kind = "key" if isinstance(value, dict) else "item"
            size = len(json.dumps(value, ensure_ascii=False).encode())
            console.print(f"[bold]{name}[/]: {len(value)} {kind}(s), {human_size(size)}")


def render_session(console: Console, stored: StoredSession, page: MessagePage) -> None:
    """Identity and expiry as a table, then each non-empty section as (shortened) JSON.

    ``page`` says where the messages shown sit in the conversation, and how to read older ones.
    """
    _identity(console, stored)
    shortener = _Shortener()
    for name in _SECTIONS:
        value = getattr(stored.state, name)
        if name == "conversation_history" and len(value) != page.total:
            console.print(f"[bold]{name}[/]: {_window(page)}")
        elif value:
            console.print(f"[bold]{name}[/]")
        if value:
            console.print(JSON.from_data(shortener.shorten(value, 0)))
    if page.next_cursor:
        console.print(f"older messages: --before {page.next_cursor}")
    if shortener.shortened:
        console.print("[yellow]Long values were shortened; --json shows the session in full.[/]")


def _window(page: MessagePage) -> str:
    """Which messages of the conversation a page holds (positions from 0, as ``--json`` has them)."""
    if not page.messages:
        return f"none of its {page.total} message(s) shown"
    return f"messages {page.start} to {page.start + len(page.messages) - 1} of {page.total}"


@dataclass
class _Shortener:
    """Cuts strings, lists, objects and nesting to what a terminal can usefully show."""

    shortened: bool = False

    def shorten(self, value: Any, depth: int) -> Any:
        if isinstance(value, str) and len(value) > _MAX_TEXT:
            self.shortened = True
            return f"{value[:_MAX_TEXT]}… ({len(value) - _MAX_TEXT} more characters)"
        if not isinstance(value, dict | list) or not value:
            return value
        if depth >= _MAX_DEPTH:
            self.shortened = True
            return "{…}" if isinstance(value, dict) else "[…]"
        more = len(value) - _MAX_ITEMS
        self.shortened = self.shortened or more > 0
        if isinstance(value, list):
            items = [self.shorten(item, depth + 1) for item in value[:_MAX_ITEMS]]
            return items + ([f"… ({more} more items)"] if more > 0 else [])
        pairs = list(value.items())[:_MAX_ITEMS]
        shown = {self.shorten(key, depth): self.shorten(item, depth + 1) for key, item in pairs}
        return shown | ({"…": f"{more} more keys"} if more > 0 else {})


def render_page(console: Console, page: SessionPage) -> None:
    """One page of a listing as a table, with the cursor for the next page."""
    if not page.sessions:
        console.print("No sessions.")
    else:
        table = Table(
            title=f"{len(page.sessions)} session(s), newest first",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        table.add_column("session", style="cyan", no_wrap=True)
        table.add_column("user")
        table.add_column("project")
        table.add_column("last active", justify="right")
        table.add_column("expires", justify="right")
        table.add_column("size", justify="right")
        now = utc_now()
        for item in page.sessions:
            expires = (
                "never"
                if item.expires_at is None
                else f"in {human_duration((item.expires_at - now).total_seconds())}"
            )
            table.add_row(
                item.session_id,
                escape(item.user_id),
                escape(item.project_id),
                f"{human_duration((now - item.last_activity).total_seconds())} ago",
                expires,
                human_size(item.size_bytes),
            )
        console.print(table)
    if page.unreadable:
        console.print(f"[yellow]unreadable:[/] {', '.join(page.unreadable)}")
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")

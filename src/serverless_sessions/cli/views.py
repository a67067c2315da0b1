"""rich renderings of sessions, pages and reports, shared by every command that shows them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.json import JSON
from rich.markup import escape
from rich.table import Table

from serverless_sessions.model import SessionState, utc_now
from serverless_sessions.pages import SessionPage

__all__ = [
    "human_duration",
    "human_size",
    "render_mapping",
    "render_page",
    "render_session",
]

_SECTIONS = (
    "conversation_history",
    "permissions",
    "reflection_data",
    "app_monitoring_state",
    "llm_provider_configs",
    "metadata",
)


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


def _when(moment: datetime | None) -> str:
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


def render_session(console: Console, state: SessionState) -> None:
    """Identity and timestamps as a table, then each non-empty section as JSON."""
    render_mapping(
        console,
        f"Session {state.session_id}",
        {
            "user": state.user_id,
            "project": state.project_id,
            "created": _when(state.created_at),
            "last activity": _when(state.last_activity),
            "hard deadline": _when(state.absolute_expires_at),
            "revision": state.revision,
        },
    )
    for name in _SECTIONS:
        value = getattr(state, name)
        if value:
            console.print(f"[bold]{name}[/]")
            console.print(JSON.from_data(value))


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

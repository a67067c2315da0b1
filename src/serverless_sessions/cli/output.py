"""All of the CLI's output: results (JSON or rich), errors, notes and progress.

Results go to stdout, everything else (errors, notes, progress) to stderr, so ``--json`` output
can be piped whatever happens. rich drops colour by itself when stdout is not a terminal or
``NO_COLOR`` is set; progress bars are shown only on a terminal and never with ``--json``.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["Output", "ProgressFn", "jsonable"]

_PIPE_WIDTH = 120

ProgressFn = Callable[[int, int | None], None]
"""``update(done, total)``: how far a long job is (``total=None`` while unknown)."""


def jsonable(data: Any) -> Any:
    """``data`` as plain JSON values (pydantic models, dataclasses, datetimes included)."""
    return to_jsonable_python(data)


class Output:
    """Where one invocation writes; ``json_mode`` switches every result to JSON."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json = json_mode
        self.console = Console(highlight=False)
        if not self.console.is_terminal and "COLUMNS" not in os.environ:
            self.console.width = _PIPE_WIDTH  # a pipe or file has no width; don't squeeze tables
        self.stderr = Console(stderr=True, highlight=False, soft_wrap=True)

    def emit(self, data: Any, render: Callable[[Console], None]) -> None:
        """Print a command's result: ``data`` as JSON, or ``render`` it for people."""
        if self.json:
            print(json.dumps(jsonable(data), indent=2, ensure_ascii=False), flush=True)
        else:
            render(self.console)

    def note(self, text: str) -> None:
        """A side remark for people (stderr; silent with ``--json``). ``text`` is rich markup."""
        if not self.json:
            self.stderr.print(text)

    def warning(self, message: str) -> None:
        """A warning on stderr (a JSON line with ``--json``)."""
        if self.json:
            print(json.dumps({"warning": message}), file=self.stderr.file, flush=True)
        else:
            self.stderr.print(f"[yellow]warning:[/] {escape(message)}")

    def error(self, error: BaseException, exit_code: int, *, debug: bool) -> None:
        """One line saying what went wrong; the traceback first if ``debug``.

        A usage error names the command's ``--help`` instead of printing click's usage block,
        so scripts reading stderr still get one line.
        """
        if debug:
            self.stderr.print(escape("".join(traceback.format_exception(error))), end="")
        message = error.format_message() if isinstance(error, click.ClickException) else str(error)
        if self.json:
            line = {"error": {"type": type(error).__name__, "message": message}}
            print(json.dumps({**line, "exit_code": exit_code}), file=self.stderr.file, flush=True)
            return
        if isinstance(error, click.UsageError) and error.ctx is not None:
            message = f"{message.rstrip('.')} (see '{error.ctx.command_path} --help')"
        self.stderr.print(f"[bold red]error:[/] {escape(message)}")

    @contextmanager
    def progress(self, description: str) -> Iterator[ProgressFn]:
        """A progress bar (a spinner while the total is unknown) fed by the yielded function."""
        if self.json or not self.stderr.is_terminal:
            yield lambda done, total: None
            return
        columns = (
            SpinnerColumn(),
            TextColumn(escape(description)),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.stderr, transient=True) as bar:
            task = bar.add_task(description, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)

"""``config show`` (the effective settings, secrets masked) and ``config migrate`` (old → new)."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.json import JSON
from rich.markup import escape

from serverless_sessions.backends import backend_of
from serverless_sessions.cli.context import AppContext, json_option, pass_app
from serverless_sessions.cli.views import render_mapping
from serverless_sessions.config.settings import load_settings, mask_url
from serverless_sessions.errors import ConfigurationError

__all__ = ["config"]

# Keys whose values are secrets in any of the config formats (password, secret_access_key,
# encryption_keys, token ...); URLs elsewhere are masked by mask_url.
_SECRET_KEY = re.compile(r"pass|secret|token|encryption_keys|credential", re.IGNORECASE)


def masked(document: Any) -> Any:
    """``document`` with every secret value replaced by ``***``, for showing on a screen."""
    if isinstance(document, dict):
        return {
            key: "***" if _SECRET_KEY.search(str(key)) and value else masked(value)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [masked(item) for item in document]
    if isinstance(document, str) and "://" in document:
        return mask_url(document)
    return document


@click.group()
def config() -> None:
    """Show or convert configuration."""


@config.command("show")
@json_option
@pass_app
def show(app: AppContext) -> None:
    """The effective settings (file, environment, options), secrets masked."""
    settings = app.settings()
    data = {
        "config_file": None if app.config_file is None else str(app.config_file),
        "backend": backend_of(settings.url_value()),
        **settings.public_dict(),
    }
    app.output.emit(data, lambda console: render_mapping(console, "Settings", data))


def _migrate_command(old: Path, new: Path) -> str:
    """The command that moves the sessions ``old`` reads to the storage ``new`` names.

    It names the two files, not URLs: the passwords stay in them, never on a command line.
    """
    return f"serverless-sessions migrate --from {shlex.quote(str(old))} --to {shlex.quote(str(new))}"


@config.command("migrate")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the converted file here (mode 600); without it, show it with secrets masked.",
)
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@json_option
@pass_app
def migrate_config(app: AppContext, old: Path, output: Path | None, force: bool) -> None:
    """Convert a config file in an old format (original, plan before/after) to the new one.

    OLD is checked first: a file that would not load is an error (exit 2), nothing written.
    When OLD reads sessions in the original layout, the command that moves them to the
    converted file's storage is shown (the sessions stay readable through OLD until then).
    """
    from serverless_sessions.config.files import convert_to_new_format, names_legacy_layout

    document = convert_to_new_format(old)
    legacy = names_legacy_layout(old)
    if output is None:
        shown = masked(document)
        app.output.emit(shown, lambda console: console.print(JSON.from_data(shown)))
        app.output.note("[dim]secrets masked; use -o FILE to write the full converted file[/]")
        if legacy:
            app.output.note(f"then move the sessions: {escape(_migrate_command(old, Path('FILE')))}")
        return
    if output.exists() and output.resolve() == old.resolve():
        raise click.UsageError(f"{output} is the file being converted; keep it to migrate from")
    if output.exists() and not force:
        raise click.UsageError(f"{output} exists; add --force to overwrite it")
    _write_checked(output, json.dumps(document, indent=2) + "\n")
    command = _migrate_command(old, output) if legacy else None
    result = {"source": str(old), "written": str(output), "next_command": command}

    def render(console: Console) -> None:
        console.print(f"[green]Converted[/] {escape(str(old))} → {escape(str(output))}")
        if command is None:
            console.print(f"{escape(str(old))} names no sessions in the original layout: nothing to move.")
            return
        console.print(
            f"Sessions are still in the original layout {escape(str(old))} reads. With writers "
            "stopped, move them to the new storage (add --dry-run to preview):"
        )
        console.print(f"  {escape(command)}", soft_wrap=True)

    app.output.emit(result, render)


def _write_checked(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, once it loads as valid settings.

    The file may hold passwords. It is written beside ``path`` first and renamed into place,
    so a failure leaves neither a partial file nor one that would not load.
    """
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        load_settings(partial)  # prove the converted file reads back as valid settings
        os.replace(partial, path)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        partial.unlink(missing_ok=True)

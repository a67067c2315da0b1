"""``config show`` (the effective settings, secrets masked) and ``config migrate`` (old → new)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import click
from rich.json import JSON

from serverless_sessions.cli.backends import backend_of
from serverless_sessions.cli.context import AppContext, json_option, pass_app
from serverless_sessions.cli.views import render_mapping
from serverless_sessions.errors import ConfigurationError
from serverless_sessions.settings import load_settings, mask_url

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
    """Convert a config file in an old format (original, plan before/after) to the new one."""
    from serverless_sessions.config_files import convert_to_new_format

    document = convert_to_new_format(old)
    if output is None:
        shown = masked(document)
        app.output.emit(shown, lambda console: console.print(JSON.from_data(shown)))
        app.output.note("[dim]secrets masked; use -o FILE to write the full converted file[/]")
        return
    if output.exists() and not force:
        raise click.UsageError(f"{output} exists; add --force to overwrite it")
    _write_private(output, json.dumps(document, indent=2) + "\n")
    load_settings(output)  # prove the converted file reads back as valid settings
    result = {"source": str(old), "written": str(output)}
    app.output.emit(result, lambda console: console.print(f"[green]Converted[/] {old} → {output}"))


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only: the file may hold passwords."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc}") from exc

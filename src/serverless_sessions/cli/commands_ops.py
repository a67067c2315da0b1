"""Operator commands: stats, health, migrate, reencrypt, serve.

The long-running ones (migrate, reencrypt) are the library's resumable functions with a progress
bar attached; the CLI adds nothing to their logic. What costs import time (re-encryption and its
cryptography, the MCP SDK, matplotlib) is imported inside the command that needs it, so the
other commands start fast.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from serverless_sessions.cli.charts import render_stats, write_png
from serverless_sessions.cli.context import AppContext, json_option, pass_app
from serverless_sessions.cli.exits import CommandFailed
from serverless_sessions.cli.output import jsonable
from serverless_sessions.cli.stats import SessionStats
from serverless_sessions.cli.views import render_mapping
from serverless_sessions.errors import (
    ConfigurationError,
    MigrationError,
    MissingDependencyError,
    StorageUnavailableError,
)
from serverless_sessions.factory import open_storage
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.operations.migration import MigrationProgress, MigrationReport
from serverless_sessions.operations.migration import migrate as migrate_sessions
from serverless_sessions.storage.base import SessionStorage
from serverless_sessions.storage.cache_storage import ACBCacheStorage
from serverless_sessions.ttl import now

__all__ = ["health", "migrate", "reencrypt", "serve", "stats"]

checkpoint_option = click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Progress file: an interrupted run started again with it resumes where it stopped.",
)


def _plot_target(ctx: click.Context, param: click.Parameter, path: Path | None) -> Path | None:
    """Refuse a PNG path that cannot be written before reading every session, not after."""
    if path is not None and not path.parent.is_dir():
        raise click.BadParameter(f"cannot write {str(path)!r}: {str(path.parent)!r} is not a directory")
    return path


@click.command()
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    callback=_plot_target,
    default=None,
    help="Also write the distributions as a PNG (needs the 'plot' extra).",
)
@json_option
@pass_app
def stats(app: AppContext, plot: Path | None) -> None:
    """Counts, and the distributions of session sizes and remaining TTLs.

    Sessions that cannot be decoded (corrupt, or encrypted under a key not configured) are
    counted as unreadable, as `list` reports them, rather than stopping the count.
    """

    async def job(manager: ServerlessSessionManager) -> tuple[SessionStats, dict[str, Any]]:
        collected = SessionStats(now=now())
        with app.output.progress("Reading sessions") as update:
            async for stored in manager.iter_sessions(unreadable=collected.unreadable):
                collected.add(stored)
                update(collected.total, None)
        return collected, manager.storage.describe()

    collected, backend = app.run(job)
    if plot is not None:
        try:
            write_png(collected, plot)
        except OSError as exc:
            raise click.BadParameter(
                f"cannot write {str(plot)!r}: {exc.strerror or exc}", param_hint="'--plot'"
            ) from exc

    def render(console: Console) -> None:
        render_stats(console, collected, backend)
        if plot is not None:
            console.print(f"Plot written to {plot}")

    app.output.emit({**backend, **collected.summary(), "plot": plot}, render)


@click.command()
@json_option
@pass_app
def health(app: AppContext) -> None:
    """Check that the storage answers (exit 3 if it does not)."""
    report = app.run_on_storage(lambda storage: storage.health())
    app.output.emit(report, lambda console: render_mapping(console, "Storage health", report))
    if not report.get("available"):
        reason = report.get("error") or "it did not answer"
        raise StorageUnavailableError(f"{report.get('backend')} storage is unavailable: {reason}")


def _finish(app: AppContext, title: str, report: Any, failed: dict[str, str]) -> None:
    """Show a long job's report; exit 1 if some sessions could not be processed."""
    data = jsonable(report)
    app.output.emit(data, lambda console: render_mapping(console, title, data))
    if failed:
        raise CommandFailed(f"{len(failed)} session(s) failed; see 'failed' in the report")


@click.command()
@click.option("--from", "source_url", required=True, help="Storage URL to copy sessions from.")
@click.option("--to", "destination_url", required=True, help="Storage URL to copy them to.")
@click.option("--dry-run", is_flag=True, help="Report what would be copied; write nothing.")
@checkpoint_option
@json_option
@pass_app
def migrate(
    app: AppContext,
    source_url: str,
    destination_url: str,
    dry_run: bool,
    checkpoint: Path | None,
) -> None:
    """Copy every live session, with its remaining TTL, from one storage to another."""
    title = "Migration" + (" (dry run)" if dry_run else "")

    async def job() -> MigrationReport:
        async with open_storage(source_url) as source, open_storage(destination_url) as target:
            with app.output.progress("Migrating sessions") as update:

                def report_progress(step: MigrationProgress) -> None:
                    update(step.done, step.total)

                return await migrate_sessions(
                    source, target, dry_run=dry_run, checkpoint=checkpoint, progress=report_progress
                )

    try:
        report = asyncio.run(job())
    except MigrationError as exc:
        if exc.report is not None:  # show how far it got before the one-line error
            _finish(app, title, exc.report, {})
        raise
    _finish(app, title, report, {**report.failed, **{m.session_id: m.reason for m in report.mismatches}})


@click.command()
@checkpoint_option
@json_option
@pass_app
def reencrypt(app: AppContext, checkpoint: Path | None) -> None:
    """Rewrite every session under the newest encryption key (then old keys can go)."""
    from serverless_sessions.operations.reencryption import ReencryptReport
    from serverless_sessions.operations.reencryption import reencrypt as reencrypt_sessions

    async def job(storage: SessionStorage) -> ReencryptReport:
        if not isinstance(storage, ACBCacheStorage):
            raise ConfigurationError(
                f"re-encryption needs the cache storage, not the legacy {storage.backend!r} "
                "layout: run `serverless-sessions migrate` first"
            )
        with app.output.progress("Re-encrypting sessions") as update:
            return await reencrypt_sessions(storage, checkpoint=checkpoint, progress=update)

    report = app.run_on_storage(job)
    _finish(app, "Re-encryption", report, report.failed)


@click.command()
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio for a local MCP client; http for streamable HTTP on --host/--port.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP bind address.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--tokens-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SERVERLESS_SESSIONS_MCP_TOKENS_FILE",
    show_envvar=True,
    help='HTTP: accepted bearer tokens, JSON {"<token>": {"principal": "alice", "admin": false}}.',
)
@click.option(
    "--token-verifier",
    metavar="MODULE:FACTORY",
    envvar="SERVERLESS_SESSIONS_MCP_TOKEN_VERIFIER",
    show_envvar=True,
    help="HTTP: check tokens with the TokenVerifier FACTORY() returns (OAuth introspection, JWT).",
)
@click.option(
    "--issuer-url",
    envvar="SERVERLESS_SESSIONS_MCP_ISSUER_URL",
    show_envvar=True,
    help="HTTP: the authorization server issuing the tokens, for clients that discover it.",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="HTTP without authentication, on a loopback host only: every caller sees every session.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME[:PORT]",
    help="HTTP: also accept this Host header (the name a proxy forwards); repeatable.",
)
@click.option("--public-url", help="HTTP: the endpoint URL clients use, behind a proxy.")
@click.option(
    "--allow-configure",
    is_flag=True,
    help="Enable configure_serverless_storage (over HTTP: admin principals only).",
)
@pass_app
def serve(
    app: AppContext,
    transport: str,
    host: str,
    port: int,
    tokens_file: Path | None,
    token_verifier: str | None,
    issuer_url: str | None,
    insecure_no_auth: bool,
    allowed_hosts: tuple[str, ...],
    public_url: str | None,
    allow_configure: bool,
) -> None:
    """Run the MCP server: the original session tools, with the same names, plus newer ones.

    Over HTTP each request needs a bearer token, and each token's principal sees only its own
    sessions; cleanup is for admin principals. Host headers other than the server's own
    names are refused (DNS-rebinding protection).
    """
    if transport == "stdio":
        _refuse_http_options(click.get_current_context())
    settings = app.settings()
    with MissingDependencyError.on_import(feature="serve", extra="mcp"):
        from serverless_sessions.mcp_server import HttpOptions, run
        from serverless_sessions.mcp_server.verifiers import configured_auth
    http = None
    if transport == "http":
        http = HttpOptions(
            host=host,
            port=port,
            auth=configured_auth(tokens_file=tokens_file, verifier=token_verifier, issuer_url=issuer_url),
            insecure_no_auth=insecure_no_auth,
            allowed_hosts=allowed_hosts,
            public_url=public_url,
        )
    run(settings, http=http, allow_configure=allow_configure)


_HTTP_ONLY = frozenset(
    {"tokens_file", "token_verifier", "issuer_url", "insecure_no_auth", "allowed_hosts", "public_url"}
)


def _refuse_http_options(ctx: click.Context) -> None:
    """An HTTP option typed for stdio is a mistake; from the environment it is just unused."""
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name or "")
        if param.name in _HTTP_ONLY and source is click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(f"{param.opts[0]} applies to --transport http only")

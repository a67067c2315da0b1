"""The root command group, its global options, and the one place errors become exit codes."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import click

from serverless_sessions.backends import BACKENDS
from serverless_sessions.cli.commands_config import config
from serverless_sessions.cli.commands_demo import demo
from serverless_sessions.cli.commands_erase import erase
from serverless_sessions.cli.commands_ops import health, migrate, reencrypt, serve, stats
from serverless_sessions.cli.commands_sessions import (
    append,
    cleanup,
    create,
    delete,
    get,
    list_sessions,
    touch,
    update,
)
from serverless_sessions.cli.context import AppContext, json_option
from serverless_sessions.cli.exits import CommandFailed, ExitCode, exit_code_for, exit_codes_help
from serverless_sessions.errors import SessionError

__all__ = ["cli", "run"]

PROG = "serverless-sessions"


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=exit_codes_help())
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Settings file (any supported format); the environment overrides it.",
)
@click.option("--url", help="Storage URL, e.g. sqlite:///path.db or redis://host:6379/0.")
@click.option(
    "--backend",
    type=click.Choice(["local", *BACKENDS]),
    help="Storage by name: the configured URL of that kind, or its default.",
)
@click.option("--namespace", help="Key namespace (default: 'session').")
@json_option
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="serverless-sessions", prog_name=PROG)
@click.pass_obj
def cli(
    app: AppContext,
    config_file: Path | None,
    url: str | None,
    backend: str | None,
    namespace: str | None,
    debug: bool,
) -> None:
    """Operate serverless session storage: sessions, health, stats, migration, MCP server.

    With nothing configured, sessions live in an embedded SQLite file (no server needed).
    """
    app.config_file, app.url, app.backend, app.namespace = config_file, url, backend, namespace
    app.debug = debug


for command in (
    create,
    get,
    update,
    append,
    touch,
    delete,
    list_sessions,
    cleanup,
    erase,
    stats,
    health,
    config,
    migrate,
    reencrypt,
    serve,
    demo,
):
    cli.add_command(command)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every failure is reported as one line on stderr and an exit code.

    The library's own warnings (a deprecated config format, AWS keys a conversion dropped) are
    shown once each after the command, as notes rather than Python warning dumps.
    """
    app = AppContext()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        warnings.filterwarnings("always", module=r"serverless_sessions(\.|$)")
        code = _invoke(app, argv)
    for message in dict.fromkeys(str(warning.message) for warning in caught):
        app.output.warning(message)
    return code


def _invoke(app: AppContext, argv: Sequence[str] | None) -> int:
    try:
        returned = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name=PROG,
            standalone_mode=False,
            obj=app,
        )
    except click.exceptions.NoArgsIsHelpError as exc:
        if not app.json:
            exc.show()  # a bare group (`serverless-sessions`, `config`) asked for its help
            return exc.exit_code
        return _fail(app, exc, exc.exit_code)
    except click.ClickException as exc:
        return _fail(app, exc, exc.exit_code)
    except click.Abort:
        return _fail(app, KeyboardInterrupt("interrupted"), ExitCode.INTERRUPTED)
    except SessionError as exc:
        return _fail(app, exc, exit_code_for(exc))
    except CommandFailed as exc:
        return _fail(app, exc, exc.exit_code)
    except Exception as exc:  # a bug: one line unless --debug, but never silent
        return _fail(app, exc, ExitCode.INTERNAL)
    # With standalone_mode=False click returns the code of --help/--version exits, else None.
    return returned if isinstance(returned, int) else ExitCode.OK


def _fail(app: AppContext, error: BaseException, code: int) -> int:
    app.output.error(error, code, debug=app.debug)
    return code

"""The installed ``serverless-sessions`` script, run in subprocesses on SQLite and on Redis."""

from __future__ import annotations

import json
import os
import pty
import re
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from serverless_sessions.cli.exits import MEANINGS, ExitCode, exit_code_for
from serverless_sessions.errors import ClosedError, SessionError
from serverless_sessions.operations import migration
from tests.cli_helpers import (
    SCRIPT,
    UNREACHABLE_REDIS,
    base_env,
    ok,
    run_cli,
    sqlite_env,
    storage_env,
    without_modules,
)

__all__ = ["sqlite_env", "storage_env"]  # fixtures imported for pytest

KEY_1 = "k1:" + "A" * 43 + "="
KEY_2 = "k2:" + "B" * 43 + "="


def test_session_round_trip(storage_env: dict[str, str]) -> None:
    env = storage_env
    history = [{"role": "user", "content": "hi"}]
    fields = json.dumps({"conversation_history": history})
    created = ok(
        "create", "alice", "proj", "--data", '{"step": 1}', "--fields", fields, "--ttl-hours", "0.5", env=env
    )
    session_id = created["session_id"]
    assert created["conversation_history"] == history and created["metadata"] == {"step": 1}

    fetched = ok("get", session_id, env=env)
    assert fetched["metadata"] == {"step": 1} and fetched["revision"] == created["revision"]

    updated = ok("update", session_id, '{"metadata": {"step": 2}}', env=env)
    assert updated["metadata"] == {"step": 2} and updated["revision"] == fetched["revision"] + 1
    from_stdin = ok("update", session_id, env=env, stdin='{"permissions": ["read"]}')
    assert from_stdin["permissions"] == ["read"] and from_stdin["metadata"] == {"step": 2}

    human = run_cli("get", session_id, env=env)
    assert human.code == 0 and session_id in human.stdout and "alice" in human.stdout
    assert "\x1b[" not in human.stdout  # no colour codes when not a terminal

    deleted = ok("delete", session_id, env=env)
    assert deleted == {"session_id": session_id, "deleted": True}
    again = run_cli("delete", session_id, env=env)
    assert again.code == ExitCode.NOTHING_DONE and "not found" in again.stderr
    assert run_cli("get", session_id, env=env).code == ExitCode.NOTHING_DONE


def test_list_filters_and_pages(storage_env: dict[str, str]) -> None:
    env = storage_env
    mine = [ok("create", "bob", f"p{i}", "--ttl-hours", "0.5", env=env)["session_id"] for i in range(3)]
    other = ok("create", "carol", "p0", "--ttl-hours", "0.5", env=env)["session_id"]

    first = ok("list", "--user", "bob", "--limit", "2", env=env)
    assert len(first["sessions"]) == 2 and first["next_cursor"]
    second = ok("list", "--user", "bob", "--limit", "2", "--cursor", first["next_cursor"], env=env)
    assert second["next_cursor"] is None
    listed = [item["session_id"] for item in first["sessions"] + second["sessions"]]
    assert listed == mine[::-1]  # newest activity first, each exactly once

    by_project = ok("list", "--project", "p0", env=env)
    assert {item["session_id"] for item in by_project["sessions"]} == {mine[0], other}
    both = ok("list", "--user", "carol", "--project", "p0", env=env)
    assert [item["session_id"] for item in both["sessions"]] == [other]

    table = run_cli("list", "--user", "bob", env=env)
    assert table.code == 0 and all(session_id in table.stdout for session_id in mine)


def test_health_ok(storage_env: dict[str, str]) -> None:
    report = ok("health", env=storage_env)
    assert report["available"] is True


def test_exit_codes_and_one_line_errors(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    env = sqlite_env
    session_id = ok("create", "dave", "proj", env=env)["session_id"]
    cases = {
        ("get", "no-such-session"): ExitCode.NOTHING_DONE,
        ("get", "../etc/passwd"): ExitCode.USAGE,
        ("update", session_id, "{not json"): ExitCode.USAGE,
        ("update", session_id, "[1, 2]"): ExitCode.USAGE,
        ("update", session_id, '{"session_id": "other"}'): ExitCode.USAGE,
        ("update", session_id, '{"created_at": "not-a-date"}'): ExitCode.USAGE,
        ("create", "", "proj"): ExitCode.USAGE,
        ("list", "--limit", "0"): ExitCode.USAGE,
        ("list", "--cursor", "garbage!"): ExitCode.USAGE,
        ("no-such-command",): ExitCode.USAGE,
        ("--url", "bogus://x", "list"): ExitCode.USAGE,
        ("--url", "sqlite:///x.db", "--backend", "redis", "list"): ExitCode.USAGE,
        ("--backend", "s3", "list"): ExitCode.USAGE,
        ("--config", str(tmp_path / "missing.json"), "list"): ExitCode.USAGE,
        ("--url", UNREACHABLE_REDIS, "get", session_id): ExitCode.UNAVAILABLE,
        ("--url", UNREACHABLE_REDIS, "health"): ExitCode.UNAVAILABLE,
    }
    for args, expected in cases.items():
        result = run_cli(*args, env=env)
        assert result.code == expected, f"{args}: {result.code} {result.stderr}"
        assert "Traceback" not in result.stderr, args
        if expected != ExitCode.USAGE or args[0] != "no-such-command":
            assert result.stderr.strip(), args

    library_error = run_cli("get", "no-such-session", env=env)
    assert library_error.stderr.count("\n") == 1 and library_error.stderr.startswith("error:")
    as_json = run_cli("--json", "get", "no-such-session", env=env)
    assert as_json.stdout == ""
    assert json.loads(as_json.stderr)["error"]["type"] == "SessionNotFoundError"
    debug = run_cli("--debug", "get", "no-such-session", env=env)
    assert debug.code == ExitCode.NOTHING_DONE and "Traceback" in debug.stderr


def test_usage_errors_are_one_line_naming_the_help(sqlite_env: dict[str, str]) -> None:
    cases = {
        ("create", "alice", "p", "--data", "{bad"): ("--data", "serverless-sessions create --help"),
        ("get",): ("Missing argument 'SESSION_ID'", "serverless-sessions get --help"),
        ("--config", "/nonexistent.json", "list"): ("/nonexistent.json", "serverless-sessions --help"),
        ("get", "x", "--bogus"): ("--bogus", "serverless-sessions get --help"),
    }
    for args, (named, hint) in cases.items():
        result = run_cli(*args, env=sqlite_env)
        assert result.code == ExitCode.USAGE and result.stdout == "", args
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
        assert named in result.stderr and f"(see '{hint}')" in result.stderr, result.stderr
        as_json = run_cli("--json", *args, env=sqlite_env)
        assert as_json.code == ExitCode.USAGE and as_json.stderr.count("\n") == 1, as_json.stderr
        assert json.loads(as_json.stderr)["exit_code"] == ExitCode.USAGE
    after = run_cli("get", "--json", env=sqlite_env)  # --json after the command counts too
    assert json.loads(after.stderr)["error"]["type"] == "MissingParameter"


def test_creating_an_existing_id_says_it_exists(storage_env: dict[str, str]) -> None:
    env = storage_env
    first = ok("create", "dan", "proj", "--id", "dup1", "--data", '{"n": 1}', env=env)
    again = run_cli("create", "eve", "other", "--id", "dup1", env=env)
    assert again.code == ExitCode.NOTHING_DONE
    assert again.stderr == "error: cannot create session 'dup1': it already exists\n", again.stderr
    as_json = json.loads(run_cli("--json", "create", "eve", "other", "--id", "dup1", env=env).stderr)
    assert as_json["error"]["type"] == "SessionConflictError"
    kept = ok("get", "dup1", env=env)
    assert kept["user_id"] == "dan" and kept["revision"] == first["revision"]


def test_every_library_error_has_an_exit_code() -> None:
    def subclasses(kind: type[SessionError]) -> list[type[SessionError]]:
        return [kind] + [sub for child in kind.__subclasses__() for sub in subclasses(child)]

    assert migration.MigrationVerificationError in subclasses(SessionError)  # loaded, so checked
    for kind in subclasses(SessionError):
        error = kind.__new__(kind)
        expected_internal = issubclass(kind, ClosedError) or kind is SessionError
        assert (exit_code_for(error) == ExitCode.INTERNAL) == expected_internal, kind


def test_cleanup_and_stats(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    env = sqlite_env
    for user in ("eve", "frank"):
        ok("create", user, "proj", "--ttl-hours", str(0.5 / 3600), env=env)
    keeper = ok("create", "eve", "proj", "--data", '{"blob": "' + "x" * 3000 + '"}', env=env)
    time.sleep(0.7)
    assert ok("cleanup", env=env) == {"removed": 2}
    assert ok("cleanup", env=env) == {"removed": 0}

    plot = tmp_path / "stats.png"
    stats = ok("stats", "--plot", str(plot), env=env)
    assert stats["total_sessions"] == 1 and stats["top_users"] == {"eve": 1}
    assert stats["size_bytes"]["count"] == 1 and sum(b["count"] for b in stats["size_bytes"]["buckets"]) == 1
    remaining = stats["remaining_ttl_seconds"]
    assert 86000 < remaining["maximum"] <= 86400
    assert plot.read_bytes().startswith(b"\x89PNG")

    chart = run_cli("stats", env=env)
    assert chart.code == 0 and "Stored size" in chart.stdout and "█" in chart.stdout
    assert ok("get", keeper["session_id"], env=env)["user_id"] == "eve"


def test_erase_deletes_one_users_sessions_and_rehearses_with_dry_run(sqlite_env: dict[str, str]) -> None:
    env = sqlite_env
    eves = sorted(ok("create", "eve", "proj", env=env)["session_id"] for _ in range(2))
    franks = ok("create", "frank", "proj", env=env)["session_id"]

    rehearsal = ok("erase", "--user", "eve", "--dry-run", env=env)
    assert rehearsal == {"user_id": "eve", "dry_run": True, "count": 2, "session_ids": eves}
    assert len(ok("list", "--user", "eve", env=env)["sessions"]) == 2

    assert ok("erase", "--user", "eve", env=env) == {
        "user_id": "eve", "dry_run": False, "count": 2, "session_ids": eves
    }  # fmt: skip
    assert ok("list", "--user", "eve", env=env)["sessions"] == []
    assert [item["session_id"] for item in ok("list", env=env)["sessions"]] == [franks]

    nobody = run_cli("erase", "--user", "eve", env=env, stdin="")  # not a terminal: no question
    assert (nobody.code, nobody.stdout.strip()) == (0, "Erased 0 session(s) of user 'eve'")
    blank = run_cli("erase", "--user", " ", env=env, stdin="")
    assert blank.code == ExitCode.USAGE and "user id" in blank.stderr


def _erase_on_a_terminal(env: dict[str, str], answer: str) -> tuple[int, str, str]:
    """``erase --user frank`` with a terminal as stdin, answering its question with ``answer``."""
    controller, terminal = pty.openpty()
    with subprocess.Popen(
        [str(SCRIPT), "erase", "--user", "frank"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    ) as process:
        os.close(terminal)
        os.write(controller, f"{answer}\n".encode())
        out, err = process.communicate(timeout=60)
    os.close(controller)
    return process.returncode, out, err


def test_erase_on_a_terminal_asks_first(sqlite_env: dict[str, str]) -> None:
    env = sqlite_env
    kept = ok("create", "frank", "proj", env=env)["session_id"]
    code, _, err = _erase_on_a_terminal(env, "n")
    assert code == ExitCode.NOTHING_DONE
    assert "Erase 1 session(s) of user 'frank'? This cannot be undone" in err and "nothing erased" in err
    assert ok("get", kept, env=env)["user_id"] == "frank"
    code, out, _ = _erase_on_a_terminal(env, "y")
    assert code == 0 and "Erased 1 session(s) of user 'frank'" in out
    assert ok("list", "--user", "frank", env=env)["sessions"] == []


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        SERVERLESS_SESSIONS_URL="redis://:hunter2@127.0.0.1:6379/9",
        SERVERLESS_SESSIONS_ENCRYPTION_KEYS=KEY_1,
    )
    shown = ok("config", "show", env=env)
    assert shown["backend"] == "redis" and shown["url"] == "redis://:***@127.0.0.1:6379/9"
    assert shown["encryption_keys"] == "***"
    human = run_cli("config", "show", env=env)
    for output in (json.dumps(shown), human.stdout + human.stderr):
        assert "hunter2" not in output and "AAAA" not in output


def test_backend_option(tmp_path: Path) -> None:
    env = base_env(tmp_path, SERVERLESS_SESSIONS_URL="redis://127.0.0.1:6379/9")
    assert ok("--backend", "redis", "config", "show", env=env)["url"] == "redis://127.0.0.1:6379/9"
    assert ok("--backend", "memory", "config", "show", env=env)["url"] == "memory://"
    assert ok("--backend", "local", "config", "show", env=env)["backend"] == "sqlite"


def test_config_migrate_converts_old_formats(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    old = tmp_path / "serverless_config.json"
    old.write_text(
        json.dumps(
            {
                "storage_backend": "redis",
                "session_ttl_hours": 2,
                "backends": {"redis": {"host": "127.0.0.1", "port": 6379, "db": 9, "password": "hunter2"}},
            }
        )
    )
    preview = run_cli("config", "migrate", str(old), "--json", env=env)
    assert preview.code == 0, preview.stderr
    assert "hunter2" not in preview.stdout and preview.json()["acb"]["cache"]["provider"] == "redis"

    new = tmp_path / "new.json"
    written = ok("config", "migrate", str(old), "-o", str(new), env=env)
    assert written["written"] == str(new)
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    assert json.loads(new.read_text())["acb"]["cache"]["password"] == "hunter2"
    assert run_cli("config", "migrate", str(old), "-o", str(new), env=env).code == ExitCode.USAGE

    shown = ok("--config", str(new), "config", "show", env=env)
    assert shown["url"] == "redis://:***@127.0.0.1:6379/9?key_prefix=session_mgmt.v2"
    assert shown["default_ttl"] == 7200


def test_migrate_between_storages(tmp_path: Path) -> None:
    source = f"sqlite://{tmp_path / 'source.db'}"
    target = f"sqlite://{tmp_path / 'target.db'}"
    env = base_env(tmp_path, SERVERLESS_SESSIONS_URL=source)
    ids = [ok("create", "gina", f"p{i}", env=env)["session_id"] for i in range(3)]

    dry = ok("migrate", "--from", source, "--to", target, "--dry-run", env=env)
    assert not dry["failed"]
    assert run_cli("--url", target, "get", ids[0], env=env).code == ExitCode.NOTHING_DONE

    checkpoint = tmp_path / "migrate.checkpoint"
    report = ok("migrate", "--from", source, "--to", target, "--checkpoint", str(checkpoint), env=env)
    assert not report["failed"]
    for session_id in ids:
        assert ok("--url", target, "get", session_id, env=env)["user_id"] == "gina"


def test_reencrypt_rotates_to_the_newest_key(sqlite_env: dict[str, str]) -> None:
    old = {**sqlite_env, "SERVERLESS_SESSIONS_ENCRYPTION_KEYS": KEY_1}
    new = {**sqlite_env, "SERVERLESS_SESSIONS_ENCRYPTION_KEYS": f"{KEY_1},{KEY_2}"}
    session_id = ok("create", "hana", "proj", env=old)["session_id"]
    report = ok("reencrypt", env=new)
    assert report["key_id"] == "k2" and report["rewritten"] == 1 and report["failed"] == {}
    assert ok("reencrypt", env=new)["already_current"] == 1
    only_new = {**sqlite_env, "SERVERLESS_SESSIONS_ENCRYPTION_KEYS": KEY_2}
    assert ok("get", session_id, env=only_new)["user_id"] == "hana"
    assert run_cli("reencrypt", env=sqlite_env).code == ExitCode.USAGE  # no keys configured


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    report = ok("demo", "--ttl", "1.5", env=env)
    steps = report["steps"]
    assert len(steps) == 6 and report["storage"].startswith("sqlite://")
    assert steps[1]["pid"] != steps[0]["pid"] and steps[1]["messages"] == 2
    assert steps[2]["listed"] == [report["session_id"]]
    assert steps[3]["ttl_seconds"] == 1.5
    assert steps[4]["second_process_exit_code"] == ExitCode.NOTHING_DONE
    assert steps[5]["removed"] >= 1
    assert not (tmp_path / "xdg-data").exists()  # the demo never touches the default database

    human = run_cli("demo", "--ttl", "1", env=env)
    assert human.code == 0, human.stderr
    assert "Resumed it in a second process" in human.stdout and "Demo complete." in human.stdout


def test_entry_points_and_light_import(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    version = subprocess.run(
        [sys.executable, "-m", "serverless_sessions", "--version"], env=env, capture_output=True, text=True
    )
    assert version.returncode == 0 and "serverless-sessions" in version.stdout
    assert SCRIPT.exists()
    probe = (
        "import sys, serverless_sessions.cli.app; "
        "heavy = [m for m in ('mcp', 'redis', 'matplotlib') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr


@pytest.mark.parametrize(
    "args", [("--help",), ("create", "--help"), ("config", "--help"), ("erase", "--help")]
)
def test_help(args: tuple[str, ...], tmp_path: Path) -> None:
    result = run_cli(*args, env=base_env(tmp_path))
    assert result.code == 0 and "Usage:" in result.stdout


def test_help_lists_every_exit_code_and_counts_no_tools(tmp_path: Path) -> None:
    top = " ".join(run_cli("--help", env=base_env(tmp_path)).stdout.split())
    for code in ExitCode:
        assert f" {code.value} {MEANINGS[code]}" in top, (code, top)
    serve = " ".join(run_cli("serve", "--help", env=base_env(tmp_path)).stdout.split())
    assert "MCP server" in serve and not re.search(r"\b(eight|nine|ten|\d+)\b[\w ]* tools", serve), serve


def test_create_stores_data_as_metadata_from_any_source(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    env = sqlite_env
    data = {"task": "migrate", "conversation_history": "a key of the original's free-form data"}
    inline = ok("create", "ann", "proj", "--data", json.dumps(data), env=env)
    assert inline["metadata"] == data and inline["conversation_history"] == []

    from_stdin = ok("create", "ann", "proj", "--data", "-", env=env, stdin=json.dumps(data))
    assert from_stdin["metadata"] == data
    fields = tmp_path / "fields.json"
    fields.write_text(json.dumps({"permissions": ["read"], "conversation_history": [{"role": "user"}]}))
    from_files = ok("create", "ann", "proj", "--fields", f"@{fields}", "--data", "-", env=env, stdin="{}")
    assert from_files["permissions"] == ["read"] and from_files["conversation_history"] == [{"role": "user"}]
    updated = ok("update", from_files["session_id"], f"@{fields}", env=env)
    assert updated["revision"] == from_files["revision"] + 1

    for args in (
        ("create", "ann", "proj", "--data", "-", "--fields", "-"),
        ("create", "ann", "proj", "--data", f"@{tmp_path / 'missing.json'}"),
        ("create", "ann", "proj", "--fields", '{"colour": "red"}'),
        ("create", "ann", "proj", "--data", "[1]"),
        ("update", inline["session_id"], f"@{tmp_path / 'missing.json'}"),
    ):
        result = run_cli(*args, env=env, stdin="{}")
        assert result.code == ExitCode.USAGE, (args, result.stderr)
        assert "Traceback" not in result.stderr
    missing = run_cli("create", "a", "p", "--data", f"@{tmp_path / 'missing.json'}", env=env)
    assert str(tmp_path / "missing.json") in missing.stderr
    assert [item["user_id"] for item in ok("list", env=env)["sessions"]] == ["ann"] * 3


def test_create_honours_the_configured_default_ttl(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    configured = ok("create", "u", "p", env={**sqlite_env, "SERVERLESS_SESSIONS_DEFAULT_TTL": "600"})
    assert configured["idle_ttl_seconds"] == 600
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"acb": {"cache": {"provider": "sqlite", "default_ttl": 900}}}))
    from_file = ok("--config", str(config), "create", "u", "p", env=sqlite_env)
    assert from_file["idle_ttl_seconds"] == 900
    assert ok("create", "u", "p", env=sqlite_env)["idle_ttl_seconds"] == 24 * 3600
    short_default = {**sqlite_env, "SERVERLESS_SESSIONS_DEFAULT_TTL": "600"}
    assert ok("create", "u", "p", "--ttl-hours", "2", env=short_default)["idle_ttl_seconds"] == 7200


def _expiry_shown(output: str) -> tuple[datetime, str]:
    """The absolute expiry and the remaining time on the `expires` row of `get`."""
    found = re.search(r"expires\s*│\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC \(in ([^)]+)\)", output)
    assert found, output
    return datetime.fromisoformat(found[1] + "+00:00"), found[2]


def test_touch_restarts_the_idle_timeout_and_get_shows_the_expiry(storage_env: dict[str, str]) -> None:
    env = storage_env
    session_id = ok("create", "tom", "proj", "--ttl-hours", "1", env=env)["session_id"]
    expires, remaining = _expiry_shown(run_cli("get", session_id, env=env).stdout)
    assert remaining == "1h" or remaining.startswith("59m"), remaining

    longer = ok("touch", session_id, "--ttl-hours", "2", env=env)
    assert longer["session_id"] == session_id and longer["idle_ttl_seconds"] == 7200
    last_activity = datetime.fromisoformat(longer["last_activity"])
    expires_at = datetime.fromisoformat(longer["expires_at"])
    assert abs(expires_at - last_activity - timedelta(hours=2)) < timedelta(seconds=1)
    assert expires_at > expires + timedelta(minutes=59)

    again = ok("touch", session_id, env=env)  # the session's own (new) idle timeout restarts
    assert again["idle_ttl_seconds"] == 7200
    assert datetime.fromisoformat(again["expires_at"]) > expires_at
    shown = run_cli("get", session_id, env=env).stdout
    assert abs(_expiry_shown(shown)[0] - datetime.fromisoformat(again["expires_at"])) < timedelta(seconds=1)
    assert re.search(r"idle timeout\s*│\s*2h\b", shown), shown
    assert ok("get", session_id, env=env)["revision"] == 3

    human = run_cli("touch", session_id, env=env)
    assert human.code == 0 and re.search(r"Touched session \w+: expires \S+ \S+ UTC \(in ", human.stdout)
    assert run_cli("touch", "no-such-session", env=env).code == ExitCode.NOTHING_DONE
    assert run_cli("touch", session_id, "--ttl-hours", "0", env=env).code == ExitCode.USAGE


def test_the_configured_max_lifetime_caps_every_session(sqlite_env: dict[str, str]) -> None:
    env = {**sqlite_env, "SERVERLESS_SESSIONS_MAX_LIFETIME": "3600"}
    created = ok("create", "meg", "proj", "--ttl-hours", "5", env=env)
    started = datetime.fromisoformat(created["created_at"])
    deadline = datetime.fromisoformat(created["absolute_expires_at"])
    assert abs(deadline - started - timedelta(hours=1)) < timedelta(seconds=1)
    shown = run_cli("get", created["session_id"], env=env).stdout
    assert re.search(r"hard deadline\s*│\s*\d{4}-", shown), shown


def test_get_json_shows_the_expiry_as_list_does(storage_env: dict[str, str]) -> None:
    env = storage_env
    session_id = ok("create", "gus", "proj", "--ttl-hours", "1", env=env)["session_id"]
    got = ok("get", session_id, env=env)
    [listed] = ok("list", "--user", "gus", env=env)["sessions"]
    assert got["expires_at"] == listed["expires_at"]
    idle = datetime.fromisoformat(got["expires_at"]) - datetime.fromisoformat(got["last_activity"])
    assert abs(idle - timedelta(hours=1)) < timedelta(seconds=1)


def test_a_session_too_large_to_read_back_is_never_stored(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    env = sqlite_env
    session_id = ok("create", "zoe", "proj", "--data", '{"step": 1}', env=env)["session_id"]
    huge = json.dumps({"metadata": {"blob": "x" * (3 * 1024 * 1024)}})  # compresses to a few KB
    for result in (
        run_cli("update", session_id, env=env, stdin=huge),
        run_cli("--json", "update", session_id, env=env, stdin=huge),
        run_cli("create", "zoe", "proj", "--fields", "-", env=env, stdin=huge),
    ):
        assert result.code == ExitCode.USAGE, result.stderr[:500]
        assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr[:500]
        assert "limit" in result.stderr and str(1024 * 1024) in result.stderr, result.stderr
    assert "SessionTooLargeError" in run_cli("--json", "update", session_id, env=env, stdin=huge).stderr
    unchanged = ok("get", session_id, env=env)
    assert unchanged["metadata"] == {"step": 1} and unchanged["revision"] == 1
    assert len(ok("list", env=env)["sessions"]) == 1


def test_a_large_session_is_summarized_not_printed_whole(sqlite_env: dict[str, str]) -> None:
    env = sqlite_env
    blob = "".join(f"{i:07d}" for i in range(100_000))  # 700 KB, under the 1 MiB limit
    history = [{"role": "user", "content": str(i)} for i in range(500)]
    updates = json.dumps({"metadata": {"blob": blob}, "conversation_history": history})
    created = run_cli("create", "max", "proj", "--fields", "-", env=env, stdin=updates)
    assert created.code == 0 and len(created.stdout) < 5000, len(created.stdout)
    assert "metadata: 1 key(s), 683.6 KiB" in created.stdout
    assert "conversation_history: 500 item(s)" in created.stdout
    session_id = re.search(r"Created session (\w+)", created.stdout)[1]  # type: ignore[index]

    updated = run_cli("update", session_id, env=env, stdin=updates)
    assert updated.code == 0 and len(updated.stdout) < 5000 and blob[:100] not in updated.stdout

    shown = run_cli("get", session_id, env=env)
    assert shown.code == 0 and len(shown.stdout) < 50_000, len(shown.stdout)
    assert "more characters" in shown.stdout and "400 more items" in shown.stdout
    assert "--json shows the session in full" in shown.stdout
    full = ok("get", session_id, env=env)
    assert full["metadata"]["blob"] == blob and len(full["conversation_history"]) == 500


def test_stats_counts_sessions_it_cannot_decrypt(sqlite_env: dict[str, str]) -> None:
    old = {**sqlite_env, "SERVERLESS_SESSIONS_ENCRYPTION_KEYS": KEY_1}
    new = {**sqlite_env, "SERVERLESS_SESSIONS_ENCRYPTION_KEYS": KEY_2}
    lost = ok("create", "ida", "proj", env=old)["session_id"]
    ok("create", "ida", "proj", env=new)
    assert ok("list", env=new)["unreadable"] == [lost]
    stats = ok("stats", env=new)
    assert stats["total_sessions"] == 1 and stats["unreadable"] == [lost]
    human = run_cli("stats", env=new)
    assert human.code == 0 and f"1 (corrupt or undecryptable: {lost})" in human.stdout


def test_a_session_that_cannot_be_read_has_its_own_exit_code(sqlite_env: dict[str, str]) -> None:
    old = {**sqlite_env, "SERVERLESS_SESSIONS_ENCRYPTION_KEYS": KEY_1}
    strict = {**old, "SERVERLESS_SESSIONS_REQUIRE_ENCRYPTION": "true"}
    other_key = {**sqlite_env, "SERVERLESS_SESSIONS_ENCRYPTION_KEYS": KEY_2}
    sealed = ok("create", "ivy", "proj", env=old)["session_id"]
    plain = ok("create", "ivy", "proj", env=sqlite_env)["session_id"]
    for session_id, env in ((sealed, other_key), (plain, strict)):
        result = run_cli("get", session_id, env=env)
        assert result.code == ExitCode.UNREADABLE == 4, result.stderr
        assert result.stderr.count("\n") == 1 and session_id in result.stderr, result.stderr
    as_json = run_cli("--json", "get", sealed, env=other_key)
    assert json.loads(as_json.stderr)["exit_code"] == 4


def test_stats_plot_to_a_missing_directory_is_a_usage_error(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "no-such-dir" / "x.png"
    for args in (("stats", "--plot", str(target)), ("--json", "stats", "--plot", str(target))):
        result = run_cli(*args, env=sqlite_env)
        assert result.code == ExitCode.USAGE, result.stderr
        assert str(target) in result.stderr and "Traceback" not in result.stderr
    assert not target.parent.exists()


def test_list_help_warns_that_no_filter_reads_every_session(tmp_path: Path) -> None:
    result = run_cli("list", "--help", env=base_env(tmp_path))
    assert result.code == 0 and "reads every session" in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        pytest.param(("redis",), ("--url", "redis://127.0.0.1:6379/9", "list"), "redis", id="redis"),
        pytest.param(("redis",), ("--url", "rediss://127.0.0.1:6379/9", "health"), "redis", id="rediss"),
        pytest.param(("aiobotocore", "botocore"), ("--url", "s3://bucket/prefix", "list"), "s3", id="s3"),
        pytest.param(("anyio",), ("serve",), "mcp", id="anyio"),
        pytest.param(("mcp",), ("serve",), "mcp", id="mcp"),
        pytest.param(("matplotlib",), ("stats", "--plot", "{tmp}/x.png"), "plot", id="matplotlib"),
        pytest.param(("cryptography",), ("list",), "crypto", id="cryptography"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(
    blocked: tuple[str, ...], args: tuple[str, ...], extra: str, sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    keys = {"SERVERLESS_SESSIONS_ENCRYPTION_KEYS": KEY_1} if extra == "crypto" else {}
    env = without_modules({**sqlite_env, **keys}, tmp_path / "site", *blocked)
    probe = subprocess.run([sys.executable, "-c", f"import {blocked[0]}"], env=env, capture_output=True)
    assert probe.returncode != 0 and b"ModuleNotFoundError" in probe.stderr  # really not importable
    args = tuple(arg.format(tmp=tmp_path) for arg in args)
    result = run_cli(*args, env=env, stdin="")
    assert result.code == ExitCode.USAGE, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"pip install 'serverless-sessions[{extra}]'" in result.stderr, result.stderr
    as_json = json.loads(run_cli("--json", *args, env=env, stdin="").stderr)
    assert as_json["error"]["type"] in {"MissingDependencyError", "ConfigurationError"}

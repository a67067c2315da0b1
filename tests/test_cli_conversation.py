"""``append`` and ``get --last/--before``: a conversation grown and read back a page at a time.

Through the installed script in subprocesses, as a shell script or an operator uses it, on
SQLite: the commands are one manager call each, and the MCP tests run the same calls on every
backend.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from serverless_sessions.cli.exits import ExitCode
from tests.cli_helpers import ok, run_cli, spoil_message, sqlite_env

__all__ = ["sqlite_env"]  # fixtures imported for pytest


def message(number: int) -> dict[str, Any]:
    return {"role": "user" if number % 2 == 0 else "assistant", "content": f"m{number}"}


def pages_back(env: dict[str, str], session_id: str, size: int) -> list[dict[str, Any]]:
    """Every page ``get --last SIZE`` and then ``--before`` returns, newest first."""
    pages = [ok("get", session_id, "--last", str(size), env=env)]
    while pages[-1]["messages_cursor"] is not None:
        cursor = pages[-1]["messages_cursor"]
        pages.append(ok("get", session_id, "--last", str(size), "--before", cursor, env=env))
    return pages


def test_append_then_read_back_page_by_page(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    env = sqlite_env
    created = ok("create", "alice", "proj", "--ttl-hours", "0.5", env=env)
    session_id = created["session_id"]
    assert (created["message_count"], created["history_start"], created["messages_cursor"]) == (0, 0, None)

    one = ok("append", session_id, json.dumps(message(0)), env=env)
    assert (
        one["session_id"] == session_id
        and one["message_count"] == 1
        and set(one)
        == {
            "session_id",
            "message_count",
            "expires_at",
        }
    )
    assert datetime.fromisoformat(one["expires_at"]) > datetime.fromisoformat(created["expires_at"])
    several = ok("append", session_id, json.dumps([message(1), message(2), message(3)]), env=env)
    assert several["message_count"] == 4
    assert ok("append", session_id, env=env, stdin=json.dumps(message(4)))["message_count"] == 5
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([message(5), [6, "an array is one message when wrapped"]]))
    longer = ok("append", session_id, f"@{batch}", "--ttl-hours", "2", env=env)
    assert longer["message_count"] == 7
    expires = datetime.fromisoformat(longer["expires_at"])
    assert (
        timedelta(hours=2) - timedelta(minutes=1)
        < expires - datetime.now(expires.tzinfo)
        <= timedelta(hours=2)
    )
    history = [*map(message, range(6)), [6, "an array is one message when wrapped"]]

    whole = ok("get", session_id, env=env)
    assert whole["conversation_history"] == history
    assert (whole["message_count"], whole["history_start"], whole["messages_cursor"]) == (7, 0, None)

    pages = pages_back(env, session_id, 3)
    assert [(page["history_start"], len(page["conversation_history"])) for page in pages] == [
        (4, 3),
        (1, 3),
        (0, 1),
    ]
    assert all(page["message_count"] == 7 and page["metadata"] == {} for page in pages)
    assert [item for page in reversed(pages) for item in page["conversation_history"]] == history

    shown = run_cli("get", session_id, "--last", "3", env=env)
    assert shown.code == 0 and "conversation_history: messages 4 to 6 of 7" in shown.stdout
    assert f"older messages: --before {pages[0]['messages_cursor']}" in shown.stdout
    said = run_cli("append", session_id, '"hello"', env=env)
    assert (
        said.code == 0 and f"Appended 1 message(s) to session {session_id}: 8 message(s) now" in said.stdout
    )
    counted = ok("get", session_id, "--last", "0", env=env)
    assert (counted["conversation_history"], counted["message_count"], counted["history_start"]) == ([], 8, 8)


def test_bad_input_is_one_line_and_writes_nothing(sqlite_env: dict[str, str]) -> None:
    env = sqlite_env
    fields = json.dumps({"conversation_history": [message(0), message(1)]})
    before = ok("create", "bob", "proj", "--fields", fields, env=env)
    session_id = before["session_id"]
    other = ok("create", "bob", "proj", "--fields", fields, env=env)["session_id"]
    foreign_cursor = ok("get", other, "--last", "1", env=env)["messages_cursor"]

    cases: dict[tuple[str, ...], tuple[ExitCode, str]] = {
        ("append", session_id, "{not json"): (ExitCode.USAGE, "Invalid value for MESSAGES: not valid JSON"),
        ("append", session_id, "[]"): (ExitCode.USAGE, "no messages to append: give at least one"),
        ("append", "no-such-session", "1"): (ExitCode.NOTHING_DONE, "session 'no-such-session' not found"),
        ("get", session_id, "--last", "-1"): (ExitCode.USAGE, "'--last': -1 is not in the range x>=0"),
        ("get", session_id, "--before", "garbage!"): (ExitCode.USAGE, "invalid message cursor 'garbage!'"),
        ("get", session_id, "--before", foreign_cursor): (
            ExitCode.USAGE,
            f"was not issued for session {session_id!r}'s messages",
        ),
    }
    for args, (code, expected) in cases.items():
        result = run_cli(*args, env=env)
        assert result.code == code, f"{args}: {result.code} {result.stderr}"
        assert expected in result.stderr and result.stdout == "", (args, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr

    too_large = run_cli(
        "--json", "append", session_id, "-", env=env, stdin=json.dumps("x" * (2 * 1024 * 1024))
    )
    error = json.loads(too_large.stderr)
    assert too_large.code == error["exit_code"] == ExitCode.USAGE, too_large.stderr
    assert error["error"]["type"] == "SessionTooLargeError" and "limit" in error["error"]["message"]

    after = ok("get", session_id, env=env)
    assert after["conversation_history"] == before["conversation_history"] and after["message_count"] == 2
    assert after["revision"] == before["revision"]


def test_touch_reads_the_session_head_not_its_messages(sqlite_env: dict[str, str]) -> None:
    """A keep-alive of a long conversation must not read it: touch needs only activity and expiry.

    Shown with a message made unreadable on purpose: reading the conversation now fails, and
    touch still renews the session.
    """
    env = sqlite_env
    session_id = ok("create", "carol", "proj", "--ttl-hours", "0.5", env=env)["session_id"]
    ok("append", session_id, json.dumps([message(0), message(1)]), env=env)
    spoil_message(env, 0)
    unreadable = run_cli("get", session_id, env=env)
    assert unreadable.code == ExitCode.UNREADABLE, unreadable.stderr

    touched = ok("touch", session_id, "--ttl-hours", "2", env=env)
    expires = datetime.fromisoformat(touched["expires_at"])
    assert timedelta(hours=2) - timedelta(minutes=1) < expires - datetime.now(expires.tzinfo)
    head = ok("get", session_id, "--last", "0", env=env)
    assert (head["message_count"], head["expires_at"]) == (2, touched["expires_at"])

"""The conversation tools over stdio: append each turn, read back the newest messages, page back.

A real ``serverless-sessions serve`` driven by the SDK's client on every backend other
processes can reach (per-principal scoping over HTTP is in ``test_mcp_auth``). Refusals must
be one-line tool errors, and write nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.cli_helpers import spoil_message, sqlite_env, storage_env
from tests.test_mcp_server import call, fails, served, text_of

__all__ = ["sqlite_env", "storage_env"]  # fixtures imported for pytest


def message(number: int) -> dict[str, Any]:
    return {"role": "user" if number % 2 == 0 else "assistant", "content": f"m{number}"}


async def test_tool_descriptions_steer_a_model_to_append(sqlite_env: dict[str, str]) -> None:
    async with served(sqlite_env) as session:
        initialized_tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    append = initialized_tools["append_to_serverless_session"]
    assert append.description and "instead of sending the whole conversation again" in append.description
    assert append.input_schema["properties"]["messages"]["type"] == "array"
    get = initialized_tools["get_serverless_session"].input_schema["properties"]
    assert (
        "last N messages" in get["last"]["description"] and "messages_cursor" in get["before"]["description"]
    )
    updates = initialized_tools["update_serverless_session"].input_schema["properties"]["updates"]
    assert "append_to_serverless_session" in updates["description"]


async def test_append_each_turn_and_read_back_page_by_page(storage_env: dict[str, str]) -> None:
    async with served(storage_env) as session:
        created = await call(
            session, "create_serverless_session", user_id="alice", project_id="proj", ttl_hours=0.5
        )
        session_id = created["session_id"]
        started = datetime.fromisoformat(
            (await call(session, "get_serverless_session", session_id=session_id))["expires_at"]
        )

        first = await call(
            session, "append_to_serverless_session", session_id=session_id, messages=[message(0)]
        )
        assert set(first) == {"session_id", "message_count", "expires_at"}
        assert first["session_id"] == session_id and first["message_count"] == 1
        assert datetime.fromisoformat(first["expires_at"]) > started  # an append is activity
        turn = [message(1), "a plain string", [2, 3], None]
        appended = await session.call_tool(
            "append_to_serverless_session", {"session_id": session_id, "messages": turn, "ttl_hours": 2}
        )
        assert not appended.is_error and appended.structured_content is not None
        assert appended.structured_content["message_count"] == 5
        assert f"session {session_id} now has 5 message(s)" in text_of(appended)
        expires = datetime.fromisoformat(appended.structured_content["expires_at"])
        assert (
            timedelta(hours=2) - timedelta(minutes=1)
            < expires - datetime.now(expires.tzinfo)
            <= timedelta(hours=2)
        )
        history = [message(0), *turn]

        whole = await call(session, "get_serverless_session", session_id=session_id)
        assert whole["session"]["conversation_history"] == history
        assert (whole["message_count"], whole["history_start"], whole["messages_cursor"]) == (5, 0, None)

        newest = await session.call_tool("get_serverless_session", {"session_id": session_id, "last": 2})
        page = newest.structured_content
        assert page is not None and page["session"]["conversation_history"] == history[-2:]
        assert (page["message_count"], page["history_start"]) == (5, 3)
        assert (
            page["session"]["user_id"] == "alice"
            and page["expires_at"] == appended.structured_content["expires_at"]
        )
        summary = text_of(newest)
        assert "5 message(s) (2 shown, from position 3)" in summary
        assert f"call get_serverless_session with before={page['messages_cursor']!r}" in summary

        pages = [page]
        while pages[-1]["messages_cursor"] is not None:
            pages.append(
                await call(
                    session,
                    "get_serverless_session",
                    session_id=session_id,
                    last=2,
                    before=pages[-1]["messages_cursor"],
                )
            )
        assert [item["history_start"] for item in pages] == [3, 1, 0]
        assert [
            message for item in reversed(pages) for message in item["session"]["conversation_history"]
        ] == history
        assert all(item["message_count"] == 5 for item in pages)

        rest = await call(
            session, "get_serverless_session", session_id=session_id, before=page["messages_cursor"]
        )
        assert rest["session"]["conversation_history"] == history[:3] and rest["messages_cursor"] is None
        count_only = await call(session, "get_serverless_session", session_id=session_id, last=0)
        assert count_only["session"]["conversation_history"] == [] and count_only["message_count"] == 5

        # A turn after a windowed read: the whole conversation is still there, in order.
        await call(session, "append_to_serverless_session", session_id=session_id, messages=[message(9)])
        after = await call(session, "get_serverless_session", session_id=session_id)
        assert after["session"]["conversation_history"] == [*history, message(9)]


async def test_bad_input_is_a_one_line_tool_error_and_writes_nothing(sqlite_env: dict[str, str]) -> None:
    async with served(sqlite_env) as session:
        create = {"user_id": "u", "project_id": "p"}
        session_id = (await call(session, "create_serverless_session", **create))["session_id"]
        await call(
            session, "append_to_serverless_session", session_id=session_id, messages=[message(0), message(1)]
        )
        before = await call(session, "get_serverless_session", session_id=session_id)
        other = (await call(session, "create_serverless_session", **create))["session_id"]
        await call(
            session, "append_to_serverless_session", session_id=other, messages=[message(0), message(1)]
        )
        foreign_cursor = (await call(session, "get_serverless_session", session_id=other, last=1))[
            "messages_cursor"
        ]

        append = "append_to_serverless_session"
        cases: list[tuple[str, dict[str, Any], str]] = [
            (append, {"messages": []}, "no messages to append: give at least one"),
            (append, {"messages": "hello"}, "invalid arguments: messages: Input should be a valid list"),
            (
                append,
                {"messages": {"role": "user"}},
                "invalid arguments: messages: Input should be a valid list",
            ),
            (append, {}, "invalid arguments: messages: Field required"),
            (append, {"messages": [1], "ttl_hours": 0}, "ttl_hours: Input should be greater than 0"),
            (append, {"messages": ["x" * (2 * 1024 * 1024)]}, "limit"),
            (
                "get_serverless_session",
                {"last": -1},
                "invalid arguments: last: Input should be greater than or equal to 0",
            ),
            ("get_serverless_session", {"before": "garbage!"}, "invalid message cursor 'garbage!'"),
            (
                "get_serverless_session",
                {"before": foreign_cursor},
                f"not issued for session {session_id!r}'s messages",
            ),
        ]
        for tool, arguments, expected in cases:
            error = await fails(session, tool, session_id=session_id, **arguments)
            assert error.startswith(f"Error executing tool {tool}: ") and expected in error, error
            assert "\n" not in error, error
        for tool, arguments in ((append, {"messages": [1]}), ("get_serverless_session", {"last": 1})):
            assert "session 'no-such-session' not found" in await fails(
                session, tool, session_id="no-such-session", **arguments
            )

        after = await call(session, "get_serverless_session", session_id=session_id)
        assert after == before


async def test_touch_reads_the_session_head_not_its_messages(sqlite_env: dict[str, str]) -> None:
    """A keep-alive of a long conversation must not read it (see the CLI's test of touch)."""
    async with served(sqlite_env) as session:
        create = {"user_id": "u", "project_id": "p", "ttl_hours": 0.5}
        session_id = (await call(session, "create_serverless_session", **create))["session_id"]
        await call(
            session, "append_to_serverless_session", session_id=session_id, messages=[message(0), message(1)]
        )
        spoil_message(sqlite_env, 0)
        assert "corrupt" in await fails(session, "get_serverless_session", session_id=session_id)

        touched = await call(session, "touch_serverless_session", session_id=session_id, ttl_hours=2)
        expires = datetime.fromisoformat(touched["expires_at"])
        assert timedelta(hours=2) - timedelta(minutes=1) < expires - datetime.now(expires.tzinfo)
        head = await call(session, "get_serverless_session", session_id=session_id, last=0)
        assert (head["message_count"], head["expires_at"]) == (2, touched["expires_at"])

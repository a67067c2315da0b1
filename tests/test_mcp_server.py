"""The MCP server, launched as ``serverless-sessions serve`` and driven by the SDK's own clients.

Every call goes over a real transport (stdio, or streamable HTTP) to a real storage (SQLite, or
the shared Redis): the original tools failed at run time behind mocked tests, so nothing here
is mocked. Errors must come back as ``is_error`` results with a clear message and no
structured content; successes carry structured content matching the published output schema
(the client validates it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from serverless_sessions.backends import BACKENDS, backend_of
from tests.cli_helpers import SCRIPT, UNREACHABLE_REDIS, base_env, run_cli, sqlite_env, storage_env
from tests.redis_servers import free_port, running_redis

__all__ = ["sqlite_env", "storage_env"]  # fixtures imported for pytest

TOOLS = {
    "create_serverless_session": ({"project_id"}, {"user_id", "session_data", "ttl_hours"}),
    "get_serverless_session": ({"session_id"}, {"last", "before"}),
    "append_to_serverless_session": ({"session_id", "messages"}, {"ttl_hours"}),
    "update_serverless_session": ({"session_id", "updates"}, {"ttl_hours"}),
    "delete_serverless_session": ({"session_id"}, set()),
    "list_serverless_sessions": (set(), {"user_id", "project_id", "limit", "cursor"}),
    "test_serverless_storage": (set(), set()),
    "cleanup_serverless_sessions": (set(), set()),
    "configure_serverless_storage": ({"backend", "config_updates"}, set()),
    "touch_serverless_session": ({"session_id"}, {"ttl_hours"}),
    "erase_user_sessions": ({"user_id"}, {"dry_run"}),
}


@asynccontextmanager
async def served(env: dict[str, str], *serve_args: str) -> AsyncIterator[ClientSession]:
    """A client session with ``serverless-sessions serve [serve_args]`` over stdio."""
    params = StdioServerParameters(command=str(SCRIPT), args=["serve", *serve_args], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        initialized = await session.initialize()
        assert initialized.server_info.version == version("serverless-sessions")
        yield session


def text_of(result: object) -> str:
    """The one text block every result of ours carries (a summary, or the error message)."""
    assert isinstance(result, CallToolResult) and len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, TextContent) and block.text
    return block.text


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured content."""
    result = await session.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert not result.is_error, f"{tool}: {text_of(result)}"
    assert result.structured_content is not None and text_of(result)
    return dict(result.structured_content)


async def fails(session: ClientSession, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; return its error message."""
    result = await session.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert result.is_error, f"{tool} succeeded: {result.structured_content}"
    assert result.structured_content is None
    return text_of(result)


async def test_tools_keep_their_original_names_and_parameters(sqlite_env: dict[str, str]) -> None:
    async with served(sqlite_env) as session:
        listed = (await session.list_tools()).tools
    assert {tool.name for tool in listed} == set(TOOLS)
    for tool in listed:
        required, optional = TOOLS[tool.name]
        assert set(tool.input_schema.get("required", [])) == required, tool.name
        assert set(tool.input_schema["properties"]) == required | optional, tool.name
        assert tool.output_schema is not None and tool.description, tool.name
    create = next(tool for tool in listed if tool.name == "create_serverless_session")
    assert "default_ttl" in create.input_schema["properties"]["ttl_hours"]["description"]
    assert "metadata" in create.input_schema["properties"]["session_data"]["description"]
    # A client picks the backend from this description: it must offer every backend there is.
    configure = next(tool for tool in listed if tool.name == "configure_serverless_storage")
    offered = configure.input_schema["properties"]["backend"]["description"]
    assert all(name in offered for name in BACKENDS), offered


async def test_all_tools_work(storage_env: dict[str, str], tmp_path: Path) -> None:
    async with served(storage_env, "--allow-configure") as session:
        created = await call(
            session,
            "create_serverless_session",
            user_id="alice",
            project_id="proj",
            session_data={"conversation_history": "free-form, as in the original", "step": 1},
            ttl_hours=0.5,
        )
        session_id = created["session_id"]
        assert created == {
            "session_id": session_id,
            "user_id": "alice",
            "project_id": "proj",
            "ttl_hours": 0.5,
        }

        got = await call(session, "get_serverless_session", session_id=session_id)
        resumed = got["session"]
        assert resumed["metadata"] == {"conversation_history": "free-form, as in the original", "step": 1}
        assert resumed["conversation_history"] == [] and resumed["idle_ttl_seconds"] == 1800
        assert got["expires_at"] is not None

        history = [{"role": "user", "content": "hi"}]
        updated = await call(
            session,
            "update_serverless_session",
            session_id=session_id,
            updates={"metadata": {"step": 2}, "conversation_history": history},
        )
        assert updated["updated_fields"] == ["conversation_history", "metadata"]
        assert updated["session"]["metadata"] == {"step": 2}
        assert updated["session"]["conversation_history"] == history
        assert updated["session"]["revision"] == resumed["revision"] + 1
        # An update is activity: the idle timeout restarts.
        assert datetime.fromisoformat(updated["expires_at"]) > datetime.fromisoformat(got["expires_at"])

        second = (await call(session, "create_serverless_session", user_id="alice", project_id="other"))[
            "session_id"
        ]
        page = await call(session, "list_serverless_sessions", user_id="alice", limit=1)
        assert [item["session_id"] for item in page["sessions"]] == [second] and page["next_cursor"]
        rest = await call(session, "list_serverless_sessions", user_id="alice", cursor=page["next_cursor"])
        assert [item["session_id"] for item in rest["sessions"]] == [session_id]
        by_project = await call(session, "list_serverless_sessions", project_id="proj")
        assert [item["session_id"] for item in by_project["sessions"]] == [session_id]

        status = await call(session, "test_serverless_storage")
        assert status["available"] is True
        assert status["backend"] == backend_of(storage_env["SERVERLESS_SESSIONS_URL"])

        short = (
            await call(
                session, "create_serverless_session", user_id="bob", project_id="p", ttl_hours=0.5 / 3600
            )
        )["session_id"]
        await asyncio.sleep(0.8)
        assert "not found" in await fails(session, "get_serverless_session", session_id=short)
        assert (await call(session, "list_serverless_sessions", user_id="bob"))["sessions"] == []
        cleaned = await call(session, "cleanup_serverless_sessions")
        assert cleaned["removed"] >= (1 if status["backend"] == "sqlite" else 0)

        assert await call(session, "delete_serverless_session", session_id=second) == {"session_id": second}
        assert "not found" in await fails(session, "get_serverless_session", session_id=second)

        other_db = tmp_path / "other.db"
        switched = await call(
            session, "configure_serverless_storage", backend="sqlite", config_updates={"path": str(other_db)}
        )
        assert switched["backend"] == "sqlite" and switched["settings"]["url"] == f"sqlite://{other_db}"
        assert "not found" in await fails(session, "get_serverless_session", session_id=session_id)


async def test_without_authentication_the_one_local_user_has_every_right(sqlite_env: dict[str, str]) -> None:
    # The HTTP tokens file in the environment is for HTTP: stdio does not read it.
    env = {**sqlite_env, "SERVERLESS_SESSIONS_MCP_TOKENS_FILE": "/no/such/tokens.json"}
    async with served(env) as session:
        message = await fails(session, "create_serverless_session", project_id="p")
        assert message.endswith(
            "create_serverless_session needs user_id (this server has no authentication to take it from)"
        )
        first = (await call(session, "create_serverless_session", user_id="ann", project_id="p"))[
            "session_id"
        ]
        second = (await call(session, "create_serverless_session", user_id="ben", project_id="p"))[
            "session_id"
        ]
        listed = await call(session, "list_serverless_sessions")
        assert {item["session_id"] for item in listed["sessions"]} == {first, second}
        assert (await call(session, "cleanup_serverless_sessions"))["removed"] == 0
        rehearsal = await call(session, "erase_user_sessions", user_id="ann", dry_run=True)
        assert (rehearsal["count"], rehearsal["session_ids"]) == (1, [first])
        erased = await call(session, "erase_user_sessions", user_id="ann")
        assert (erased["dry_run"], erased["count"], erased["session_ids"]) == (False, 1, [first])
        assert "not found" in await fails(session, "get_serverless_session", session_id=first)
        kept = await call(session, "get_serverless_session", session_id=second)
        assert kept["session"]["user_id"] == "ben"
        assert await fails(session, "configure_serverless_storage", backend="memory", config_updates={}) == (
            "Error executing tool configure_serverless_storage: configure_serverless_storage is disabled on "
            "this server: start it with `serverless-sessions serve --allow-configure` to enable it"
        )


async def test_argument_errors_are_one_line_naming_the_argument(sqlite_env: dict[str, str]) -> None:
    async with served(sqlite_env) as session:
        assert await fails(
            session, "create_serverless_session", user_id="u", project_id="p", ttl_hours=-1
        ) == (
            "Error executing tool create_serverless_session: invalid arguments: "
            "ttl_hours: Input should be greater than 0"
        )
        assert await fails(session, "update_serverless_session", session_id="s") == (
            "Error executing tool update_serverless_session: invalid arguments: updates: Field required"
        )
        message = await fails(session, "list_serverless_sessions", limit="many", project_id=["p"])
        assert message.startswith("Error executing tool list_serverless_sessions: invalid arguments: ")
        assert "limit: Input should be a valid integer" in message and "project_id: " in message
        assert "\n" not in message and "pydantic.dev" not in message and "many" not in message


def test_http_options_given_for_stdio_are_refused(tmp_path: Path) -> None:
    for option in (["--tokens-file", "t.json"], ["--insecure-no-auth"], ["--allowed-host", "example.com"]):
        result = run_cli("serve", *option, env=base_env(tmp_path), timeout=30)
        assert result.code == 2 and f"{option[0]} applies to --transport http only" in result.stderr


async def test_bad_input_is_a_tool_error(storage_env: dict[str, str]) -> None:
    async with served(storage_env) as session:
        session_id = (await call(session, "create_serverless_session", user_id="u", project_id="p"))[
            "session_id"
        ]
        unknown = "no-such-session"
        assert "not found" in await fails(session, "get_serverless_session", session_id=unknown)
        assert "not found" in await fails(session, "delete_serverless_session", session_id=unknown)
        assert "not found" in await fails(
            session, "update_serverless_session", session_id=unknown, updates={"metadata": {}}
        )
        for bad_id in ("../etc/passwd", "", "x" * 200):
            assert "invalid session id" in await fails(session, "get_serverless_session", session_id=bad_id)
        assert "immutable field 'session_id'" in await fails(
            session, "update_serverless_session", session_id=session_id, updates={"session_id": "x"}
        )
        assert "unknown field 'colour'" in await fails(
            session, "update_serverless_session", session_id=session_id, updates={"colour": "red"}
        )
        assert "created_at" in await fails(
            session, "update_serverless_session", session_id=session_id, updates={"created_at": "not-a-date"}
        )
        assert "updates" in await fails(
            session, "update_serverless_session", session_id=session_id, updates="not an object"
        )
        assert "ttl_hours" in await fails(
            session, "create_serverless_session", user_id="u", project_id="p", ttl_hours=-1
        )
        assert "user id" in await fails(session, "create_serverless_session", user_id=" ", project_id="p")
        assert "cursor" in await fails(session, "list_serverless_sessions", cursor="garbage!")
        unchanged = (await call(session, "get_serverless_session", session_id=session_id))["session"]
        assert unchanged["revision"] == 1  # nothing was written by the rejected updates


async def test_configure_refuses_a_backend_that_does_not_answer(sqlite_env: dict[str, str]) -> None:
    async with served(sqlite_env, "--allow-configure") as session:
        kept = (await call(session, "create_serverless_session", user_id="u", project_id="p"))["session_id"]
        message = await fails(
            session,
            "configure_serverless_storage",
            backend="redis",
            config_updates={"host": "127.0.0.1", "port": 1, "password": "hunter2"},
        )
        assert "unavailable" in message and "still using sqlite" in message and "hunter2" not in message
        url = await fails(
            session,
            "configure_serverless_storage",
            backend="redis",
            config_updates={"url": UNREACHABLE_REDIS},
        )
        assert "unavailable" in url
        assert "unknown backend" in await fails(
            session, "configure_serverless_storage", backend="mongodb", config_updates={}
        )
        assert "bucket" in await fails(
            session, "configure_serverless_storage", backend="s3", config_updates={}
        )
        assert "namespace" in await fails(
            session, "configure_serverless_storage", backend="memory", config_updates={"namespace": "a:b"}
        )
        assert "no_such_setting" in await fails(
            session, "configure_serverless_storage", backend="memory", config_updates={"no_such_setting": 1}
        )
        assert (await call(session, "test_serverless_storage"))["backend"] == "sqlite"
        assert (await call(session, "get_serverless_session", session_id=kept))["session"]["user_id"] == "u"


async def test_configure_never_echoes_secrets(tmp_path: Path, sqlite_env: dict[str, str]) -> None:
    with running_redis(tmp_path / "redis", "--requirepass", "hunter2") as server:
        async with served(sqlite_env, "--allow-configure") as session:
            result = await session.call_tool(
                "configure_serverless_storage",
                {
                    "backend": "redis",
                    "config_updates": {"host": "127.0.0.1", "port": server.port, "password": "hunter2"},
                },
            )
            assert isinstance(result, CallToolResult) and not result.is_error, result.content
            shown = json.dumps(result.structured_content) + text_of(result)
            assert "hunter2" not in shown
            assert result.structured_content is not None
            assert result.structured_content["settings"]["url"] == f"redis://:***@127.0.0.1:{server.port}/0"
            assert result.structured_content["previous_backend"] == "sqlite"
            session_id = (await call(session, "create_serverless_session", user_id="u", project_id="p"))[
                "session_id"
            ]
            assert (await call(session, "get_serverless_session", session_id=session_id))["session"][
                "user_id"
            ] == "u"
            assert (await call(session, "test_serverless_storage"))["backend"] == "redis"


async def test_streamable_http_transport(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path, SERVERLESS_SESSIONS_URL="memory://")
    server = await asyncio.create_subprocess_exec(
        str(SCRIPT), "serve", "--transport", "http", "--port", str(port), "--insecure-no-auth",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await _wait_for_port(server, port)
        async with (
            streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            assert len((await session.list_tools()).tools) == len(TOOLS)
            created = await call(session, "create_serverless_session", user_id="u", project_id="p")
            fetched = await call(session, "get_serverless_session", session_id=created["session_id"])
            assert fetched["session"]["user_id"] == "u"
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)


async def _wait_for_port(server: asyncio.subprocess.Process, port: int) -> None:
    async with asyncio.timeout(20):
        while True:
            assert server.returncode is None, "the HTTP server exited"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            await writer.wait_closed()
            return


async def test_create_honours_default_ttl_and_touch_renews(sqlite_env: dict[str, str]) -> None:
    async with served({**sqlite_env, "SERVERLESS_SESSIONS_DEFAULT_TTL": "600"}) as session:
        created = await call(session, "create_serverless_session", user_id="u", project_id="p")
        assert created["ttl_hours"] == 600 / 3600
        session_id = created["session_id"]
        got = await call(session, "get_serverless_session", session_id=session_id)
        assert got["session"]["idle_ttl_seconds"] == 600

        touched = await call(session, "touch_serverless_session", session_id=session_id, ttl_hours=2)
        assert touched["session_id"] == session_id and touched["idle_ttl_hours"] == 2
        last = datetime.fromisoformat(touched["last_activity"])
        expires = datetime.fromisoformat(touched["expires_at"])
        assert abs(expires - last - timedelta(hours=2)) < timedelta(seconds=1)
        again = await call(session, "touch_serverless_session", session_id=session_id)
        assert again["idle_ttl_hours"] == 2 and datetime.fromisoformat(again["expires_at"]) > expires
        summary = text_of(await session.call_tool("touch_serverless_session", {"session_id": session_id}))
        assert "expires at" in summary

        after = await call(session, "get_serverless_session", session_id=session_id)
        assert after["session"]["revision"] == 4 and after["session"]["metadata"] == {}
        assert "not found" in await fails(session, "touch_serverless_session", session_id="no-such-session")
        assert "ttl_hours" in await fails(
            session, "touch_serverless_session", session_id=session_id, ttl_hours=0
        )
    async with served(sqlite_env) as session:
        default = await call(session, "create_serverless_session", user_id="u", project_id="p")
        assert default["ttl_hours"] == 24


async def test_the_configured_max_lifetime_caps_every_session(sqlite_env: dict[str, str]) -> None:
    async with served({**sqlite_env, "SERVERLESS_SESSIONS_MAX_LIFETIME": "3600"}) as session:
        created = await call(session, "create_serverless_session", user_id="u", project_id="p", ttl_hours=5)
        got = await call(session, "get_serverless_session", session_id=created["session_id"])
        started = datetime.fromisoformat(got["session"]["created_at"])
        deadline = datetime.fromisoformat(got["session"]["absolute_expires_at"])
        assert abs(deadline - started - timedelta(hours=1)) < timedelta(seconds=1)
        assert abs(datetime.fromisoformat(got["expires_at"]) - deadline) < timedelta(seconds=1)


async def test_a_session_too_large_to_read_back_is_a_tool_error(sqlite_env: dict[str, str]) -> None:
    huge = {"blob": "x" * (3 * 1024 * 1024)}  # compresses to a few KB; decodes to 3 MB
    async with served(sqlite_env) as session:
        create = {"user_id": "u", "project_id": "p"}
        session_id = (await call(session, "create_serverless_session", **create, session_data={"a": 1}))[
            "session_id"
        ]
        message = await fails(
            session, "update_serverless_session", session_id=session_id, updates={"metadata": huge}
        )
        assert "limit" in message and str(1024 * 1024) in message
        created = await fails(session, "create_serverless_session", **create, session_data=huge)
        assert "limit" in created
        kept = (await call(session, "get_serverless_session", session_id=session_id))["session"]
        assert kept["metadata"] == {"a": 1} and kept["revision"] == 1
        assert len((await call(session, "list_serverless_sessions", user_id="u"))["sessions"]) == 1

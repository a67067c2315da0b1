"""The HTTP transport as deployed: bearer tokens, per-principal scoping, rebinding protection.

Each test starts a real ``serverless-sessions serve --transport http`` on a free loopback port
(SQLite storage in the test's directory) and talks to it with the official ``mcp`` client over
streamable HTTP; HTTP statuses and headers are observed through that client's own HTTP layer.
A session of another principal must be indistinguishable from a missing one, so those answers
are compared whole, with only the session id swapped.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent

from serverless_sessions.ids import new_session_id
from serverless_sessions.mcp_server import ADMIN_SCOPE
from tests.cli_helpers import SCRIPT, base_env, run_cli
from tests.redis_servers import free_port

ALICE, BOB, ROOT = (secrets.token_urlsafe(24) for _ in range(3))
TOKENS: dict[str, dict[str, Any]] = {
    ALICE: {"principal": "alice"},
    BOB: {"principal": "bob", "admin": False},
    ROOT: {"principal": "root", "admin": True},
}
FIRST, SECOND = "first-token-5f0c2a9e81d4b7", "second-token-b3e8d1f07a6c42"  # stable test ids
STARTUP_SECONDS = 30
ROOT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Server:
    """A running ``serve --transport http``, and the file its stderr goes to."""

    url: str
    port: int
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text()


def tokens_file(tmp_path: Path, tokens: object = TOKENS) -> Path:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(tokens))
    return path


@contextmanager
def serving(tmp_path: Path, *args: str, **env: str) -> Iterator[Server]:
    """``serve --transport http ARGS`` on a free port, up (its startup line printed) or failed."""
    port = free_port()
    environment = base_env(
        tmp_path,
        SERVERLESS_SESSIONS_URL=f"sqlite://{tmp_path / 'sessions.db'}",
        PYTHONPATH=str(ROOT_DIR),  # for the --token-verifier factory in this module
        **env,
    )
    stderr_path = tmp_path / f"serve-{port}.stderr"
    command = [str(SCRIPT), "serve", "--transport", "http", "--port", str(port), *args]
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=stderr)
    server = Server(f"http://127.0.0.1:{port}/mcp", port, stderr_path)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while "MCP server at" not in server.stderr():
            assert process.poll() is None, f"serve exited {process.returncode}: {server.stderr()}"
            assert time.monotonic() < deadline, f"serve did not start: {server.stderr()}"
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


@asynccontextmanager
async def connect(
    server: Server, token: str | None, **headers: str
) -> AsyncIterator[tuple[ClientSession, list[httpx2.Response]]]:
    """An (uninitialised) client session sending ``token``; also every HTTP response it got."""
    seen: list[httpx2.Response] = []

    async def record(response: httpx2.Response) -> None:
        seen.append(response)

    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30, event_hooks={"response": [record]}) as http,
        streamable_http_client(server.url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        yield session, seen


@asynccontextmanager
async def client(server: Server, token: str) -> AsyncIterator[ClientSession]:
    """An initialised client session authenticated by ``token``."""
    async with connect(server, token) as (session, _):
        await session.initialize()
        yield session


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1 and isinstance(result.content[0], TextContent)
    return result.content[0].text


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {text_of(result)}"
    assert result.structured_content is not None
    return dict(result.structured_content)


async def fails(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error and result.structured_content is None, f"{tool} succeeded"
    return text_of(result)


def refused(server: Server, token: str | None, **headers: str) -> list[httpx2.Response]:
    """The HTTP responses to an ``initialize`` that must fail; the client raises for it."""

    async def attempt() -> list[httpx2.Response]:
        async with connect(server, token, **headers) as (session, seen):
            with pytest.raises(MCPError):
                await session.initialize()
        return seen

    return asyncio.run(attempt())


def test_a_request_without_a_valid_token_is_401_with_the_resource_metadata(tmp_path: Path) -> None:
    with serving(tmp_path, "--tokens-file", str(tokens_file(tmp_path))) as server:
        metadata_url = f"http://127.0.0.1:{server.port}/.well-known/oauth-protected-resource/mcp"
        wrong = secrets.token_urlsafe(24)
        for token in (None, wrong, ALICE[:-1], f"{ALICE}x"):
            (response,) = refused(server, token)
            assert response.status_code == 401
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
            assert f'resource_metadata="{metadata_url}"' in challenge
        metadata = httpx2.get(metadata_url).json()
        assert metadata["resource"] == server.url and metadata["bearer_methods_supported"] == ["header"]

        startup = server.stderr().splitlines()[0]
        assert server.url in startup and f"tokens file {str(tmp_path / 'tokens.json')!r}" in startup
        assert "3 token(s) for 3 principal(s), 1 admin" in startup
        assert "storage reconfiguration: off" in startup
    for token in (*TOKENS, wrong):
        assert token not in server.stderr()


async def test_a_principal_sees_and_changes_only_its_own_sessions(tmp_path: Path) -> None:
    with serving(tmp_path, "--tokens-file", str(tokens_file(tmp_path))) as server:
        async with client(server, ALICE) as alice, client(server, BOB) as bob:
            mine = await call(alice, "create_serverless_session", project_id="p")
            assert mine["user_id"] == "alice"
            named = await call(alice, "create_serverless_session", project_id="q", user_id="alice")
            assert named["user_id"] == "alice"
            assert "'bob' is not yours" in await fails(
                alice, "create_serverless_session", project_id="p", user_id="bob"
            )
            theirs = (
                await call(bob, "create_serverless_session", project_id="p", session_data={"note": "bob's"})
            )["session_id"]
            turn = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
            appended = await call(
                alice, "append_to_serverless_session", session_id=mine["session_id"], messages=turn
            )
            assert appended["message_count"] == 2
            newest = await call(alice, "get_serverless_session", session_id=mine["session_id"], last=1)
            assert newest["session"]["conversation_history"] == turn[1:] and newest["message_count"] == 2
            cursor = newest["messages_cursor"]  # alice's own, tried on bob's session below

            missing = new_session_id()
            for tool, extra in (
                ("get_serverless_session", {}),
                ("get_serverless_session", {"last": 1}),
                ("get_serverless_session", {"last": 1, "before": cursor}),
                ("append_to_serverless_session", {"messages": [{"role": "user", "content": "stolen"}]}),
                ("update_serverless_session", {"updates": {"metadata": {"stolen": True}}}),
                ("touch_serverless_session", {"ttl_hours": 1}),
                ("delete_serverless_session", {}),
            ):
                foreign = await alice.call_tool(tool, {"session_id": theirs, **extra})
                absent = await alice.call_tool(tool, {"session_id": missing, **extra})
                assert foreign.is_error and "not found" in text_of(foreign)
                assert _with_id(foreign, theirs, "ID") == _with_id(absent, missing, "ID"), tool

            listed = await call(alice, "list_serverless_sessions")
            assert {item["session_id"] for item in listed["sessions"]} == {
                mine["session_id"],
                named["session_id"],
            }
            by_project = await call(alice, "list_serverless_sessions", project_id="p", user_id="alice")
            assert [item["session_id"] for item in by_project["sessions"]] == [mine["session_id"]]
            assert "'bob' is not yours" in await fails(alice, "list_serverless_sessions", user_id="bob")

            kept = (await call(bob, "get_serverless_session", session_id=theirs))["session"]
            assert kept["metadata"] == {"note": "bob's"} and kept["revision"] == 1
            assert kept["conversation_history"] == []
            assert [
                item["session_id"] for item in (await call(bob, "list_serverless_sessions"))["sessions"]
            ] == [theirs]
            await call(bob, "delete_serverless_session", session_id=theirs)
    for token in TOKENS:
        assert token not in server.stderr()


def _with_id(result: CallToolResult, session_id: str, placeholder: str) -> str:
    return json.dumps(result.model_dump(mode="json"), sort_keys=True).replace(session_id, placeholder)


async def test_only_an_admin_cleans_up_and_reconfiguration_needs_the_flag(tmp_path: Path) -> None:
    with serving(tmp_path, "--tokens-file", str(tokens_file(tmp_path))) as server:
        async with client(server, ALICE) as alice, client(server, ROOT) as root:
            await call(alice, "create_serverless_session", project_id="p", ttl_hours=0.2 / 3600)
            await asyncio.sleep(0.5)
            message = await fails(alice, "cleanup_serverless_sessions")
            assert "needs an admin principal; 'alice' is not one" in message
            assert (await call(root, "cleanup_serverless_sessions"))["removed"] == 1

            for session in (alice, root):
                message = await fails(
                    session, "configure_serverless_storage", backend="memory", config_updates={}
                )
                assert "serverless-sessions serve --allow-configure" in message
            assert (await call(root, "test_serverless_storage"))["backend"] == "sqlite"


async def test_only_an_admin_erases_a_user(tmp_path: Path) -> None:
    with serving(tmp_path, "--tokens-file", str(tokens_file(tmp_path))) as server:
        async with client(server, ALICE) as alice, client(server, BOB) as bob, client(server, ROOT) as root:
            doomed = (await call(alice, "create_serverless_session", project_id="p"))["session_id"]
            kept = (await call(bob, "create_serverless_session", project_id="p"))["session_id"]
            for user in ("alice", "bob"):  # not even oneself: erasure is an admin's act
                for dry_run in (True, False):
                    message = await fails(alice, "erase_user_sessions", user_id=user, dry_run=dry_run)
                    assert "erase_user_sessions needs an admin principal; 'alice' is not one" in message
            untouched = await call(alice, "get_serverless_session", session_id=doomed)
            assert untouched["session"]["revision"] == 1

            erased = await call(root, "erase_user_sessions", user_id="alice")
            assert (erased["user_id"], erased["count"], erased["session_ids"]) == ("alice", 1, [doomed])
            assert (await call(alice, "list_serverless_sessions"))["sessions"] == []
            assert (await call(bob, "get_serverless_session", session_id=kept))["session"]["revision"] == 1


async def test_with_the_flag_an_admin_reconfigures_this_server_process(tmp_path: Path) -> None:
    tokens = tokens_file(tmp_path)
    with serving(tmp_path, "--allow-configure", SERVERLESS_SESSIONS_MCP_TOKENS_FILE=str(tokens)) as server:
        assert "storage reconfiguration: admin principals only" in server.stderr()
        async with client(server, ALICE) as alice, client(server, ROOT) as root:
            kept = (await call(alice, "create_serverless_session", project_id="p"))["session_id"]
            message = await fails(alice, "configure_serverless_storage", backend="memory", config_updates={})
            assert "needs an admin principal" in message
            result = await root.call_tool(
                "configure_serverless_storage", {"backend": "memory", "config_updates": {}}
            )
            assert not result.is_error and "this server process" in text_of(result)
            assert (await call(alice, "test_serverless_storage"))["backend"] == "memory"
            assert "not found" in await fails(alice, "get_serverless_session", session_id=kept)


def test_a_foreign_host_or_origin_is_refused(tmp_path: Path) -> None:
    tokens = str(tokens_file(tmp_path))
    with serving(tmp_path, "--tokens-file", tokens, "--allowed-host", "sessions.example.com") as server:
        (response,) = refused(server, ALICE, Host="evil.example")
        assert response.status_code == 421
        (response,) = refused(server, ALICE, Host=f"evil.example:{server.port}")
        assert response.status_code == 421
        (response,) = refused(server, ALICE, Origin="http://evil.example")
        assert response.status_code == 403
        (response,) = refused(server, ALICE, Origin=f"http://evil.example:{server.port}")
        assert response.status_code == 403

        async def through_the_proxy() -> str:
            proxied = {"Host": "sessions.example.com", "Origin": "https://sessions.example.com"}
            async with connect(server, ALICE, **proxied) as (session, _):
                initialized = await session.initialize()
                created = await call(session, "create_serverless_session", project_id="p")
            return f"{initialized.server_info.version} {created['user_id']}"

        assert asyncio.run(through_the_proxy()) == f"{version('serverless-sessions')} alice"


class SignedTokens:
    """A deployment's own verifier, as ``--token-verifier`` loads it: ``user.signature`` tokens.

    Its principal is the token's subject, not the OAuth client, as with a JWT's ``sub``.
    """

    key = b"test-only-signing-key"

    def sign(self, user: str) -> str:
        return f"{user}.{hmac.new(self.key, user.encode(), 'sha256').hexdigest()}"

    async def verify_token(self, token: str) -> AccessToken | None:
        user, _, _ = token.partition(".")
        if not hmac.compare_digest(token, self.sign(user)):
            return None
        scopes = [ADMIN_SCOPE] if user == "ops" else []
        return AccessToken(token=token, client_id="some-client-app", subject=user, scopes=scopes)


def signed_tokens() -> SignedTokens:
    return SignedTokens()


async def test_a_verifier_of_ones_own_plugs_in(tmp_path: Path) -> None:
    spec = f"{__name__}:signed_tokens"
    signer = SignedTokens()
    with serving(tmp_path, "--token-verifier", spec) as server:
        assert f"auth: bearer tokens checked by {spec}" in server.stderr()
        async with client(server, signer.sign("carol")) as carol, client(server, signer.sign("ops")) as ops:
            created = await call(carol, "create_serverless_session", project_id="p")
            assert created["user_id"] == "carol"
            assert "not found" in await fails(ops, "get_serverless_session", session_id=created["session_id"])
            assert "admin" in await fails(carol, "cleanup_serverless_sessions")
            assert (await call(ops, "cleanup_serverless_sessions"))["removed"] == 0
        (response,) = await asyncio.to_thread(refused, server, "carol.forged")
        assert response.status_code == 401


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "refusing to serve HTTP without authentication: give --tokens-file PATH"),
        (("--insecure-no-auth", "--host", "0.0.0.0"), "loopback host only"),
        (("--insecure-no-auth", "--host", "192.0.2.1"), "not '192.0.2.1'"),
        (("--tokens-file", "missing.json"), "cannot read tokens file 'missing.json'"),
        (("--token-verifier", "no_such_module:factory"), "cannot import 'no_such_module'"),
        (("--token-verifier", "json"), "expected 'package.module:factory'"),
        (("--insecure-no-auth", "--allowed-host", "a/b"), "allowed host 'a/b': expected NAME"),
        (("--insecure-no-auth", "--public-url", "ftp://x/mcp"), "public URL 'ftp://x/mcp'"),
    ],
)
def test_an_unsafe_or_broken_http_setup_refuses_to_start_in_one_line(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    env = base_env(tmp_path, SERVERLESS_SESSIONS_URL="memory://")
    result = run_cli("serve", "--transport", "http", "--port", str(free_port()), *args, env=env, timeout=30)
    assert result.code == 2, result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    env = base_env(tmp_path, SERVERLESS_SESSIONS_URL="memory://")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--transport", "http", "--port", str(port), "--insecure-no-auth", env=env)
    assert result.code == 2 and f"cannot listen on 127.0.0.1 port {port}" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "MCP server at" not in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{", "is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ("[]", "must hold a JSON object"),
        ("{}", "no tokens"),
        (json.dumps({FIRST: "alice"}), "entry 1: must be an object like"),
        (json.dumps({FIRST: {"admin": True}}), "entry 1: 'principal' is missing"),
        (json.dumps({FIRST: {"principal": " "}}), "entry 1: invalid principal"),
        (json.dumps({FIRST: {"principal": "a", "role": "x"}}), "entry 1: unknown field 'role'"),
        (json.dumps({SECOND: {"principal": "b"}, FIRST: {"principal": "a", "admin": "yes"}}), "entry 2"),
        (json.dumps({"short-token": {"principal": "a"}}), "shorter than 16 characters"),
        (json.dumps({f"{FIRST} x": {"principal": "a"}}), "characters a bearer token cannot carry"),
        (
            f'{{"{FIRST}": {{"principal": "a"}}, "{FIRST}": {{"principal": "b"}}}}',
            "the same token as entry 1",
        ),
    ],
)
def test_a_bad_tokens_file_is_named_without_echoing_a_token(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content)
    env = base_env(tmp_path, SERVERLESS_SESSIONS_URL="memory://")
    result = run_cli("serve", "--transport", "http", "--tokens-file", str(path), env=env, timeout=30)
    assert result.code == 2, result.stderr
    assert f"tokens file {str(path)!r}" in result.stderr and expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    for token in (FIRST, SECOND):
        assert token not in result.stderr

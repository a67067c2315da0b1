"""Secrets: with a Redis password and an encryption key configured, neither appears in logs (at
DEBUG, every logger), reprs, stats, health reports, error messages and tracebacks, CLI output
or MCP tool results — on the success paths and on the failure paths.

The Redis server is a private ``redis-server --requirepass``, so the password is really used.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp
import pytest

from serverless_sessions.cli import main as cli_main
from serverless_sessions.config.settings import load_settings
from serverless_sessions.encryption import KeyRing, generate_key
from serverless_sessions.errors import ConfigurationError, SessionError
from serverless_sessions.factory import create_session_storage
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.mcp_server import StorageHolder, build_server
from serverless_sessions.operations.reencryption import reencrypt
from tests.redis_servers import RedisProcess, running_redis

PASSWORD = "pw-" + secrets.token_hex(16)
WRONG_PASSWORD = "wrong-" + secrets.token_hex(16)
OLD_KEY = generate_key("old")
KEY = generate_key("prod")


def key_forms(entry: str) -> list[str]:
    """The ways a key could leak: its text, a prefix of it, its bytes in hex and urlsafe b64."""
    text = entry.partition(":")[2]
    raw = base64.b64decode(text)
    return [text, text[:16], raw.hex(), base64.urlsafe_b64encode(raw).decode()[:16]]


SECRETS = [PASSWORD, WRONG_PASSWORD, *key_forms(KEY), *key_forms(OLD_KEY)]


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked into {where}:\n{text[:2000]}"


def exception_text(exc: BaseException) -> str:
    """Message, repr and the full chained traceback (what --debug or a log handler shows)."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    with running_redis(tmp_path_factory.mktemp("secret-redis"), "--requirepass", PASSWORD) as srv:
        yield srv


def url_for(server: RedisProcess, password: str = PASSWORD, **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in {"key_prefix": "secrets", **query}.items())
    return f"redis://:{password}@127.0.0.1:{server.port}/0?{params}"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    records = [
        f"{r.name} {r.levelname} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records
    ]
    assert_clean("\n".join(records) + caplog.text, "the logs")


async def test_library_paths_never_show_secrets(
    server: RedisProcess, debug_logs: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    shown: list[str] = []
    settings = load_settings(url=url_for(server), encryption_keys=f"{OLD_KEY},{KEY}", namespace="s")
    shown += [repr(settings), str(settings), json.dumps(settings.public_dict())]
    shown.append(str(settings.masked_url()))
    async with create_session_storage(settings) as storage:
        manager = ServerlessSessionManager(storage)
        shown += [repr(storage), repr(storage.cache), repr(storage.encryptor), repr(manager)]
        sid = await manager.create_session("alice", "proj", {"note": "hello"})
        await manager.update_session(sid, {"metadata": {"note": "again"}})
        shown.append(repr(await manager.get_session(sid)))
        shown.append((await manager.list_sessions(user_id="alice")).model_dump_json())
        shown.append(json.dumps(manager.get_session_stats(), default=str))
        shown.append(json.dumps(await manager.collect_stats(), default=str))
        shown.append(json.dumps(await storage.health(), default=str))
        shown.append(json.dumps(storage.describe(), default=str))
        shown.append(repr(await reencrypt(storage, checkpoint=tmp_path / "ckpt.json")))
        assert await manager.cleanup_sessions() == 0
        assert await manager.delete_session(sid)
    for index, text in enumerate(shown):
        assert_clean(text, f"shown[{index}]")


async def test_failure_paths_never_show_secrets(
    server: RedisProcess, debug_logs: pytest.LogCaptureFixture
) -> None:
    failures: list[BaseException] = []

    async def expect_failure(url: str, keys: str = KEY) -> None:
        try:
            settings = load_settings(url=url, encryption_keys=keys)
            async with create_session_storage(settings) as storage:
                await ServerlessSessionManager(storage).create_session("u", "p")
        except SessionError as exc:
            failures.append(exc)
        else:
            raise AssertionError(f"no failure for {url!r}")

    await expect_failure(url_for(server, WRONG_PASSWORD))  # refused credentials
    await expect_failure(url_for(server).replace(str(server.port), "1", 1) + "&retry_attempts=0")
    await expect_failure(url_for(server, socket_timeout="-3"))  # a bad setting, password in URL
    await expect_failure(url_for(server, no_such_option="1"))
    await expect_failure(url_for(server).replace("redis://", "redis+bogus://"))
    await expect_failure(url_for(server), keys=KEY.replace(":", ":!"))  # malformed key
    await expect_failure(url_for(server), keys=KEY[:-6])  # truncated key
    with pytest.raises(ConfigurationError) as caught:
        load_settings(url=url_for(server), encryption_keys=KEY, timeout="soon")
    failures.append(caught.value)

    # A session sealed under one key, read with another: the DecryptionError names the key id.
    async with create_session_storage(
        load_settings(url=url_for(server), encryption_keys=KEY, namespace="dec")
    ) as storage:
        sid = await ServerlessSessionManager(storage).create_session("u", "p")
        other = generate_key("prod")
        SECRETS.extend(key_forms(other))
        stranger = create_session_storage(
            load_settings(url=url_for(server), encryption_keys=other, namespace="dec")
        )
        async with stranger:
            try:
                await stranger.load_session(sid)
            except SessionError as exc:
                failures.append(exc)
        await storage.delete_session(sid)

    assert len(failures) == 9, failures
    for exc in failures:
        assert_clean(exception_text(exc), f"{type(exc).__name__}")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli_main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_cli_output_never_shows_secrets(
    server: RedisProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    for name in ("URL", "ENCRYPTION_KEYS", "NAMESPACE", "CONFIG"):
        monkeypatch.delenv(f"SERVERLESS_SESSIONS_{name}", raising=False)
    monkeypatch.setenv("SERVERLESS_SESSIONS_URL", url_for(server))
    monkeypatch.setenv("SERVERLESS_SESSIONS_ENCRYPTION_KEYS", f"{OLD_KEY},{KEY}")
    monkeypatch.setenv("SERVERLESS_SESSIONS_NAMESPACE", "cli")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("NO_COLOR", "1")
    outputs: list[tuple[tuple[str, ...], int, str]] = []

    def run(*args: str) -> str:
        code, text = run_cli(capsys, *args)
        outputs.append((args, code, text))
        return text

    created = json.loads(run("--json", "create", "alice", "proj", "--data", '{"note": "hello"}'))
    sid = str(created["session_id"])
    for mode in ((), ("--json",)):
        run(*mode, "get", sid)
        run(*mode, "update", sid, '{"metadata": {"n": 1}}')
        run(*mode, "touch", sid)
        run(*mode, "list", "--user", "alice")
        run(*mode, "stats")
        run(*mode, "health")
        run(*mode, "config", "show")
        run(*mode, "reencrypt", "--checkpoint", str(tmp_path / "c.json"))
        run(*mode, "cleanup")
        run(*mode, "--debug", "--url", url_for(server, WRONG_PASSWORD), "get", sid)
        run(*mode, "--debug", "--url", url_for(server, socket_timeout="-1"), "health")
    run("delete", sid)
    for args, code, text in outputs:
        assert (code != 0) == ("--debug" in args), (args, code, text)
    for args, _, text in outputs:
        assert_clean(text, f"CLI output of {args}")


async def test_mcp_results_never_show_secrets(
    server: RedisProcess, debug_logs: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(url=url_for(server), encryption_keys=KEY, namespace="mcp")
    holder = StorageHolder(settings)
    results: list[tuple[str, Any]] = []
    try:
        async with mcp.Client(build_server(holder, allow_configure=True)) as client:

            async def call(tool: str, **arguments: Any) -> Any:
                result = await client.call_tool(tool, arguments)
                results.append((tool, result))
                return result

            created = await call("create_serverless_session", user_id="u", project_id="p")
            assert not created.is_error, created
            sid = created.structured_content["session_id"]
            await call("get_serverless_session", session_id=sid)
            await call("update_serverless_session", session_id=sid, updates={"metadata": {}})
            await call("touch_serverless_session", session_id=sid)
            await call("list_serverless_sessions", user_id="u")
            await call("test_serverless_storage")
            await call("cleanup_serverless_sessions")
            refused = await call(
                "configure_serverless_storage",
                backend="redis",
                config_updates={"host": "127.0.0.1", "port": server.port, "password": WRONG_PASSWORD},
            )
            assert refused.is_error
            switched = await call(
                "configure_serverless_storage",
                backend="redis",
                config_updates={"url": url_for(server), "namespace": "mcp"},
            )
            assert not switched.is_error, switched
            resumed = await call("get_serverless_session", session_id=sid)
            assert not resumed.is_error, resumed  # same server, prefix, namespace and keys
            await call("test_serverless_storage")
            await call("delete_serverless_session", session_id=sid)
            await call("get_serverless_session", session_id=sid)  # an error result
    finally:
        await holder.close()
    for tool, result in results:
        assert_clean(result.model_dump_json(), f"the result of {tool}")


def test_keyring_repr_and_settings_masking() -> None:
    ring = KeyRing.from_setting(f"{OLD_KEY},{KEY}")
    settings = load_settings(url="redis://:" + PASSWORD + "@h:1/0", encryption_keys=KEY)
    for text in (repr(ring), str(ring), repr(settings), json.dumps(settings.public_dict())):
        assert_clean(text, "a repr")
    assert settings.public_dict()["encryption_keys"] == "***"

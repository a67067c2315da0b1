"""From an old config to the new one with the real CLI, on one Redis database, nothing broken.

The path a user takes: sessions created through the old config, ``config migrate`` writing the
new config and printing the command to run next, new sessions created through the new config
meanwhile, that command run as printed — and through all of it both configs keep reading what
they should, the old one its legacy sessions (without ``WRONGTYPE``), the new one the migrated
sessions and its own.
"""

from __future__ import annotations

import json
import shlex
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from serverless_sessions.cli.exits import ExitCode
from tests.cache_factories.redis import delete_prefix
from tests.cli_helpers import SCRIPT, base_env, ok, run_cli

REDIS_DB = 13
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
SECRET = "pw-never-printed"


@pytest.fixture
async def owner() -> AsyncIterator[str]:
    """A key prefix root of this test in db 13; its keys and the converted ones are deleted after."""
    value = f"t-{uuid.uuid4().hex[:12]}"
    yield value
    for prefix in (value, f"{value}.v2"):
        await delete_prefix(prefix, REDIS_URL)


def write_plan_config(path: Path, **storage_config: Any) -> Path:
    path.write_text(json.dumps({"serverless": {"storage_type": "redis", "storage_config": storage_config}}))
    return path


def listed(config: Path, env: dict[str, str]) -> set[str]:
    return {item["session_id"] for item in ok("--config", str(config), "list", env=env)["sessions"]}


def test_old_config_create_convert_create_migrate_and_both_still_read(tmp_path: Path, owner: str) -> None:
    env = base_env(tmp_path)
    old = write_plan_config(
        tmp_path / "old.json", host="127.0.0.1", port=6379, db=REDIS_DB, key_prefix=f"{owner}:"
    )
    new = tmp_path / "new.json"
    kept = ok("--config", str(old), "create", "alice", "pp", env=env)["session_id"]

    converted = ok("config", "migrate", str(old), "-o", str(new), env=env)
    assert converted["next_command"] == f"serverless-sessions migrate --from {old} --to {new}"
    assert json.loads(new.read_text())["acb"]["cache"]["key_prefix"] == f"{owner}.v2"
    shown = run_cli("config", "migrate", str(old), "-o", str(tmp_path / "again.json"), env=env)
    assert shown.code == 0 and f"serverless-sessions migrate --from {old} --to" in shown.stdout

    added = ok("--config", str(new), "create", "i", "pp", env=env)["session_id"]
    assert listed(old, env) == {kept}, "a session of the new config must not reach the old layout"
    assert listed(new, env) == {added}

    program, *arguments = shlex.split(converted["next_command"])
    assert program == SCRIPT.name
    report = ok(*arguments, env=env)
    assert (report["migrated"], report["verified"], report["failed"]) == (1, 1, {})

    assert listed(old, env) == {kept}
    assert ok("--config", str(old), "get", kept, env=env)["user_id"] == "alice"
    assert ok("--config", str(old), "list", "--project", "pp", env=env)["sessions"][0]["session_id"] == kept
    assert listed(new, env) == {kept, added}
    assert ok("--config", str(new), "get", kept, env=env)["user_id"] == "alice"
    assert ok("--config", str(new), "get", added, env=env)["user_id"] == "i"
    again = ok(*arguments, env=env)  # run twice: nothing copied twice, nothing overwritten
    assert (again["migrated"], again["already_present"]) == (0, 1)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (
            {"serverless": {"storage_type": "redis", "storage_config": {"port": "sixthousand"}}},
            "serverless.storage_config.port",
        ),
        ({"storage_backend": "redis", "backends": {"redis": {"port": "sixthousand"}}}, "backends.redis.port"),
        ({"acb": {"cache": {"provider": "redis", "port": "sixthousand"}}}, "acb.cache.port"),
        ({"storage_backend": "redus"}, "storage_backend"),
        ({"serverless": {"storage_type": "redis", "storage_config": {"hots": "h"}}}, "storage_config.hots"),
    ],
)
def test_config_migrate_refuses_an_invalid_old_file(
    tmp_path: Path, document: dict[str, Any], field: str
) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps(document))
    new = tmp_path / "new.json"
    result = run_cli("config", "migrate", str(old), "-o", str(new), env=base_env(tmp_path))
    assert result.code == ExitCode.USAGE, result.stderr
    assert str(old) in result.stderr and field in result.stderr
    assert not new.exists() and list(tmp_path.iterdir()) == [old], "nothing written"
    preview = run_cli("config", "migrate", str(old), env=base_env(tmp_path))
    assert preview.code == ExitCode.USAGE and preview.stdout == ""


def test_the_next_command_carries_no_password(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    old = write_plan_config(tmp_path / "old.json", host="127.0.0.1", port=6379, db=REDIS_DB, password=SECRET)
    new = tmp_path / "new.json"
    for extra in ([], ["--json"]):
        result = run_cli("config", "migrate", str(old), "-o", str(new), "--force", *extra, env=env)
        assert result.code == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert f"migrate --from {old} --to {new}" in result.stdout
    assert json.loads(new.read_text())["acb"]["cache"]["password"] == SECRET  # the file holds it
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    preview = run_cli("config", "migrate", str(old), env=env)
    assert SECRET not in preview.stdout + preview.stderr
    assert f"serverless-sessions migrate --from {old} --to FILE" in preview.stderr


def test_config_migrate_keeps_the_old_file_and_says_when_nothing_moves(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    old = write_plan_config(tmp_path / "old.json", host="127.0.0.1", db=REDIS_DB)
    overwrite = run_cli("config", "migrate", str(old), "-o", str(old), "--force", env=env)
    assert overwrite.code == ExitCode.USAGE and "keep it to migrate from" in overwrite.stderr
    assert "serverless" in json.loads(old.read_text())

    current = tmp_path / "current.json"
    current.write_text(json.dumps({"acb": {"cache": {"provider": "sqlite", "path": str(tmp_path / "s.db")}}}))
    result = ok("config", "migrate", str(current), "-o", str(tmp_path / "copy.json"), env=env)
    assert result["next_command"] is None

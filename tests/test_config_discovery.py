"""Without a named config file: SERVERLESS_SESSIONS_CONFIG, else the original module's file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from serverless_sessions import load_settings


def test_the_original_config_file_is_found_where_the_original_kept_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SERVERLESS_SESSIONS_CONFIG", raising=False)
    monkeypatch.delenv("SERVERLESS_SESSIONS_URL", raising=False)
    assert load_settings().legacy_url_value() is None
    original = tmp_path / ".claude" / "data" / "serverless_config.json"
    original.parent.mkdir(parents=True)
    storage_dir = tmp_path / "sessions"
    original.write_text(
        json.dumps({"storage_backend": "local", "backends": {"local": {"storage_dir": str(storage_dir)}}})
    )
    with pytest.warns(DeprecationWarning):
        settings = load_settings()
    assert settings.legacy_url_value() == f"legacy+local://{storage_dir}"


def test_the_config_variable_names_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SERVERLESS_SESSIONS_URL", raising=False)
    config = tmp_path / "sessions.json"
    config.write_text(json.dumps({"acb": {"cache": {"provider": "memory", "default_ttl": 60}}}))
    monkeypatch.setenv("SERVERLESS_SESSIONS_CONFIG", str(config))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = load_settings()
    assert settings.default_ttl == 60
    assert settings.url_value() == "memory://"

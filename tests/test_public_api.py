"""The public surface: the seed's names import from the package, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import serverless_sessions


def test_all_names_resolve() -> None:
    for name in serverless_sessions.__all__:
        assert getattr(serverless_sessions, name) is not None, name


def test_seed_names_are_public() -> None:
    for name in (
        "SessionState",
        "SessionStorage",
        "ACBCacheStorage",
        "create_session_storage",
        "ServerlessSessionManager",
        "SessionNotFoundError",
        "SessionConflictError",
        "SessionTooLargeError",
        "InvalidSessionIdError",
        "CorruptSessionError",
        "StorageUnavailableError",
        "ConfigurationError",
        "ServerlessConfigManager",
    ):
        assert name in serverless_sessions.__all__


def test_every_error_shares_one_root() -> None:
    errors = [
        obj
        for name in serverless_sessions.__all__
        if isinstance(obj := getattr(serverless_sessions, name), type) and issubclass(obj, Exception)
    ]
    assert len(errors) >= 12
    assert all(issubclass(error, serverless_sessions.SessionError) for error in errors)


def test_import_pulls_in_no_backend_library() -> None:
    code = (
        "import sys, serverless_sessions\n"
        "from serverless_sessions.adapters.cache import memory\n"
        "heavy = [m for m in ('redis', 'aiobotocore', 'botocore', 'mcp', 'brotli', 'cryptography')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

"""An old-format config keeps serving the sessions users already have, in the original layout."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

from serverless_sessions import ServerlessSessionManager, load_settings


async def test_original_config_file_serves_the_original_local_layout(tmp_path: Path) -> None:
    storage_dir = tmp_path / "sessions"
    storage_dir.mkdir()
    original = {
        "session_id": "kept-from-before",
        "user_id": "alice",
        "project_id": "proj",
        "created_at": "2025-10-28T12:00:00",
        "last_activity": "2025-10-28T12:00:00",
    }
    (storage_dir / "kept-from-before.json.gz").write_bytes(gzip.compress(json.dumps(original).encode()))
    config = tmp_path / "serverless_config.json"
    config.write_text(
        json.dumps(
            {
                "storage_backend": "local",
                "session_ttl_hours": 24,
                "backends": {"local": {"storage_dir": str(storage_dir)}},
            }
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        settings = load_settings(config)
        async with ServerlessSessionManager(settings=settings) as manager:
            assert manager.storage.backend != "sqlite"
            state = await manager.get_session("kept-from-before")
    assert state is not None and state.user_id == "alice"

"""Deterministic sample sessions of a chosen JSON size, shaped like an assistant's state.

The text is drawn from a small vocabulary with a fixed seed, so it compresses like prose and
code (about 2-3x with zstd), not like random bytes, and every run stores the same bytes.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from serverless_sessions import SessionState

_VOCABULARY = (
    "the session state function returns async await cache key value redis store index "
    "project user import module error retry timeout config file path test build deploy "
    "serverless request response token model tool call result list update delete expire "
    "def class self return None True False for in if else with as from raise try except"
)
_WORDS = tuple(_VOCABULARY.split())
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _word(rng: random.Random) -> str:
    # One token in five is an identifier-like string (paths, hashes, numbers), as in real logs.
    if rng.random() < 0.2:
        return f"{rng.choice(_WORDS)}_{rng.getrandbits(24):x}"
    return rng.choice(_WORDS)


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(_word(rng) for _ in range(words))


def sample_fields(size: int, seed: int = 7) -> dict[str, Any]:
    """Free-form session fields whose JSON is about ``size`` bytes."""
    rng = random.Random(seed)
    history: list[dict[str, Any]] = []
    fields: dict[str, Any] = {
        "permissions": ["read", "write", "execute"],
        "conversation_history": history,
        "reflection_data": {"insights": [_sentence(rng, 8) for _ in range(3)], "score": 0.82},
        "app_monitoring_state": {"cpu": 12.5, "memory_mb": 512, "errors": 0},
        "llm_provider_configs": {"default": {"provider": "openai", "model": "gpt-x", "t": 0.2}},
        "metadata": {"client": "bench", "version": 3},
    }
    template = SessionState(session_id="probe", user_id="u", project_id="p", **fields)
    budget = size - len(template.model_dump_json())
    turn = 0
    while budget > 0:
        words = max(4, min(60, budget // 7))
        message = {"role": ("user", "assistant")[turn % 2], "content": _sentence(rng, words)}
        history.append(message)
        budget -= len(str(message)) + 2
        turn += 1
    return fields


def make_session(session_id: str, user_id: str, project_id: str, fields: dict[str, Any]) -> SessionState:
    """A new (revision 0) session with the given free-form ``fields``."""
    return SessionState(
        session_id=session_id,
        user_id=user_id,
        project_id=project_id,
        created_at=_EPOCH,
        last_activity=_EPOCH,
        **fields,
    )


class SessionFactory:
    """Fresh (never stored) copies of one template session, with unique ids per call.

    Copies share the template's nested data, which no storage path mutates; building them is
    kept outside every timed section.
    """

    def __init__(self, tag: str, size: int, *, users: int = 50, projects: int = 10) -> None:
        self.tag = tag
        self.users = users
        self.projects = projects
        self.template = make_session(f"{tag}-template", "user-0", "project-0", sample_fields(size))
        self._batches = 0

    def batch(self, n: int) -> list[SessionState]:
        """``n`` new sessions spread over ``users`` users and ``projects`` projects."""
        self._batches += 1
        prefix = f"{self.tag}-{self._batches}"
        return [
            self.template.model_copy(
                update={
                    "session_id": f"{prefix}-{i}",
                    "user_id": f"user-{i % self.users}",
                    "project_id": f"project-{i % self.projects}",
                }
            )
            for i in range(n)
        ]

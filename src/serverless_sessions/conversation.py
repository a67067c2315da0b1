"""Reading a conversation backwards: pages of messages and their cursors.

A page holds consecutive messages, oldest first, and the position of its first message in the
whole conversation. Its cursor stands for that position, so the page before it ends exactly
where it starts, even while new messages are appended at the end. A cursor names its session:
one passed to another session is refused rather than read at a meaningless place.
"""

from __future__ import annotations

import base64
import json
from typing import Any, TypeGuard

from pydantic import BaseModel, ConfigDict

from serverless_sessions.errors import InvalidSessionError
from serverless_sessions.storage.base import StoredSession

__all__ = ["MessagePage", "check_count", "decode_message_cursor", "message_page"]


class MessagePage(BaseModel):
    """Consecutive messages of one conversation, oldest first.

    ``start`` is the position of ``messages[0]`` in the conversation and ``total`` the number of
    messages in it. ``next_cursor``, given as ``before``, reads the messages before these;
    ``None`` when this page starts at the first message.
    """

    model_config = ConfigDict(frozen=True)

    session_id: str
    messages: list[Any]
    start: int
    total: int
    next_cursor: str | None


def check_count(value: object, what: str) -> int | None:
    """``value`` as a number of messages (``None``: no bound); anything else is refused."""
    if value is None:
        return None
    if not _is_count(value):
        raise InvalidSessionError(f"{what} must be a whole number of messages >= 0, got {value!r}")
    return value


def _encode_cursor(session_id: str, position: int, messages_in_head: int) -> str:
    raw = json.dumps([session_id, position, messages_in_head])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_message_cursor(cursor: str, session_id: str) -> tuple[int, int]:
    """The position a cursor of ``session_id``'s conversation stands for.

    Also the number of messages the session's value held when it was issued: where the
    positions of its message log start, so a page is read in one step.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        owner, position, in_head = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidSessionError(f"invalid message cursor {cursor!r}") from exc
    if owner != session_id or not all(_is_count(value) for value in (position, in_head)):
        raise InvalidSessionError(
            f"message cursor {cursor!r} was not issued for session {session_id!r}'s messages"
        )
    return position, in_head


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def message_page(stored: StoredSession) -> MessagePage:
    """The page of messages that ``stored`` (read with a window of its conversation) holds."""
    state = stored.state
    total = stored.message_count
    if total is None:  # a storage without windows read the whole conversation
        total = len(state.conversation_history)
    start = stored.history_start
    return MessagePage(
        session_id=state.session_id,
        messages=state.conversation_history,
        start=start,
        total=total,
        next_cursor=(_encode_cursor(state.session_id, start, stored.messages_in_head) if start > 0 else None),
    )

"""Session and thread ids: generation (``sess_``/``thrd_`` + 32 lowercase hex) and checks."""

from __future__ import annotations

import uuid

from .attributes import SESSION_ID_PREFIX, THREAD_ID_PREFIX, is_valid_id

__all__ = ["is_valid_id", "new_session_id", "new_thread_id"]


def new_session_id() -> str:
    """A fresh session id: ``sess_`` followed by 32 lowercase hex digits (a random UUID4)."""
    return SESSION_ID_PREFIX + uuid.uuid4().hex


def new_thread_id() -> str:
    """A fresh thread (conversation) id: ``thrd_`` followed by 32 lowercase hex digits."""
    return THREAD_ID_PREFIX + uuid.uuid4().hex

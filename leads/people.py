"""How the app names a person (a user): one rule for every page, export and
message, so a rep is "Clara Keller" in the top bar, the owner column, the task
list and the notes alike."""

from __future__ import annotations

from typing import Any


def person_name(user: Any) -> str:
    """The user's full name, or their username when they have none; "" for no user."""
    if user is None:
        return ""
    return str(user.get_full_name()).strip() or str(user.get_username())

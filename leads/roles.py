"""Roles are groups: admin, marketer, sales. A superuser counts as admin; a
``full`` API key acts as admin, an ``ingest`` key has no role (ingestion only)."""

from __future__ import annotations

from typing import Any

from core.roles import Role, role_of_groups
from leads.models import ApiKey, ApiScope


class ApiKeyPrincipal:
    """``request.user`` for a request made with an API key."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, key: ApiKey):
        self.api_key = key
        self.username = f"api-key:{key.prefix}"

    def __str__(self) -> str:
        return self.username


def user_role(user: Any) -> str | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if isinstance(user, ApiKeyPrincipal):
        return Role.ADMIN if user.api_key.scope == ApiScope.FULL else None
    if not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_leadflow_role", "unset")
    if cached != "unset":
        return cached
    role = role_of_groups(user.groups.values_list("name", flat=True))
    user._leadflow_role = role
    return role


def is_ingest_key(user: Any) -> bool:
    return isinstance(user, ApiKeyPrincipal) and user.api_key.scope == ApiScope.INGEST

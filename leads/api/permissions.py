from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from core.roles import ADMIN_MARKETER, ALL_ROLES
from leads.roles import ApiKeyPrincipal, is_ingest_key, user_role


class RoleAccess(permissions.BasePermission):
    """Views declare ``read_roles`` and ``write_roles``; ``ingest_methods`` lists the
    methods an ``ingest``-scoped key may use (none by default)."""

    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if is_ingest_key(user):
            if request.method in getattr(view, "ingest_methods", ()):
                return True
            self.message = "This API key's scope is 'ingest': it may only send events."
            return False
        role = user_role(user)
        if request.method in permissions.SAFE_METHODS:
            allowed = getattr(view, "read_roles", ALL_ROLES)
        else:
            allowed = getattr(view, "write_roles", ADMIN_MARKETER)
        if request.method == "DELETE":
            allowed = getattr(view, "delete_roles", allowed)
        return role in allowed


class HumanOnly(permissions.BasePermission):
    """For actions only a person may take (managing API keys): no key can mint keys."""

    message = "API keys cannot manage API keys; sign in as an admin."

    def has_permission(self, request: Request, view: Any) -> bool:
        return not isinstance(request.user, ApiKeyPrincipal)

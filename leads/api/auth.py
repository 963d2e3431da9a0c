from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from leads.roles import ApiKeyPrincipal
from leads.services.api_keys import api_key_check


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer lf_…``."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        key = key.strip()
        row = api_key_check(key) if key else None
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyPrincipal(row), row

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="leadflow"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "leads.api.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API key: lf_…"}

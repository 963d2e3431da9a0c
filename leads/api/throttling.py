from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from leads.models import ApiKey
from leads.services.throttle import api_key_rate_wait


class ApiKeyThrottle(BaseThrottle):
    """Writes made with an API key count against the key's budget, which its
    ingestion (``/v1/*``) shares; beyond it a 429 with ``Retry-After``. People
    signed in are not limited here."""

    def __init__(self) -> None:
        self.seconds = 0

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS or not isinstance(request.auth, ApiKey):
            return True
        self.seconds = api_key_rate_wait(key_id=request.auth.pk)
        return not self.seconds

    def wait(self) -> float | None:
        return self.seconds or None

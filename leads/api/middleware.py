"""Middleware of the API paths (``/api/`` and ``/v1/``)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from leads.api.errors import error_response, is_api_path
from leads.api.parsers import PayloadTooLarge


class ApiBodyLimitMiddleware:
    """A declared body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is a 413 on every API
    path, before anything is read: also where the view would never read the body.
    File uploads (multipart) are streamed to disk by Django and checked by the view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_path(request) and not (request.content_type or "").startswith("multipart/"):
            length = request.META.get("CONTENT_LENGTH") or ""
            if length.isdigit() and int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                exc = PayloadTooLarge()
                return error_response(exc.status_code, "too_large", str(exc.detail))
        return self.get_response(request)

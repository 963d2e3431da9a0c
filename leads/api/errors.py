"""One JSON shape for every API error:
``{"error": {"code": ..., "message": ..., "fields": {path: [messages]}}}``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from leads.api.parsers import PayloadTooLarge


def error_body(
    code: str, message: str, fields: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(
    status_code: int, code: str, message: str, fields: dict[str, list[str]] | None = None
) -> JsonResponse:
    return JsonResponse(error_body(code, message, fields), status=status_code)


# Answers under these prefixes are for machines: JSON in the error shape, whatever
# went wrong. Everything else is a page and keeps Django's HTML error pages.
API_PREFIXES = ("/api/", "/v1/")


def is_api_path(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's ``handler400``: a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (read
    outside DRF) or another refused request."""
    if not is_api_path(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        exc = PayloadTooLarge()
        return error_response(exc.status_code, "too_large", str(exc.detail))
    return error_response(400, "bad_request", gettext("The request could not be read."))


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api_path(request):
        return defaults.permission_denied(request, exception)
    return error_response(403, "permission_denied", gettext("You may not do this."))


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api_path(request):
        return defaults.page_not_found(request, exception)
    return error_response(404, "not_found", gettext("Not found."))


def server_error(request: HttpRequest) -> HttpResponse:
    if not is_api_path(request):
        return defaults.server_error(request)
    return error_response(500, "server_error", gettext("Something went wrong on our side."))


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"a.b[0].c": ["message"]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # a ListField's errors, keyed by index
                path = f"{prefix}[{key}]"
            else:
                path = key if not prefix else f"{prefix}.{key}"
            if key == "non_field_errors":
                path = prefix
            for sub, messages in _flatten(value, path).items():
                out.setdefault(sub, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                if item:
                    out.update(_flatten(item, f"{prefix}[{index}]"))
    else:
        out[prefix] = [str(detail)]
    return out


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, SuspiciousOperation):
        # Too many form fields or files: Django's own limits on a request.
        exc = exceptions.ParseError(str(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = error_body(
            "invalid", gettext("The request has invalid fields."), _flatten(exc.detail)
        )
    else:
        detail = getattr(exc, "detail", str(exc))
        code = detail.code if hasattr(detail, "code") else "error"
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            code = "unauthenticated"
            response.status_code = status.HTTP_401_UNAUTHORIZED
        body = error_body(str(code), str(detail))
    response.data = body
    return response

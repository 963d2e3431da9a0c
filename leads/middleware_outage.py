"""503 with ``Retry-After`` for a request that cannot reach the database or the
broker, instead of a 500 that tells the client its request was wrong."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape
from django.utils.translation import get_language, gettext

from leads.api.errors import error_response
from leads.outages import OUTAGE_ERRORS

logger = logging.getLogger(__name__)

# Long enough for a restarted database or Redis to come back; SDKs that honour
# it (Segment's do not, they back off on their own) wait this long.
RETRY_AFTER_SECONDS = 30
API_PREFIXES = ("/api/", "/v1/")
_OUTAGE_ATTR = "_leadflow_outage"


def _remember_outage(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Django turns an exception raised in a middleware into a 500 response where
    it is raised; this notes on the request that the cause was an outage, so that
    ``OutageMiddleware`` (the outermost) can answer 503 instead."""
    exc = sys.exc_info()[1]
    if request is not None and isinstance(exc, OUTAGE_ERRORS):
        setattr(request, _OUTAGE_ATTR, exc)


got_request_exception.connect(_remember_outage, dispatch_uid="leadflow-outage")


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """The 503: the API's error shape under ``/api/`` and ``/v1/``, a short page
    elsewhere (rendered without templates: their context reads the database)."""
    message = gettext(
        "Leadflow cannot reach its database or message broker. Please try again in a minute."
    )
    if request.path.startswith(API_PREFIXES):
        response: HttpResponse = error_response(503, "unavailable", message)
    else:
        title = gettext("Temporarily unavailable")
        body = (
            f'<!doctype html><html lang="{escape(get_language() or "en")}"><meta charset="utf-8">'
            # Readable on a phone too, and in the app's type rather than the browser's serif.
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;"
            "padding:0 1rem;color:#1f2430}</style>"
            f"<title>{escape(title)}</title><h1>{escape(title)}</h1><p>{escape(message)}</p>"
            "</html>\n"
        )
        response = HttpResponse(body, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class OutageMiddleware:
    """First in ``MIDDLEWARE``: an outage raised by a view or by any middleware
    below this one becomes a 503 (any database error counts: a lock timeout is
    worth retrying as well)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        exc = getattr(request, _OUTAGE_ATTR, None)
        if exc is not None and response.status_code >= 500:
            return unavailable_response(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OUTAGE_ERRORS):
            return None
        logger.error("%s %s: %s", request.method, request.path, exception, exc_info=exception)
        return unavailable_response(request)

"""Request middleware of the lead pages."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import translation

from leads.selectors import user_language


class UserLanguageMiddleware:
    """Activate the signed-in user's saved language. Without one, the language
    LocaleMiddleware chose from the browser (Accept-Language) stays."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = user_language(request.user)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import translation

from pages.selectors.review import report_cached, suggestions_cached
from scoring.report import month_window


@shared_task(name="pages.tasks.review_warm")
def review_warm() -> int:
    """Compute the scoring review's default month and its suggestions into the
    cache, in every language, before anyone asks: on a large account the report
    reads every lead (seconds at a million), and the page then only reads the
    cache. Returns how many languages were warmed."""
    window = month_window()
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            report_cached(window=window, refresh=True)
            suggestions_cached(refresh=True)
    return len(settings.LANGUAGES)

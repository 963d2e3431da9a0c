"""The scoring review page's reads: the month's report, the suggestions beside
what today's flows give, the review log, and whether a preset may be offered.

The report and the suggestions are cached (``REPORT_SECONDS``,
``SUGGESTIONS_SECONDS``): both read every lead, and a review is read many times
between changes. A change to the model (a review log entry) starts new cache
keys, so the page never shows numbers from before a change it lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.utils import timezone, translation

from core.vocabulary import Grade
from flows.presets import scoring_set_up
from flows.scoring_review import CurrentPoints, current_points
from flows.selectors import scoring_steps
from leads.models import LeadSource
from scoring.models import ReviewLogEntry
from scoring.report import ReviewReport, Window, month_window, review_report
from scoring.services import scoring_settings
from scoring.suggestions import Suggestion, SuggestionResult, scoring_suggestions

# Beat recomputes both every five minutes (``pages.tasks.review_warm``); they
# outlive that, so a reader finds them ready.
REPORT_SECONDS = 15 * 60
SUGGESTIONS_SECONDS = 60 * 60
LOG_LIMIT = 50


def _model_version() -> int:
    return ReviewLogEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


def report_cached(*, window: Window, refresh: bool = False) -> ReviewReport:
    """The month's report, from the cache when the model has not changed since."""
    # Per language (the labels), per day (the noise's "N days ago" moves).
    key = (
        f"scoring-review:report:{window.key}:{_model_version()}:{timezone.now():%Y-%m-%d}:"
        f"{translation.get_language()}"
    )
    report: ReviewReport | None = None if refresh else cache.get(key)
    if report is None:
        report = review_report(
            window=window,
            settings=scoring_settings(),
            labels={
                "grade": {str(k): str(v) for k, v in Grade.choices},
                "source": {"": "-", **{str(k): str(v) for k, v in LeadSource.choices}},
            },
        )
        cache.set(key, report, REPORT_SECONDS)
    return report


def suggestions_cached(*, refresh: bool = False) -> SuggestionResult:
    key = f"scoring-review:suggestions:{_model_version()}:{translation.get_language()}"
    result: SuggestionResult | None = None if refresh else cache.get(key)
    if result is None:
        result = scoring_suggestions()
        cache.set(key, result, SUGGESTIONS_SECONDS)
    return result


@dataclass(frozen=True)
class SuggestionRow:
    suggestion: Suggestion
    current: CurrentPoints


@dataclass
class ReviewPage:
    window: Window
    report: ReviewReport
    suggestions: SuggestionResult
    rows: list[SuggestionRow]
    log: list[ReviewLogEntry]
    set_up: str
    extra: dict[str, Any]


def review_page(*, month: str | None) -> ReviewPage:
    """Everything the review page shows for ``month`` ("YYYY-MM", or the last full one)."""
    window = month_window(month)
    report = report_cached(window=window)
    suggestions = suggestions_cached()
    today = current_points(suggestions=suggestions.rows, steps=scoring_steps())
    rows = [SuggestionRow(s, today[s.feature.key]) for s in suggestions.rows]
    log = list(ReviewLogEntry.objects.select_related("user")[:LOG_LIMIT])
    return ReviewPage(
        window=window,
        report=report,
        suggestions=suggestions,
        rows=rows,
        log=log,
        set_up=scoring_set_up(),
        extra={},
    )

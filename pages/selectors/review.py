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
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from core.vocabulary import Grade
from flows.models import Flow, FlowVersion
from flows.presets import scoring_set_up
from flows.scoring_review import CurrentPoints, current_points
from flows.selectors import scoring_steps
from leads.models import LeadSource
from scoring.models import ReviewLogEntry, ScoreCategory
from scoring.report import ReviewReport, Window, month_window, review_report
from scoring.rules import change_lines
from scoring.services import scoring_settings, setting_choice_labels, setting_labels
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


@dataclass(frozen=True)
class LogLine:
    """One readable line of a review log entry's changes; ``url`` links it."""

    text: str
    url: str = ""


@dataclass(frozen=True)
class LogRow:
    entry: ReviewLogEntry
    lines: list[LogLine]


def _points_words(points: dict[str, Any], steps: dict[str, str]) -> str:
    """The points of a scoring flow's steps, each step named by its label or
    reason as the builder shows it, not by its id."""
    return ", ".join(
        f"{steps.get(key, key)} {value:+d}"
        if isinstance(value, int)
        else f"{steps.get(key, key)} {value}"
        for key, value in points.items()
    )


def _step_names(graph: Any) -> dict[str, str]:
    nodes = graph.get("nodes", []) if isinstance(graph, dict) else []
    names = {}
    for node in nodes:
        config = node.get("config") or {}
        name = node.get("label") or config.get("reason")
        if name:
            names[str(node.get("id"))] = str(name)
    return names


def log_rows(entries: list[ReviewLogEntry]) -> list[LogRow]:
    """The review log's entries with their changes as readable lines: "Label:
    before → after" (the settings' labels and choice labels), a flow as a link to
    its builder, the flows a preset made by name."""
    labels, choices = setting_labels(), setting_choice_labels()
    flow_ids = {e.changes.get("flow") for e in entries if isinstance(e.changes, dict)}
    flows = {f.pk: f.name for f in Flow.objects.filter(pk__in=[i for i in flow_ids if i])}
    categories = dict(ScoreCategory.objects.values_list("key", "label"))
    numbers = {
        e.changes.get("version")
        for e in entries
        if isinstance(e.changes, dict) and "points" in e.changes
    }
    graphs: dict[tuple[Any, Any], Any] = (
        {
            (flow_id, number): graph
            for flow_id, number, graph in FlowVersion.objects.filter(
                flow_id__in=[i for i in flow_ids if i], number__in=[n for n in numbers if n]
            ).values_list("flow_id", "number", "graph")
        }
        if numbers
        else {}
    )
    rows = []
    for entry in entries:
        changes = entry.changes if isinstance(entry.changes, dict) else {}
        lines: list[LogLine] = []
        pairs: dict[str, list[Any]] = {}
        names: dict[str, str] = dict(labels)
        for field, value in changes.items():
            if field == "flow":
                name = flows.get(value)
                lines.append(
                    LogLine(
                        gettext("Flow: %(name)s") % {"name": name or gettext("deleted")},
                        reverse("flow-builder", args=[value]) if name else "",
                    )
                )
            elif field == "version":
                lines.append(LogLine(gettext("Version: %(number)s") % {"number": value}))
            elif field == "points" and isinstance(value, dict):
                graph = graphs.get((changes.get("flow"), changes.get("version")))
                words = _points_words(value, _step_names(graph))
                lines.append(LogLine(gettext("Points: %(points)s") % {"points": words}))
            elif field == "flows" and isinstance(value, list):
                made = ", ".join(str(v) for v in value) or gettext("none")
                lines.append(LogLine(gettext("Flows made: %(names)s") % {"names": made}))
            elif isinstance(value, list) and len(value) == 2:
                key, _, attribute = field.rpartition(".")
                if key:
                    names[field] = f"{categories.get(key, key)}: {labels.get(attribute, attribute)}"
                    choices.setdefault(field, choices.get(attribute, {}))
                pairs[field] = value
            else:
                lines.append(LogLine(f"{labels.get(field, field)}: {value}"))
        lines[:0] = [LogLine(text) for text in change_lines(pairs, names, choices)]
        rows.append(LogRow(entry, lines))
    return rows


@dataclass
class ReviewPage:
    window: Window
    report: ReviewReport
    suggestions: SuggestionResult
    rows: list[SuggestionRow]
    log: list[LogRow]
    set_up: str
    extra: dict[str, Any]


def review_page(*, month: str | None) -> ReviewPage:
    """Everything the review page shows for ``month`` ("YYYY-MM", or the last full one)."""
    window = month_window(month)
    report = report_cached(window=window)
    suggestions = suggestions_cached()
    today = current_points(suggestions=suggestions.rows, steps=scoring_steps())
    rows = [SuggestionRow(s, today[s.feature.key]) for s in suggestions.rows]
    log = log_rows(list(ReviewLogEntry.objects.select_related("user")[:LOG_LIMIT]))
    return ReviewPage(
        window=window,
        report=report,
        suggestions=suggestions,
        rows=rows,
        log=log,
        set_up=scoring_set_up(),
        extra={},
    )

"""What the lead profile shows beside the lead itself: the timeline merged from
every app's rows, the score's history, the flows the lead is in. (The score's
breakdown is ``scoring.selectors.lead_score_breakdown``: the API shows it too.)
A page selector: it reads every app, and nothing below the pages imports it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import (
    Case,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    When,
)
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from flows.models import Enrollment, StepRun
from flows.nodes.summaries import node_type_label
from flows.rules import CLOSED_STAGE, STALE_EVENT, follow_up_refusal, stale_event_words
from leads.models import Event, Lead, Note, SegmentMembership, Task
from scoring.models import ScoreChange
from scoring.selectors import change_reason, change_summary

TIMELINE_PAGE_SIZE = 30
TIMELINE_FILTERS = ("events", "score", "segments", "flows", "tasks", "notes")
# Kinds of timeline entries, by filter. Events that another source already shows
# (score and segment changes) are left out of "events".
_FILTER_KINDS = {
    "events": ("event",),
    "score": ("score",),
    "segments": ("segment_in", "segment_out"),
    "flows": ("step",),
    "tasks": ("task",),
    "notes": ("note",),
}
_EVENTS_SHOWN_ELSEWHERE = ("score.changed", "segment.entered", "segment.left", "task.created")


@dataclass(frozen=True)
class TimelineEntry:
    kind: str
    at: dt.datetime
    pk: int
    obj: Any

    @property
    def cursor(self) -> str:
        return f"{self.at.isoformat()}|{self.kind}:{self.pk}"


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    next_cursor: str


def timeline_cursor_parse(text: str) -> tuple[dt.datetime, str, int] | None:
    """``<iso time>|<kind>:<id>`` as (time, kind, id); None if unreadable."""
    at_text, _, rest = text.rpartition("|")
    kind, _, pk_text = rest.partition(":")
    at = parse_datetime(at_text) if at_text else None
    if at is None or timezone.is_naive(at) or not pk_text.isdigit():
        return None
    return at, kind, int(pk_text)


def _before(
    rows: QuerySet[Any], field: str, kind: str, cursor: tuple[dt.datetime, str, int] | None
) -> QuerySet[Any]:
    """Rows after the cursor in (time, kind, id) descending order."""
    if cursor is None:
        return rows
    at, cursor_kind, pk = cursor
    if kind < cursor_kind:
        return rows.filter(**{f"{field}__lte": at})
    if kind > cursor_kind:
        return rows.filter(**{f"{field}__lt": at})
    return rows.filter(Q(**{f"{field}__lt": at}) | Q(**{field: at, "pk__lt": pk}))


def lead_timeline(
    *,
    lead: Lead,
    filters: Iterable[str] = TIMELINE_FILTERS,
    cursor: tuple[dt.datetime, str, int] | None = None,
    limit: int = TIMELINE_PAGE_SIZE,
) -> TimelinePage:
    """One page of everything that happened to a lead, newest first, merged from
    its sources: one query per source, each fetching at most a page plus one."""

    kinds = {kind for f in filters for kind in _FILTER_KINDS.get(f, ())}
    sources: list[tuple[str, str, QuerySet[Any]]] = [
        (
            "event",
            "occurred_at",
            Event.objects.filter(lead=lead).exclude(type__in=_EVENTS_SHOWN_ELSEWHERE),
        ),
        (
            # When it happened (the cause's time), not when it was recorded.
            "score",
            "occurred_at",
            ScoreChange.objects.filter(lead=lead).select_related("category", "created_by"),
        ),
        (
            "segment_in",
            "entered_at",
            SegmentMembership.objects.filter(lead=lead).select_related("segment"),
        ),
        (
            "segment_out",
            "left_at",
            SegmentMembership.objects.filter(lead=lead, left_at__isnull=False).select_related(
                "segment"
            ),
        ),
        (
            "step",
            "started_at",
            StepRun.objects.filter(enrollment__lead=lead).select_related("enrollment__flow"),
        ),
        ("task", "created_at", Task.objects.filter(lead=lead).select_related("assignee")),
        ("note", "created_at", Note.objects.filter(lead=lead).select_related("author")),
    ]
    entries: list[TimelineEntry] = []
    for kind, field, rows in sources:
        if kind not in kinds:
            continue
        page = _before(rows, field, kind, cursor).order_by(f"-{field}", "-pk")[: limit + 1]
        for row in page:
            if kind == "step":
                row.node_label = node_type_label(row.node_type)
                # Why a step did nothing, in the reader's language.
                row.note = _step_note(row.output)
            if kind == "score":
                # The counted points with what a cap kept out, or the reason.
                row.summary = (
                    change_summary(
                        points=row.delta,
                        capped=row.capped,
                        category=row.category.label,
                        reason=row.reason,
                        source=row.source,
                        cap=row.category.cap,
                    )
                    if row.capped
                    else change_reason(reason=row.reason, source=row.source)
                )
            entries.append(TimelineEntry(kind, getattr(row, field), row.pk, row))
    entries.sort(key=lambda e: (e.at, e.kind, e.pk), reverse=True)
    more = len(entries) > limit
    entries = entries[:limit]
    return TimelinePage(entries=entries, next_cursor=entries[-1].cursor if more else "")


def _step_note(output: dict[str, Any]) -> str:
    """Why a step did nothing, in words (flows.rules), or ""."""
    if output.get("skipped") == CLOSED_STAGE:
        return follow_up_refusal(stage=output.get("stage", "")) or ""
    if output.get("skipped") == STALE_EVENT:
        occurred_at = dt.datetime.fromisoformat(output["occurred_at"])
        return stale_event_words(occurred_at=occurred_at, max_age_days=output["days"])
    return ""


def lead_score_history(*, lead: Lead, days: int = 90) -> list[tuple[dt.date, int]]:
    """The lead's score at the end of each day with a change in the last ``days``
    days (in the current time zone), from the ledger by when each change happened
    (``occurred_at``: history loaded after the fact draws its real curve); starts
    with the score the window began with and ends today."""

    today = timezone.localdate()
    start = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(start, dt.time(0, 0), tzinfo=timezone.get_current_timezone())
    # One pass over the lead's ledger: the changes before the window as one
    # group (its day NULL), then one per day (two scans of 10,000 rows before).
    rows = list(
        ScoreChange.objects.filter(lead=lead)
        .annotate(
            day=Case(
                When(occurred_at__lt=since, then=None),
                default=TruncDate("occurred_at", tzinfo=timezone.get_current_timezone()),
            )
        )
        .values("day")
        .annotate(points=Sum("delta"))
        .order_by(F("day").asc(nulls_first=True))
    )
    total = 0
    if rows and rows[0]["day"] is None:
        total = rows.pop(0)["points"] or 0
    points = [(start, total)]
    for row in rows:
        total += row["points"]
        if row["day"] == start:
            points[0] = (start, total)
        else:
            points.append((row["day"], total))
    if points[-1][0] != today:
        points.append((today, total))
    return points


def lead_enrollments(*, lead: Lead, limit: int = 20) -> list[Any]:
    """The flows a lead is in or was in, newest first, each with the node its
    latest step is at (``current_node``, ``current_node_label``)."""

    latest = StepRun.objects.filter(enrollment=OuterRef("pk")).order_by("-started_at", "-pk")
    enrollments = list(
        Enrollment.objects.filter(lead=lead)
        .select_related("flow")
        .annotate(
            current_node=Subquery(latest.values("node_id")[:1]),
            current_node_type=Subquery(latest.values("node_type")[:1]),
        )
        .order_by("-created_at", "-pk")[:limit]
    )
    for enrollment in enrollments:
        node_type = getattr(enrollment, "current_node_type", None)
        setattr(enrollment, "current_node_label", node_type_label(node_type) if node_type else "")  # noqa: B010
    return enrollments

"""Reads, scoped to what the asking user may see."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import (
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leads.conditions import compile_tree
from leads.models import Event, Lead, Note, Role, Segment, SegmentMembership, Task
from leads.roles import user_role


def leads_visible_to(user: Any) -> QuerySet[Lead]:
    """Admins and marketers see every lead; sales reps their own and unassigned ones."""
    leads = Lead.objects.all()
    role = user_role(user)
    if role in (Role.ADMIN, Role.MARKETER):
        return leads
    if role == Role.SALES:
        return leads.filter(Q(owner=user) | Q(owner__isnull=True))
    return leads.none()


def events_visible_to(user: Any) -> QuerySet[Event]:
    role = user_role(user)
    events = Event.objects.all()
    if role in (Role.ADMIN, Role.MARKETER):
        return events
    if role == Role.SALES:
        return events.filter(Q(lead__owner=user) | Q(lead__owner__isnull=True, lead__isnull=False))
    return events.none()


def lead_search(leads: QuerySet[Lead], text: str) -> QuerySet[Lead]:
    text = text.strip()
    if not text:
        return leads
    q = Q()
    for word in text.split()[:5]:
        q &= (
            Q(email__icontains=word)
            | Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
            | Q(company_name__icontains=word)
        )
    return leads.filter(q)


@dataclass(frozen=True)
class LeadFilters:
    """What a leads list is narrowed to; blank or None means "any".
    ``owner`` is a user id, or "none" for unassigned leads."""

    q: str = ""
    segment: int | None = None
    grade: str = ""
    stage: str = ""
    owner: int | str | None = None
    tag: str = ""
    score_min: int | None = None
    score_max: int | None = None
    # Points in a score category: (category key, at least, at most), either
    # bound None; every range must hold.
    category_scores: tuple[tuple[str, int | None, int | None], ...] = ()


def leads_filter(leads: QuerySet[Lead], filters: LeadFilters) -> QuerySet[Lead]:
    """Narrow ``leads`` by ``filters``. Segment and tag are ``EXISTS`` subqueries, so a
    lead is never repeated and the result can be locked or keyset-paginated."""
    leads = lead_search(leads, filters.q)
    if filters.segment is not None:
        leads = leads.filter(
            Exists(
                SegmentMembership.objects.filter(
                    segment_id=filters.segment, lead_id=OuterRef("pk"), left_at__isnull=True
                )
            )
        )
    if filters.grade:
        leads = leads.filter(grade=filters.grade)
    if filters.stage:
        leads = leads.filter(stage=filters.stage)
    if filters.owner == "none":
        leads = leads.filter(owner__isnull=True)
    elif isinstance(filters.owner, int):
        leads = leads.filter(owner_id=filters.owner)
    if filters.tag:
        leads = leads.filter(
            Exists(Lead.tags.through.objects.filter(lead_id=OuterRef("pk"), tag__name=filters.tag))
        )
    if filters.score_min is not None:
        leads = leads.filter(score__gte=filters.score_min)
    if filters.score_max is not None:
        leads = leads.filter(score__lte=filters.score_max)
    rules: list[dict[str, Any]] = []
    for key, low, high in filters.category_scores:
        # The segments' own rule, so a lead with no points in the category has 0.
        if low is not None:
            rules.append({"field": f"score.{key}", "op": "gte", "value": low})
        if high is not None:
            rules.append({"field": f"score.{key}", "op": "lte", "value": high})
    if rules:
        leads = leads.filter(compile_tree({"all": rules}))
    return leads


# --- sorting and keyset pagination ------------------------------------------------
#
# Each sort is a total order ending in the id, and a cursor is the sort value and
# id of the last row shown, so a page never repeats or skips a row, whatever ties
# there are and whatever rows are added meanwhile.

LEAD_SORTS = ("created", "score", "activity")
SORT_FIELDS = {"created": "created_at", "score": "score", "activity": "last_activity_at"}

LeadCursor = tuple[int | dt.datetime | None, int]


def leads_sorted(leads: QuerySet[Lead], sort: str) -> QuerySet[Lead]:
    if sort == "activity":
        return leads.order_by(F("last_activity_at").desc(nulls_last=True), "-id")
    return leads.order_by(f"-{SORT_FIELDS[sort]}", "-id")


def leads_after(leads: QuerySet[Lead], *, sort: str, cursor: LeadCursor) -> QuerySet[Lead]:
    """The rows that come after ``cursor`` in ``sort`` order."""
    value, pk = cursor
    field = SORT_FIELDS[sort]
    if value is None:
        # Only "activity" has nulls, and they come last.
        return leads.filter(**{f"{field}__isnull": True, "id__lt": pk})
    after = Q(**{f"{field}__lt": value}) | Q(**{field: value, "id__lt": pk})
    if sort == "activity":
        after |= Q(last_activity_at__isnull=True)
    return leads.filter(after)


def lead_cursor(lead: Lead, sort: str) -> str:
    """The cursor after ``lead``: ``<sort value>~<id>`` (an empty value for null)."""
    value = getattr(lead, SORT_FIELDS[sort])
    text = "" if value is None else value.isoformat() if sort != "score" else str(value)
    return f"{text}~{lead.pk}"


def lead_cursor_parse(text: str, sort: str) -> LeadCursor | None:
    """A cursor made by ``lead_cursor``, or None when it is not one. A bare id (as
    older links carry) stands for the row with that id."""
    if text.isdigit():
        row = Lead.objects.filter(pk=int(text)).values(SORT_FIELDS[sort], "id").first()
        return (row[SORT_FIELDS[sort]], row["id"]) if row else None
    raw_value, sep, raw_id = text.rpartition("~")
    if not sep or not raw_id.isdigit():
        return None
    if sort == "score":
        try:
            return int(raw_value), int(raw_id)
        except ValueError:
            return None
    if not raw_value:
        return (None, int(raw_id)) if sort == "activity" else None
    try:
        moment = parse_datetime(raw_value)
    except ValueError:
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return moment, int(raw_id)


def lead_owner_choices() -> QuerySet[User]:
    """Active users who can own leads: anyone with a role."""
    return (
        User.objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=Role.values))
        .distinct()
        .order_by("username")
    )


def user_language(user: Any) -> str:
    """The language a user chose for their pages, or "" for the browser's.
    Reads the preference joined to the user (see ``PreferenceModelBackend``)."""
    if not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        return ""
    preference = getattr(user, "preference", None)
    return preference.language if preference is not None else ""


# --- the lead profile ---------------------------------------------------------------

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
    from flows.models import StepRun
    from scoring.models import ScoreChange

    kinds = {kind for f in filters for kind in _FILTER_KINDS.get(f, ())}
    sources: list[tuple[str, str, QuerySet[Any]]] = [
        (
            "event",
            "occurred_at",
            Event.objects.filter(lead=lead).exclude(type__in=_EVENTS_SHOWN_ELSEWHERE),
        ),
        (
            "score",
            "created_at",
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
                row.node_label = _node_label(row.node_type)
            entries.append(TimelineEntry(kind, getattr(row, field), row.pk, row))
    entries.sort(key=lambda e: (e.at, e.kind, e.pk), reverse=True)
    more = len(entries) > limit
    entries = entries[:limit]
    return TimelinePage(entries=entries, next_cursor=entries[-1].cursor if more else "")


@dataclass(frozen=True)
class ScoreReason:
    category: str
    category_label: str
    reason: str
    source: str
    points: int
    changes: int
    user: Any
    flow_id: int | None
    flow_name: str
    node_id: str
    node_type: str

    @property
    def node_label(self) -> str:
        return _node_label(self.node_type) if self.node_type else ""


@dataclass(frozen=True)
class ScoreBreakdown:
    score: int
    grade: str
    categories: list[tuple[str, str, int]]
    reasons: list[ScoreReason]


def _breakdown_sql() -> str:
    """The ledger of one lead grouped by category, reason, source, user, and the
    flow and node of the step that gave the points (flow changes are keyed
    ``step:<step run id>``). The step is joined once, not looked up per column:
    three correlated subqueries per row took half a second for a lead with
    10,000 changes, the join takes milliseconds. Names are model constants."""
    from flows.models import Enrollment, StepRun
    from scoring.models import ScoreCategory, ScoreChange, ScoreSource

    return (
        "SELECT c.key, c.label, sc.reason, sc.source, sc.created_by_id, e.flow_id, "  # noqa: S608
        "s.node_id, s.node_type, SUM(sc.delta) AS points, COUNT(*) AS changes "
        f"FROM {ScoreChange._meta.db_table} sc "
        f"JOIN {ScoreCategory._meta.db_table} c ON c.id = sc.category_id "
        f"LEFT JOIN {StepRun._meta.db_table} s ON s.id = CASE WHEN sc.source = "
        f"'{ScoreSource.FLOW.value}' AND sc.source_key LIKE 'step:%%' "
        "THEN CAST(SUBSTR(sc.source_key, 6) AS bigint) END "
        f"LEFT JOIN {Enrollment._meta.db_table} e ON e.id = s.enrollment_id "
        "WHERE sc.lead_id = %s "
        "GROUP BY c.key, c.label, sc.reason, sc.source, sc.created_by_id, e.flow_id, "
        "s.node_id, s.node_type "
        "ORDER BY points DESC, sc.reason, c.key"
    )


def lead_score_breakdown(*, lead: Lead) -> ScoreBreakdown:
    """A lead's score by category and where its points came from: the ledger
    grouped by reason, with the flow and node (flow steps) or the user (manual
    changes) that gave them."""
    from django.db import connection

    from flows.models import Flow
    from scoring.models import LeadScore, ScoreCategory

    scores = dict(LeadScore.objects.filter(lead=lead).values_list("category_id", "score"))
    categories = [(c.key, c.label, scores.get(c.pk, 0)) for c in ScoreCategory.objects.all()]
    columns = (
        "category__key",
        "category__label",
        "reason",
        "source",
        "created_by_id",
        "flow_id",
        "node_id",
        "node_type",
        "points",
        "changes",
    )
    with connection.cursor() as cursor:
        cursor.execute(_breakdown_sql(), [lead.pk])
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    flow_ids = {r["flow_id"] for r in rows if r["flow_id"] is not None}
    user_ids = {r["created_by_id"] for r in rows if r["created_by_id"] is not None}
    flows = Flow.objects.only("id", "name").in_bulk(flow_ids) if flow_ids else {}
    users = User.objects.in_bulk(user_ids) if user_ids else {}
    reasons = [
        ScoreReason(
            category=r["category__key"],
            category_label=r["category__label"],
            reason=r["reason"],
            source=r["source"],
            points=r["points"],
            changes=r["changes"],
            user=users.get(r["created_by_id"]),
            flow_id=r["flow_id"] if r["flow_id"] in flows else None,
            flow_name=flows[r["flow_id"]].name if r["flow_id"] in flows else "",
            node_id=r["node_id"] or "",
            node_type=r["node_type"] or "",
        )
        for r in rows
    ]
    return ScoreBreakdown(
        score=lead.score, grade=lead.grade, categories=categories, reasons=reasons
    )


def lead_score_history(*, lead: Lead, days: int = 90) -> list[tuple[dt.date, int]]:
    """The lead's score at the end of each day with a change in the last ``days``
    days (in the current time zone), from the ledger; starts with the score
    the window began with and ends today."""
    from scoring.models import ScoreChange

    today = timezone.localdate()
    start = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(start, dt.time(0, 0), tzinfo=timezone.get_current_timezone())
    changes = ScoreChange.objects.filter(lead=lead)
    total = changes.filter(created_at__lt=since).aggregate(total=Sum("delta"))["total"] or 0
    per_day = (
        changes.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(points=Sum("delta"))
        .order_by("day")
    )
    points = [(start, total)]
    for row in per_day:
        total += row["points"]
        if row["day"] == start:
            points[0] = (start, total)
        else:
            points.append((row["day"], total))
    if points[-1][0] != today:
        points.append((today, total))
    return points


def _node_label(node_type: str) -> str:
    from flows.nodes import REGISTRY

    node = REGISTRY.get(node_type)
    return str(node.label) if node is not None else node_type


def lead_enrollments(*, lead: Lead, limit: int = 20) -> list[Any]:
    """The flows a lead is in or was in, newest first, each with the node its
    latest step is at (``current_node``, ``current_node_label``)."""
    from flows.models import Enrollment, StepRun

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
        setattr(enrollment, "current_node_label", _node_label(node_type) if node_type else "")  # noqa: B010
    return enrollments


# --- segments -----------------------------------------------------------------------

SEGMENT_PREVIEW_SAMPLE = 10
MEMBER_PAGE_SIZE = 50
EVENT_NAME_LIMIT = 200

MemberCursor = tuple[dt.datetime, int]


def segments_list() -> QuerySet[Segment]:
    return Segment.objects.select_related("created_by").order_by("name")


def segment_preview(*, tree: dict[str, Any], user: Any, sample: int) -> tuple[int, list[Lead]]:
    """How many leads a (valid) tree selects among those ``user`` sees, and the
    newest ``sample`` of them: the API's preview and the editor's live count."""
    leads = leads_visible_to(user).filter(compile_tree(tree))
    return leads.count(), list(leads.order_by("-id")[:sample])


def segment_members(
    *, segment: Segment, cursor: MemberCursor | None = None, limit: int = MEMBER_PAGE_SIZE
) -> tuple[list[SegmentMembership], MemberCursor | None]:
    """Current members, latest to enter first, a keyset page at a time; the
    cursor after the page, or None at the end."""
    stays = (
        SegmentMembership.objects.filter(segment=segment, left_at__isnull=True)
        .select_related("lead")
        .order_by("-entered_at", "-id")
    )
    if cursor is not None:
        entered_at, pk = cursor
        stays = stays.filter(Q(entered_at__lt=entered_at) | Q(entered_at=entered_at, id__lt=pk))
    page = list(stays[: limit + 1])
    if len(page) <= limit:
        return page, None
    page = page[:limit]
    return page, (page[-1].entered_at, page[-1].pk)


def segment_candidates(*, segment: Segment, text: str, limit: int) -> list[Lead]:
    """Leads matching a search that are not in ``segment`` now."""
    current = SegmentMembership.objects.filter(
        segment=segment, lead_id=OuterRef("pk"), left_at__isnull=True
    )
    leads = lead_search(Lead.objects.all(), text).exclude(Exists(current))
    return list(leads.order_by("-id")[:limit])


def member_cursor(cursor: MemberCursor) -> str:
    return f"{cursor[0].isoformat()}~{cursor[1]}"


def member_cursor_parse(text: str) -> MemberCursor | None:
    when, _sep, pk = text.rpartition("~")
    try:
        moment = parse_datetime(when)
    except ValueError:
        return None
    if moment is None or timezone.is_naive(moment) or not pk.isdigit() or len(pk) > 18:
        return None
    return moment, int(pk)


def event_names(*, types: Iterable[str], limit: int = EVENT_NAME_LIMIT) -> dict[str, list[str]]:
    """Names seen on events of each type, for the activity rule's name picker.

    A loose index scan on (type, name): each step jumps to the next name in the
    index, so the cost is one probe per distinct name, not one per event."""
    table = Event._meta.db_table
    statement = (
        "WITH RECURSIVE names(name, n) AS ("  # noqa: S608
        f"SELECT (SELECT min(name) FROM {table} WHERE type = %s AND name > ''), 1 "
        f"UNION ALL SELECT (SELECT min(e.name) FROM {table} e "
        "WHERE e.type = %s AND e.name > names.name), n + 1 "
        "FROM names WHERE names.name IS NOT NULL AND n < %s"
        ") SELECT name FROM names WHERE name IS NOT NULL"
    )
    found: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        for type_ in sorted(set(types)):
            cursor.execute(statement, [type_, type_, limit])
            found[type_] = [row[0] for row in cursor.fetchall()]
    return found


def lead_segment_history(*, lead: Lead, limit: int = 100) -> list[SegmentMembership]:
    """A lead's latest stays in segments, open or closed, latest first."""
    return list(
        SegmentMembership.objects.filter(lead=lead)
        .select_related("segment")
        .order_by("-entered_at", "-id")[:limit]
    )

"""The dashboard's reads: a handful of aggregate queries, one per panel, each
scoped to what the asking user may see (``leads_visible_to``).

Weeks are rolling: "this week" is the last 7 days up to now and "the previous
week" the 7 days before that, so a Monday morning does not read as a collapse.
Days (for the chart and "due today") are days in the current time zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Subquery
from django.db.models.functions import Abs, TruncDate
from django.utils import timezone

from core.roles import ADMIN_MARKETER
from core.vocabulary import Grade
from flows.models import Enrollment, FlowStatus
from leads.models import Event, Lead, Task, TaskStatus
from leads.roles import user_role
from leads.selectors import leads_visible_to
from scoring.models import ScoreChange

WEEK = dt.timedelta(days=7)
CHART_DAYS = 30
LIST_LIMIT = 5
# A rep's next tasks on the dashboard: enough for a morning.
TASK_LIMIT = 8
SCORE_CHANGES_LIMIT = 8


@dataclass(frozen=True)
class Trend:
    """A count this week against the week before."""

    current: int
    previous: int

    @property
    def direction(self) -> str:
        if self.current > self.previous:
            return "up"
        if self.current < self.previous:
            return "down"
        return "flat"

    @property
    def percent(self) -> int | None:
        """The change in percent of the previous week, rounded; None when the
        previous week had nothing to compare with."""
        if not self.previous:
            return None
        return round(abs(self.current - self.previous) * 100 / self.previous)


def dashboard_team_wide(user: Any) -> bool:
    """Admins and marketers see the whole team's numbers; sales reps their own."""
    return user_role(user) in ADMIN_MARKETER


def _weeks(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return now - WEEK, now - 2 * WEEK


def turned_hot() -> Q:
    """A ``grade.changed`` event to the hot grade from another: the lead "turned
    hot" (the event also tells of a fit or engagement grade that moved while the
    lead stayed hot)."""
    return Q(type="grade.changed", name="hot") & ~Q(properties__from="hot")


@dataclass(frozen=True)
class LeadCounts:
    total: int
    mine: int
    hot: int
    new_leads: Trend
    mqls: Trend


def _counts(parts: dict[str, QuerySet[Any]]) -> dict[str, int]:
    """The number of rows of each queryset, in one statement: each count is a
    subquery of its own, so each is planned alone (an index-only scan, a range of
    an index) instead of one scan of every row testing every condition."""
    selects: list[str] = []
    params: list[Any] = []
    for name, rows in parts.items():
        # ``name`` is one of the caller's keys, never input.
        try:
            sql, part_params = rows.order_by().values("pk").query.sql_with_params()
        except EmptyResultSet:  # a user who sees no leads
            selects.append(f"0 AS {name}")
            continue
        selects.append(f"(SELECT COUNT(*) FROM ({sql}) AS part) AS {name}")  # noqa: S608
        params.extend(part_params)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(selects), params)
        row = cursor.fetchone()
    return dict(zip(parts, row, strict=True))


def dashboard_lead_counts(*, user: Any, now: dt.datetime) -> LeadCounts:
    """Leads the user sees: all of them, those they own, those hot now, the new
    ones this week and the week before (by ``created_at``), and those that became
    MQLs this week and the week before (by ``mql_at``). One query.

    (As one scan of the user's leads with a filter per figure it was a parallel
    sequential scan of the whole table, 45 to 70 ms at 100,000 leads on a busy
    machine, bench/pages.py; counted apart, the total is an index-only scan, the
    hot leads a partial index, and the weeks ranges of their indexes.)"""
    week, previous = _weeks(now)
    leads = leads_visible_to(user)
    row = _counts(
        {
            "total": leads,
            "mine": leads.filter(owner_id=user.pk),
            "hot": leads.filter(grade=Grade.HOT),
            "new": leads.filter(created_at__gte=week),
            "new_before": leads.filter(created_at__gte=previous, created_at__lt=week),
            "mql": leads.filter(mql_at__gte=week, mql_at__lte=now),
            "mql_before": leads.filter(mql_at__gte=previous, mql_at__lt=week),
        }
    )
    return LeadCounts(
        total=row["total"],
        mine=row["mine"],
        hot=row["hot"],
        new_leads=Trend(row["new"], row["new_before"]),
        mqls=Trend(row["mql"], row["mql_before"]),
    )


@dataclass(frozen=True)
class EventCounts:
    mqls: Trend
    turned_hot: Trend


def dashboard_turned_hot(*, user: Any, now: dt.datetime) -> Trend:
    """Leads the user sees that turned hot this week and the week before; a lead
    counts once per week. One query: the leads of the two weeks' ``grade.changed``
    events (one range of the partial index ``event_score_grade_idx``, read without
    the table), then those leads by key, so a sales rep's scope is checked on
    them alone rather than hashed from every lead the rep sees.

    (When a lead became an MQL is ``Lead.mql_at``, counted with the leads: reading
    it from every ``score.changed`` event of the two weeks took most of the
    dashboard's time at 5M events, bench/pages.py.)"""
    week, previous = _weeks(now)
    hot = Event.objects.filter(
        turned_hot(), occurred_at__gte=previous, occurred_at__lte=now, lead__isnull=False
    )
    row = (
        leads_visible_to(user)
        .filter(pk__in=hot.values("lead_id"))
        .aggregate(
            hot=Count("id", filter=Q(pk__in=hot.filter(occurred_at__gte=week).values("lead_id"))),
            hot_before=Count(
                "id", filter=Q(pk__in=hot.filter(occurred_at__lt=week).values("lead_id"))
            ),
        )
    )
    return Trend(row["hot"], row["hot_before"])


@dataclass(frozen=True)
class DailySeries:
    days: list[dt.date]
    new_leads: list[int]
    mqls: list[int]


def _per_day(rows: QuerySet[Any], field: str, since: dt.datetime) -> dict[dt.date, int]:
    zone = timezone.get_current_timezone()
    return {
        row["day"]: row["n"]
        for row in rows.filter(**{f"{field}__gte": since})
        .annotate(day=TruncDate(field, tzinfo=zone))
        .values("day")
        .annotate(n=Count("id"))
        .order_by("day")
    }


def dashboard_daily(*, user: Any, now: dt.datetime, days: int = CHART_DAYS) -> DailySeries:
    """New leads and new MQLs (by ``Lead.mql_at``) per day over the last ``days``
    days, today included, days without any as 0. Two queries."""
    today = timezone.localdate(now)
    start = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(start, dt.time(0, 0), tzinfo=timezone.get_current_timezone())
    new_leads = _per_day(leads_visible_to(user), "created_at", since)
    mqls = _per_day(leads_visible_to(user).filter(mql_at__lte=now), "mql_at", since)
    all_days = [start + dt.timedelta(days=i) for i in range(days)]
    return DailySeries(
        days=all_days,
        new_leads=[new_leads.get(day, 0) for day in all_days],
        mqls=[mqls.get(day, 0) for day in all_days],
    )


@dataclass(frozen=True)
class TaskDigest:
    due_today: int
    overdue: int
    upcoming: int
    # The open tasks to do next: overdue first, then the soonest due.
    tasks: list[Task]


def dashboard_tasks(*, user: Any, now: dt.datetime, limit: int = TASK_LIMIT) -> TaskDigest:
    """The user's open tasks: how many are overdue, due for the rest of today (as
    on "My tasks": from now until midnight) and due later (or without a date),
    and the first ``limit`` of them, the longest overdue first, with their leads.
    One query for the counts, one for the list when there is any."""
    end_of_today = dt.datetime.combine(
        timezone.localdate(now) + dt.timedelta(days=1),
        dt.time(0, 0),
        tzinfo=timezone.get_current_timezone(),
    )
    mine = Task.objects.filter(assignee_id=user.pk, status=TaskStatus.OPEN)
    counts = mine.aggregate(
        today=Count("id", filter=Q(due_at__gte=now, due_at__lt=end_of_today)),
        overdue=Count("id", filter=Q(due_at__lt=now)),
        upcoming=Count("id", filter=Q(due_at__gte=end_of_today) | Q(due_at__isnull=True)),
    )
    tasks: list[Task] = []
    if any(counts.values()):
        tasks = list(
            mine.select_related("lead").order_by(F("due_at").asc(nulls_last=True), "id")[:limit]
        )
    return TaskDigest(
        due_today=counts["today"],
        overdue=counts["overdue"],
        upcoming=counts["upcoming"],
        tasks=tasks,
    )


def dashboard_hot_leads(*, user: Any, limit: int = LIST_LIMIT) -> list[Lead]:
    """The hottest leads by score: the team's for admins and marketers, a sales
    rep's own for a rep. One query."""
    leads = leads_visible_to(user).filter(grade="hot")
    if not dashboard_team_wide(user):
        leads = leads.filter(owner_id=user.pk)
    return list(leads.select_related("owner").order_by("-score", "-id")[:limit])


def dashboard_active_flows(*, now: dt.datetime, limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """The flows with the most enrollments in the last 7 days: ``flow_id``,
    ``flow__name``, ``flow__status``, ``status_label`` and ``enrollments``. One query."""

    rows = list(
        Enrollment.objects.filter(created_at__gte=now - WEEK, created_at__lte=now)
        .values("flow_id", "flow__name", "flow__status")
        .annotate(enrollments=Count("id"))
        .order_by("-enrollments", "flow_id")[:limit]
    )
    for row in rows:
        row["status_label"] = FlowStatus(row["flow__status"]).label
    return rows


def dashboard_score_changes(
    *, user: Any, now: dt.datetime, limit: int = SCORE_CHANGES_LIMIT
) -> list[Any]:
    """The score changes of the last 7 days with the biggest deltas (up or down),
    on leads the user sees, with their lead and category. One query."""

    order = (Abs("delta").desc(), "-created_at", "-id")
    changes = ScoreChange.objects.filter(created_at__gte=now - WEEK, created_at__lte=now)
    if not dashboard_team_wide(user):
        changes = changes.filter(lead__in=leads_visible_to(user))
    # The week's biggest ids first, then those rows with their leads: sorting the
    # week's changes joined to their whole lead rows took 40 to 60 ms at 300,000
    # changes (bench/pages.py), the ids alone a few.
    biggest = changes.order_by(*order).values("id")[:limit]
    return list(
        ScoreChange.objects.filter(id__in=Subquery(biggest))
        .select_related("lead", "category")
        .order_by(*order)
    )


@dataclass(frozen=True)
class Dashboard:
    team_wide: bool
    leads: LeadCounts
    events: EventCounts
    daily: DailySeries
    tasks: TaskDigest
    hot_leads: list[Lead]
    flows: list[dict[str, Any]]
    score_changes: list[Any]


def dashboard_for(*, user: Any, now: dt.datetime | None = None) -> Dashboard:
    """Everything the dashboard shows for ``user``: the team's numbers for admins
    and marketers; for a sales rep only the leads they see, their own hot
    leads, and no flows."""

    now = now or timezone.now()
    team_wide = dashboard_team_wide(user)
    leads = dashboard_lead_counts(user=user, now=now)
    return Dashboard(
        team_wide=team_wide,
        leads=leads,
        events=EventCounts(mqls=leads.mqls, turned_hot=dashboard_turned_hot(user=user, now=now)),
        daily=dashboard_daily(user=user, now=now),
        tasks=dashboard_tasks(user=user, now=now),
        hot_leads=dashboard_hot_leads(user=user),
        flows=dashboard_active_flows(now=now) if team_wide else [],
        score_changes=dashboard_score_changes(user=user, now=now),
    )

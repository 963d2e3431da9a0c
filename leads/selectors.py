"""Reads, scoped to what the asking user may see."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import (
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
)
from django.utils.dateparse import parse_datetime

from core.roles import ADMIN_MARKETER, Role
from leads.category_scores import category_scores
from leads.models import CLOSED_STAGES, Event, Lead, SegmentMembership, Stage, Task, TaskStatus
from leads.roles import user_role


def leads_visible_to(user: Any) -> QuerySet[Lead]:
    """Admins and marketers see every lead; sales reps their own and unassigned ones."""
    leads = Lead.objects.all()
    role = user_role(user)
    if role in ADMIN_MARKETER:
        return leads
    if role == Role.SALES:
        return leads.filter(Q(owner=user) | Q(owner__isnull=True))
    return leads.none()


def events_visible_to(user: Any) -> QuerySet[Event]:
    role = user_role(user)
    events = Event.objects.all()
    if role in ADMIN_MARKETER:
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
    fit_grade: str = ""
    engagement_grade: str = ""
    # "Great fit, not yet engaged" (``GREAT_FIT``).
    great_fit: bool = False


# "Great fit, not yet engaged": who the lead is fits the ideal customer (fit A or
# B) but it has done little yet (engagement 3 or 4), and it is still a prospect
# (not closed, and not an opportunity sales already works).
# A low score is no reason to skip such a lead: a rep can start the conversation.
GREAT_FIT = Q(fit_grade__in=("A", "B"), engagement_grade__in=("3", "4")) & ~Q(
    stage__in=(*CLOSED_STAGES, Stage.OPPORTUNITY)
)


def _grades_filter(leads: QuerySet[Lead], filters: LeadFilters) -> QuerySet[Lead]:
    exact = {
        "grade": filters.grade,
        "fit_grade": filters.fit_grade,
        "engagement_grade": filters.engagement_grade,
    }
    leads = leads.filter(**{field: value for field, value in exact.items() if value})
    return leads.filter(GREAT_FIT) if filters.great_fit else leads


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
    leads = _grades_filter(leads, filters)
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
    for key, low, high in filters.category_scores:
        leads = leads.filter(category_scores().within(key, low, high))
    return leads


# --- sorting and keyset pagination ------------------------------------------------
#
# Each sort is a total order ending in the id, and a cursor is the sort value and
# id of the last row shown, so a page never repeats or skips a row, whatever ties
# there are and whatever rows are added meanwhile. A sort is its key, highest or
# newest first, or ``<key>:asc`` for the other way round.

LEAD_SORTS = ("created", "score", "activity", "fit", "engagement", "company", "job_title")
SORT_FIELDS = {
    "created": "created_at",
    "score": "score",
    "activity": "last_activity_at",
    # Points in a score category, read by ``leads_sorted``.
    "fit": "fit_points",
    "engagement": "engagement_points",
    "company": "company_name",
    "job_title": "job_title",
}
# Sorts by a whole number, by text, and (the rest) by a time.
NUMBER_SORTS = ("score", "fit", "engagement")
TEXT_SORTS = ("company", "job_title")
# Sorts on a column that may be null (nulls come last either way).
NULLABLE_SORTS = ("activity",)
ASCENDING = ":asc"

LeadCursor = tuple[int | str | dt.datetime | None, int]


def sort_parse(sort: str) -> tuple[str, bool]:
    """``(key, ascending)`` of a sort made by ``sort_join``."""
    key, ascending = (sort[: -len(ASCENDING)], True) if sort.endswith(ASCENDING) else (sort, False)
    return key, ascending


def sort_join(key: str, ascending: bool) -> str:
    return f"{key}{ASCENDING}" if ascending else key


def leads_sorted(leads: QuerySet[Lead], sort: str) -> QuerySet[Lead]:
    key, ascending = sort_parse(sort)
    if key in ("fit", "engagement"):
        leads = leads.annotate(**{SORT_FIELDS[key]: category_scores().points_of(key)})
    field = F(SORT_FIELDS[key])
    if key not in NULLABLE_SORTS:
        # No NULLS LAST on a column without nulls: PostgreSQL reads an index on
        # the column only in its own null order, and "DESC NULLS LAST" made the
        # default sort a scan and sort of every lead (137 ms at 100,000 leads,
        # bench/pages.py) where a walk of ``lead_created_idx`` reads 51 rows.
        return (
            leads.order_by(field.asc(), "id") if ascending else leads.order_by(field.desc(), "-id")
        )
    if ascending:
        return leads.order_by(field.asc(nulls_last=True), "id")
    return leads.order_by(field.desc(nulls_last=True), "-id")


def leads_after(leads: QuerySet[Lead], *, sort: str, cursor: LeadCursor) -> QuerySet[Lead]:
    """The rows that come after ``cursor`` in ``sort`` order."""
    key, ascending = sort_parse(sort)
    value, pk = cursor
    field = SORT_FIELDS[key]
    beyond, id_beyond = ("gt", "id__gt") if ascending else ("lt", "id__lt")
    if value is None:
        # Nulls come last, in id order.
        return leads.filter(**{f"{field}__isnull": True, id_beyond: pk})
    after = Q(**{f"{field}__{beyond}": value}) | Q(**{field: value, id_beyond: pk})
    if key in NULLABLE_SORTS:
        after |= Q(**{f"{field}__isnull": True})
    return leads.filter(after)


def lead_cursor(lead: Lead, sort: str) -> str:
    """The cursor after ``lead``: ``<sort value>~<id>`` (an empty value for null)."""
    key, _ascending = sort_parse(sort)
    value = getattr(lead, SORT_FIELDS[key])
    if value is None:
        text = ""
    elif key in NUMBER_SORTS or key in TEXT_SORTS:
        text = str(value)
    else:
        text = value.isoformat()
    return f"{text}~{lead.pk}"


def lead_cursor_parse(text: str, sort: str) -> LeadCursor | None:
    """A cursor made by ``lead_cursor``, or None when it is not one. A bare id (as
    older links carry) stands for the row with that id."""
    key, _ascending = sort_parse(sort)
    if text.isdigit():
        rows = leads_sorted(Lead.objects.filter(pk=int(text)), sort)
        row = rows.values(SORT_FIELDS[key], "id").first()
        return (row[SORT_FIELDS[key]], row["id"]) if row else None
    raw_value, sep, raw_id = text.rpartition("~")
    if not sep or not raw_id.isdigit():
        return None
    if key in TEXT_SORTS:
        return raw_value, int(raw_id)
    if key in NUMBER_SORTS:
        try:
            return int(raw_value), int(raw_id)
        except ValueError:
            return None
    if not raw_value:
        return (None, int(raw_id)) if key in NULLABLE_SORTS else None
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


# --- tasks ---------------------------------------------------------------------------


def lead_tasks(lead: Lead, limit: int = 20) -> list[Any]:
    """The profile's tasks: open ones first, soonest due first."""
    tasks = lead.tasks.select_related("assignee").order_by(
        "-status", F("due_at").asc(nulls_last=True), "-pk"
    )
    return list(tasks[:limit])


def lead_task_sections(lead: Lead, limit: int = 20) -> dict[str, list[Any]]:
    """The profile's tasks split for its tasks box: ``open_tasks`` (soonest due
    first) and ``closed_tasks`` (done or closed). One query."""
    tasks = lead_tasks(lead, limit)
    return {
        "open_tasks": [t for t in tasks if t.status == TaskStatus.OPEN],
        "closed_tasks": [t for t in tasks if t.status != TaskStatus.OPEN],
    }


# --- tasks ----------------------------------------------------------------------


def tasks_actionable_by(user: Any) -> QuerySet[Task]:
    """Tasks the user may complete, snooze or reassign: admins and marketers all
    of them; sales reps those assigned to them and those on leads they can see."""
    tasks = Task.objects.select_related("lead", "assignee")
    if user_role(user) in ADMIN_MARKETER:
        return tasks
    return tasks.filter(Q(assignee=user) | Q(lead__in=leads_visible_to(user)))


def _in_group(name: str) -> Exists:
    return Exists(User.groups.through.objects.filter(user_id=OuterRef("pk"), group__name=name))


def task_assignees() -> QuerySet[User]:
    """Active users whose role (as ``user_role`` decides it) is sales or admin."""
    return (
        User.objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True)
            | _in_group(Role.ADMIN)
            | (_in_group(Role.SALES) & ~_in_group(Role.MARKETER))
        )
        .order_by("username")
    )


def lead_language(lead: Lead) -> str:
    """The language of the emails and pages a lead gets: its own when it is one
    the site speaks ("de-AT" counts as "de"), else the site's default."""
    spoken = {code for code, _name in settings.LANGUAGES}
    code = (lead.language or "").strip().lower().replace("_", "-")
    if code in spoken:
        return code
    base = code.split("-", 1)[0]
    return base if base in spoken else str(settings.LANGUAGE_CODE)

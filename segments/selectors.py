"""Reads about segments: the list, previews, members, candidates to add, the
names an activity rule can pick from, a lead's history in segments."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leads.models import Event, Lead, Segment, SegmentMembership
from leads.selectors import lead_search, leads_visible_to
from segments.conditions import compile_tree

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

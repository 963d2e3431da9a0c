"""A series of score changes that one event makes to one lead, written in one
statement (PostgreSQL).

An event of a large account enters many scoring flows at once, and each used
to change the score in a statement of its own, reading the points before it.
A series reads the lead's points once, works out every change in order as
``score_adjust`` would (what a cap lets count, the totals, the grades and the
events that announce them), and writes the ledger rows, the totals, the lead
and the events together, with the rows of the caller that the changes belong
to (a flow's enrollments and steps) in the same statement.

A change whose rise would move the lead's stage ends the series before it: it
goes through ``score_adjust``, which moves the stage with its own events, in
their order.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from core import prepared
from core.scope import batch_cached
from leads.models import Event, Lead
from leads.services.events import SYSTEM_SOURCE, derived_events_insert, events_written
from scoring.models import LeadScore, ScoreCategory, ScoreChange
from scoring.rules import ENGAGEMENT, FIT, Grades, counted_points, grades_for, stage_after_score
from scoring.services import grade_change_properties, score_category_id, scoring_settings


@dataclass(frozen=True)
class Ask:
    """A change asked for: ``points`` in ``category``, for ``reason``."""

    category: ScoreCategory
    points: int
    reason: str


@dataclass
class _Change:
    ask: Ask
    counted: int
    # The properties of its ``score.changed`` (None: capped away, no event),
    # and of its ``grade.changed`` when a grade moved.
    announced: dict[str, Any] | None = None
    grades: Grades | None = None
    graded: dict[str, Any] | None = None


@dataclass
class Series:
    """The changes a lead's points let through, in order (``len(changes)`` of
    the asks: the rest start with one that moves the stage)."""

    lead: Lead
    changes: list[_Change] = field(default_factory=list)
    # The points the changes add, and the lead's total after them.
    total: int = 0
    score: int = 0
    grades: Grades | None = None
    # Points added per category id (0 for a change capped away: its row of
    # points exists all the same, as ``score_adjust`` leaves it).
    points: dict[int, int] = field(default_factory=dict)


# The lead's totals, grades and stage, and its points per category. The caller
# holds the lead's lock, so nothing moves them until the series is written.
_BEFORE = (
    "SELECT l.score, l.grade, l.fit_grade, l.engagement_grade, l.stage, "  # noqa: S608
    f"array(SELECT s.category_id FROM {LeadScore._meta.db_table} s WHERE s.lead_id = l.id "
    "ORDER BY s.category_id), "
    f"array(SELECT s.score FROM {LeadScore._meta.db_table} s WHERE s.lead_id = l.id "
    "ORDER BY s.category_id) "
    f"FROM {Lead._meta.db_table} l WHERE l.id = %s"
)


def series_plan(*, lead: Lead, asks: Sequence[Ask]) -> Series:
    """Work out ``asks`` in order from the lead's points as they are now, up to
    the first whose rise would move the lead's stage."""
    settings = batch_cached("scoring_settings", scoring_settings)
    ((total, grade, fit_grade, engagement_grade, stage, ids, scores),) = prepared.fetch(
        _BEFORE, [lead.pk]
    )
    points = dict(zip(ids, scores, strict=True))
    fit_id, engagement_id = score_category_id(FIT), score_category_id(ENGAGEMENT)
    grades = Grades(grade, fit_grade, engagement_grade)
    series = Series(lead=lead, grades=grades)
    for ask in asks:
        category = ask.category
        held = points.get(category.pk, 0)
        counted = counted_points(
            asked=ask.points,
            points=held,
            total=total,
            cap=category.cap,
            total_cap=settings.total_cap,
        )
        if stage_after_score(before=total, after=total + counted, stage=stage, settings=settings):
            break
        change = _Change(ask=ask, counted=counted)
        series.changes.append(change)
        series.points[category.pk] = series.points.get(category.pk, 0) + counted
        if counted == 0:
            continue
        points[category.pk] = held + counted
        total += counted
        change.announced = {
            "delta": counted,
            "from": total - counted,
            "to": total,
            "category": category.key,
            "category_from": held,
            "category_to": held + counted,
            "reason": ask.reason[:255],
        }
        if counted != ask.points:
            change.announced["capped"] = ask.points - counted
        after = grades_for(
            total=total,
            fit=points.get(fit_id, 0) if fit_id is not None else 0,
            engagement=points.get(engagement_id, 0) if engagement_id is not None else 0,
            stage=stage,
            settings=settings,
        )
        if after != grades:
            change.grades = after
            change.graded = grade_change_properties(before=grades, after=after, score=total)
            grades = after
        series.total += counted
    series.score = total
    series.grades = grades
    return series


@functools.cache
def series_sql(key: str, between: str = "", key_from: str = "") -> str:
    """The statement that writes a series. Its first CTEs are ``series`` (the
    changes, numbered ``n`` from 1) and ``change_ids`` (``n`` and the id of
    its ledger row, drawn in order); the caller's CTEs ``between`` come next,
    and may read both. A change's ledger row is keyed by ``key``, an SQL
    expression over ``series``, ``change_ids`` and what ``key_from`` joins."""
    ledger = ScoreChange._meta.db_table
    return (
        # One JSON document per set of rows: psycopg dumps a list as an array
        # in Python, element by element, and eight arrays took longer to bind
        # than the statement took to run.
        "WITH series AS (SELECT * FROM jsonb_to_recordset(%(series)s::jsonb) "  # noqa: S608
        "AS a(n int, category int8, asked int4, counted int4, reason varchar, "
        "category_key varchar, announced jsonb, grade varchar, graded jsonb)), "
        f"change_ids AS MATERIALIZED (SELECT n, nextval('{prepared.sequence(ledger)}'::regclass) "
        "AS id FROM series ORDER BY n), "
        f"{between + ', ' if between else ''}"
        f"ledger AS (INSERT INTO {ledger} (id, lead_id, delta, capped, category_id, reason, "
        "source, source_key, created_by_id, created_at, occurred_at) "
        "SELECT c.id, %(lead)s, a.counted, a.asked - a.counted, a.category, a.reason, "
        f"%(source)s, {key}, NULL, %(now)s, %(occurred_at)s "
        f"FROM series a JOIN change_ids c USING (n) {key_from} ORDER BY a.n), "
        f"lead AS (UPDATE {Lead._meta.db_table} SET score = score + %(total)s, "
        "grade = %(lead_grade)s, fit_grade = %(lead_fit_grade)s, "
        "engagement_grade = %(lead_engagement_grade)s WHERE id = %(lead)s AND %(lead_moves)s), "
        f"points AS (INSERT INTO {LeadScore._meta.db_table} AS s (lead_id, category_id, score) "
        "SELECT %(lead)s, p.category, p.delta "
        "FROM jsonb_to_recordset(%(points)s::jsonb) AS p(category int8, delta int4) "
        "ON CONFLICT (lead_id, category_id) DO UPDATE SET score = s.score + excluded.score), "
        "announced AS ("
        + derived_events_insert(
            "SELECT 2 * a.n AS n, 'score.changed' AS type, a.category_key AS name, "
            "a.announced AS properties, 'score.changed:' || c.id AS key "
            "FROM series a JOIN change_ids c USING (n) WHERE a.announced IS NOT NULL "
            "UNION ALL SELECT 2 * a.n + 1, 'grade.changed', a.grade, a.graded, "
            "'grade.changed:' || c.id FROM series a JOIN change_ids c USING (n) "
            "WHERE a.graded IS NOT NULL"
        )
        + ") SELECT (SELECT array_agg(id ORDER BY n) FROM change_ids), "
        "(SELECT array_agg(id) FROM announced), (SELECT array_agg(idempotency_key) FROM announced)"
    )


def series_write(
    series: Series,
    *,
    cause: Event,
    source: str,
    key: str,
    between: str = "",
    key_from: str = "",
    params: Mapping[str, Any] | None = None,
) -> list[int]:
    """Write ``series`` (at least one change), caused by ``cause``, with the
    caller's CTEs and their ``params`` (see ``series_sql``); returns the ids of
    the ledger rows in order. The lead's score and grades move on the instance
    too, and the events are handed to the pipeline."""
    from psycopg.types.json import Jsonb

    lead, changes = series.lead, series.changes
    assert series.grades is not None
    now = timezone.now()
    depth = cause.depth + 1
    values: dict[str, Any] = {
        **(params or {}),
        "series": Jsonb(
            [
                {
                    "n": n,
                    "category": c.ask.category.pk,
                    "asked": c.ask.points,
                    "counted": c.counted,
                    "reason": c.ask.reason[:255],
                    "category_key": c.ask.category.key,
                    "announced": c.announced,
                    "grade": c.grades.grade if c.grades is not None else None,
                    "graded": c.graded,
                }
                for n, c in enumerate(changes, 1)
            ]
        ),
        "lead": lead.pk,
        "source": source,
        "now": now,
        "occurred_at": cause.occurred_at,
        "total": series.total,
        "lead_grade": series.grades.grade,
        "lead_fit_grade": series.grades.fit_grade,
        "lead_engagement_grade": series.grades.engagement_grade,
        "lead_moves": series.total != 0 or any(c.grades is not None for c in changes),
        "points": Jsonb([{"category": k, "delta": v} for k, v in series.points.items()]),
        "derived_lead": lead.pk,
        "derived_depth": depth,
        "derived_occurred_at": cause.occurred_at,
        "derived_received_at": now,
    }
    ((change_ids, event_ids, keys),) = prepared.fetch(series_sql(key, between, key_from), values)
    lead.score = series.score
    lead.grade, lead.fit_grade, lead.engagement_grade = series.grades
    if event_ids:
        written = dict(zip(keys, event_ids, strict=True))
        events: list[Event] = []
        for change, change_id in zip(changes, change_ids, strict=True):
            announced = [("score.changed", change.ask.category.key, change.announced)]
            if change.grades is not None:
                announced.append(("grade.changed", change.grades.grade, change.graded))
            for type_, name, properties in announced:
                event_key = f"{type_}:{change_id}"
                if properties is None or event_key not in written:
                    continue
                events.append(
                    Event(
                        pk=written[event_key],
                        lead=lead,
                        type=type_,
                        name=name,
                        properties=properties,
                        occurred_at=cause.occurred_at,
                        received_at=now,
                        source=SYSTEM_SOURCE,
                        idempotency_key=event_key,
                        depth=depth,
                    )
                )
        events_written(events=events)
    return list(change_ids)

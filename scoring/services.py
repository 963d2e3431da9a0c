"""Score writes: every change is a ledger row, applied to the lead's totals as increments
in the database in the same transaction, and announced as ``score.changed`` (and
``grade.changed`` when the grade moves)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Case, CharField, F, Value, When
from django.utils import timezone
from django.utils.translation import gettext

from core import prepared
from core.scope import batch_cached
from core.vocabulary import Grade
from leads.models import Event, Lead
from leads.services.events import SYSTEM_SOURCE, event_derive, events_record
from leads.services.leads import lead_update
from scoring.models import (
    LeadScore,
    ReviewLogEntry,
    ScoreCategory,
    ScoreChange,
    ScoreSource,
    ScoringSettings,
)
from scoring.rules import ENGAGEMENT, FIT, Grades, grades_for, stage_after_score


def scoring_settings() -> ScoringSettings:
    return ScoringSettings.objects.order_by("id").first() or ScoringSettings.objects.create()


@transaction.atomic
def scoring_settings_update(**values: Any) -> ScoringSettings:
    """Save thresholds; if the grade thresholds moved, regrade the leads."""
    settings = ScoringSettings.objects.select_for_update().get(pk=scoring_settings().pk)
    old = (settings.warm_threshold, settings.hot_threshold)
    for field, value in values.items():
        setattr(settings, field, value)
    settings.save()
    if (settings.warm_threshold, settings.hot_threshold) != old:
        grades_recompute(settings=settings)
    return settings


def grade_for(score: int, settings: ScoringSettings) -> str:
    if score >= settings.hot_threshold:
        return Grade.HOT
    if score >= settings.warm_threshold:
        return Grade.WARM
    return Grade.COLD


def score_category(key: str) -> ScoreCategory:
    """The category with this key (read once per batch of events)."""
    categories = batch_cached(
        "score_categories", lambda: {c.key: c for c in ScoreCategory.objects.all()}
    )
    try:
        return categories[key]
    except KeyError:
        raise ScoreCategory.DoesNotExist(f"No score category {key!r}.") from None


class CategoryDeleteRefused(ValueError):
    """A category that must stay: a built-in one, or one the ledger has points in."""


@transaction.atomic
def score_category_delete(*, category: ScoreCategory) -> None:
    """Delete a team's own score category. The ledger keeps every row, so a
    category with score changes stays (and so do the lead scores it sums to);
    built-in categories stay too. The category's row is locked first: a change
    written meanwhile locks it as well, so it is either refused here or waits
    and fails to find the category."""
    locked = ScoreCategory.objects.select_for_update().filter(pk=category.pk).first()
    if locked is None:
        return
    if locked.builtin:
        raise CategoryDeleteRefused(gettext("Built-in categories cannot be deleted."))
    if ScoreChange.objects.filter(category=locked).exists():
        raise CategoryDeleteRefused(
            gettext("This category has score changes; it cannot be deleted.")
        )
    # Lead scores go with it (LeadScore's foreign key cascades); without score
    # changes there are none but rows of 0.
    locked.delete()


def counted_points(
    *, asked: int, points: int, total: int, cap: int | None, total_cap: int | None
) -> int:
    """How much of a change of ``asked`` points counts in a category holding
    ``points`` of a lead's ``total``: a rise stops at the category's cap and at the
    total's cap (never below 0: points already past a lowered cap stay); a fall
    is never capped. The SQL of ``score_adjust`` computes the same."""
    if asked <= 0:
        return asked
    counted = asked
    if cap is not None:
        counted = min(counted, cap - points)
    if total_cap is not None:
        counted = min(counted, total_cap - total)
    return max(0, counted)


# Raw statements where one round trip does what the ORM needs two or three for:
# insert-or-skip with the new id, add-and-return, upsert-and-return. Table and
# column names are constants; every value is a bound parameter.
_LEAD = Lead._meta.db_table
_POINTS = LeadScore._meta.db_table
_LEDGER = ScoreChange._meta.db_table

# The lead's total and its points in the category and on the two axes, before the
# change. The lead is locked by the caller, so nothing moves them meanwhile.
_BEFORE = (
    "SELECT l.score AS total, "  # noqa: S608
    f"COALESCE((SELECT s.score FROM {_POINTS} s WHERE s.lead_id = l.id "
    "AND s.category_id = %(category)s), 0) AS points, "
    f"COALESCE((SELECT s.score FROM {_POINTS} s WHERE s.lead_id = l.id "
    "AND s.category_id = %(fit)s), 0) AS fit, "
    f"COALESCE((SELECT s.score FROM {_POINTS} s WHERE s.lead_id = l.id "
    "AND s.category_id = %(engagement)s), 0) AS engagement "
    f"FROM {_LEAD} l WHERE l.id = %(lead)s"
)
# ``counted_points`` in SQL.
_COUNTED = (
    "CASE WHEN %(asked)s <= 0 THEN %(asked)s ELSE GREATEST(0, LEAST(%(asked)s, "
    "COALESCE(CAST(%(cap)s AS integer) - points, %(asked)s), "
    "COALESCE(CAST(%(total_cap)s AS integer) - total, %(asked)s))) END"
)
_LEDGER_COLUMNS = (
    "lead_id, delta, capped, category_id, reason, source, source_key, created_by_id, "
    "created_at, occurred_at"
)
_LEDGER_VALUES = (
    "%(lead)s, {counted}, %(asked)s - {counted}, %(category)s, %(reason)s, %(source)s, "
    "%(source_key)s, %(created_by)s, %(now)s, %(occurred_at)s"
)
_LEDGER_INSERT = (
    f"INSERT INTO {_LEDGER} ({_LEDGER_COLUMNS}) VALUES ("  # noqa: S608
    + _LEDGER_VALUES.format(counted="%(delta)s")
    + ") ON CONFLICT (source_key) DO NOTHING RETURNING id"
)
_LEAD_ADD = (
    f"UPDATE {_LEAD} SET score = score + %s WHERE id = %s "  # noqa: S608
    "RETURNING score, grade, fit_grade, engagement_grade, stage"
)
_CATEGORY_ADD = (
    f"INSERT INTO {_POINTS} AS s (lead_id, category_id, score) "  # noqa: S608
    "VALUES (%s, %s, %s) ON CONFLICT (lead_id, category_id) "
    "DO UPDATE SET score = s.score + excluded.score RETURNING score"
)

# All of it in one round trip on PostgreSQL (prepared): the points before, what
# counts of the change, the ledger row, and the totals moved only if the row was
# inserted (no row comes back if it already existed). Every part of one statement
# sees the same snapshot, so ``before`` holds the points before the change.
_SCORE_ADD = (
    f"WITH before AS ({_BEFORE}), "  # noqa: S608
    f"counted AS (SELECT fit, engagement, {_COUNTED} AS delta FROM before), "
    f"change AS (INSERT INTO {_LEDGER} ({_LEDGER_COLUMNS}) "
    f"SELECT {_LEDGER_VALUES.format(counted='delta')} FROM counted "
    "ON CONFLICT (source_key) DO NOTHING RETURNING id, delta), "
    f"lead AS (UPDATE {_LEAD} l SET score = l.score + change.delta FROM change "
    "WHERE l.id = %(lead)s RETURNING l.score, l.grade, l.fit_grade, l.engagement_grade, "
    "l.stage), "
    f"category AS (INSERT INTO {_POINTS} AS s (lead_id, category_id, score) "
    "SELECT %(lead)s, %(category)s, delta FROM change ON CONFLICT (lead_id, category_id) "
    "DO UPDATE SET score = s.score + excluded.score RETURNING score) "
    "SELECT change.id, change.delta, lead.score, lead.grade, lead.fit_grade, "
    "lead.engagement_grade, lead.stage, category.score, counted.fit, counted.engagement "
    "FROM change, lead, category, counted"
)


def _category_id(key: str) -> int | None:
    try:
        return score_category(key).pk
    except ScoreCategory.DoesNotExist:
        return None


@transaction.atomic(savepoint=False)
def score_adjust(
    *,
    lead: Lead,
    delta: int,
    category: ScoreCategory,
    reason: str,
    source: str,
    source_key: str,
    created_by: User | None = None,
    cause: Event | None = None,
    occurred_at: datetime | None = None,
) -> ScoreChange | None:
    """Add ``delta`` points in ``category``. A second call with the same
    ``source_key`` changes nothing and returns None.

    The caller holds the lead's lock (the event pipeline does; changes by hand go
    through ``score_adjust_by_hand``): what counts of a rise depends on the points
    before it. A rise past the category's cap or the total's counts only up to it
    (the row's ``delta``; the rest is its ``capped``). The lead's grades move with
    its points, with a ``grade.changed`` event when any of them moved.

    The change happened at ``occurred_at``: by default when its cause did (the
    event's time), or now; its derived events carry that time."""
    now = timezone.now()
    if occurred_at is None:
        occurred_at = cause.occurred_at if cause is not None else now
    settings = batch_cached("scoring_settings", scoring_settings)
    fit_id, engagement_id = _category_id(FIT), _category_id(ENGAGEMENT)
    values: dict[str, Any] = {
        "lead": lead.pk,
        "asked": delta,
        "category": category.pk,
        "reason": reason[:255],
        "source": source,
        "source_key": source_key,
        "created_by": created_by.pk if created_by else None,
        "now": now,
        "occurred_at": occurred_at,
        "cap": category.cap,
        "total_cap": settings.total_cap,
        "fit": fit_id,
        "engagement": engagement_id,
    }
    if prepared.enabled():
        rows = prepared.fetch(_SCORE_ADD, values)
        if not rows:
            return None
        (
            change_id,
            counted,
            new_score,
            old_grade,
            old_fit_grade,
            old_engagement_grade,
            stage,
            category_after,
            fit,
            engagement,
        ) = rows[0]
    else:
        # Stored as Django stores them (UTC, no offset), so they compare as text.
        adapt = connection.ops.adapt_datetimefield_value
        values.update(now=adapt(now), occurred_at=adapt(occurred_at))
        with connection.cursor() as cursor:
            cursor.execute(_BEFORE, values)
            total, points, fit, engagement = cursor.fetchone()
            counted = counted_points(
                asked=delta,
                points=points,
                total=total,
                cap=category.cap,
                total_cap=settings.total_cap,
            )
            cursor.execute(_LEDGER_INSERT, {**values, "delta": counted})
            inserted = cursor.fetchone()
            if inserted is None:
                return None
            change_id = inserted[0]
            cursor.execute(_LEAD_ADD, [counted, lead.pk])
            new_score, old_grade, old_fit_grade, old_engagement_grade, stage = cursor.fetchone()
            cursor.execute(_CATEGORY_ADD, [lead.pk, category.pk, counted])
            category_after = cursor.fetchone()[0]
    change = ScoreChange(
        pk=change_id,
        lead=lead,
        delta=counted,
        capped=delta - counted,
        category=category,
        reason=reason[:255],
        source=source,
        source_key=source_key,
        created_by=created_by,
        created_at=now,
        occurred_at=occurred_at,
    )
    # The axes after the change: the changed category's points from the upsert,
    # the other's from before (it did not move).
    if category.pk == fit_id:
        fit = category_after
    if category.pk == engagement_id:
        engagement = category_after
    lead.score = new_score
    if counted == 0:
        # Capped away entirely: the row records it, nothing moved.
        return change
    old_score = new_score - counted
    category_before = category_after - counted
    grades = grades_for(
        total=new_score, fit=fit, engagement=engagement, stage=stage, settings=settings
    )
    depth = cause.depth + 1 if cause is not None else 0
    props: dict[str, Any] = {
        "delta": counted,
        "from": old_score,
        "to": new_score,
        "category": category.key,
        "category_from": category_before,
        "category_to": category_after,
        "reason": change.reason,
    }
    if change.capped:
        props["capped"] = change.capped
    event_derive(
        lead=lead,
        type="score.changed",
        name=category.key,
        properties=props,
        key=f"score.changed:{change.pk}",
        depth=depth,
        occurred_at=occurred_at,
    )
    old = Grades(old_grade, old_fit_grade, old_engagement_grade)
    if grades != old:
        grade_changed(
            lead=lead,
            before=old,
            after=grades,
            score=new_score,
            key=f"grade.changed:{change.pk}",
            depth=depth,
            occurred_at=occurred_at,
        )
    lead.grade, lead.fit_grade, lead.engagement_grade = grades
    moved = stage_after_score(before=old_score, after=new_score, stage=stage, settings=settings)
    if moved is not None:
        locked = Lead.objects.select_for_update().get(pk=lead.pk)
        lead_update(lead=locked, changes={"stage": moved}, cause=cause)
        lead.stage = moved
    return change


def grade_changed(
    *,
    lead: Lead,
    before: Grades,
    after: Grades,
    score: int,
    key: str,
    depth: int = 0,
    occurred_at: datetime | None = None,
) -> None:
    """Write a lead's new grades and announce them with ``grade.changed`` (named
    after the new grade; from/to are the grade, fit_from/fit_to and
    engagement_from/engagement_to the axes)."""
    Lead.objects.filter(pk=lead.pk).update(
        grade=after.grade, fit_grade=after.fit_grade, engagement_grade=after.engagement_grade
    )
    event_derive(
        lead=lead,
        type="grade.changed",
        name=after.grade,
        properties=grade_change_properties(before=before, after=after, score=score),
        key=key,
        depth=depth,
        occurred_at=occurred_at,
    )


def grade_change_properties(*, before: Grades, after: Grades, score: int) -> dict[str, Any]:
    """The properties of a ``grade.changed`` event."""
    return {
        "from": before.grade,
        "to": after.grade,
        "score": score,
        "fit_from": before.fit_grade,
        "fit_to": after.fit_grade,
        "engagement_from": before.engagement_grade,
        "engagement_to": after.engagement_grade,
    }


@transaction.atomic
def score_adjust_by_hand(
    *, lead: Lead, delta: int, category: ScoreCategory, reason: str, user: User | None
) -> ScoreChange | None:
    """A change by hand (the scoring API, the lead profile), logged with its user.
    Locks the lead first, as the event pipeline does, so a change processed
    meanwhile cannot slip between reading the points a cap depends on and
    writing them."""
    locked = Lead.objects.select_for_update().get(pk=lead.pk)
    change = score_adjust(
        lead=locked,
        delta=delta,
        category=category,
        reason=reason,
        source=ScoreSource.MANUAL,
        source_key=f"manual:{uuid.uuid4().hex}",
        created_by=user,
    )
    lead.score, lead.grade = locked.score, locked.grade
    lead.fit_grade, lead.engagement_grade, lead.stage = (
        locked.fit_grade,
        locked.engagement_grade,
        locked.stage,
    )
    return change


def scoring_mismatches() -> list[tuple[int, str, int, int]]:
    """Leads whose totals differ from their ledger: (lead, what, stored, ledger)."""
    from django.db.models import Exists, OuterRef, Subquery, Sum, Value
    from django.db.models.functions import Coalesce

    ledger_total = Coalesce(
        Subquery(
            ScoreChange.objects.filter(lead=OuterRef("pk"))
            .order_by()
            .values("lead")
            .annotate(total=Sum("delta"))
            .values("total")[:1]
        ),
        Value(0),
    )
    out = [
        (lead_id, "score", stored, ledger)
        for lead_id, stored, ledger in Lead.objects.annotate(ledger=ledger_total)
        .exclude(score=F("ledger"))
        .values_list("id", "score", "ledger")
    ]
    ledger_category = Coalesce(
        Subquery(
            ScoreChange.objects.filter(lead=OuterRef("lead"), category=OuterRef("category"))
            .order_by()
            .values("lead")
            .annotate(total=Sum("delta"))
            .values("total")[:1]
        ),
        Value(0),
    )
    out += [
        (lead_id, f"score.{key}", stored, ledger)
        for lead_id, key, stored, ledger in LeadScore.objects.annotate(ledger=ledger_category)
        .exclude(score=F("ledger"))
        .values_list("lead_id", "category__key", "score", "ledger")
    ]
    # A category with ledger rows but no LeadScore row is a mismatch too.
    missing = (
        ScoreChange.objects.filter(
            ~Exists(LeadScore.objects.filter(lead=OuterRef("lead"), category=OuterRef("category")))
        )
        .values_list("lead_id", "category__key")
        .distinct()
    )
    out += [(lead_id, f"score.{key}", 0, -1) for lead_id, key in missing]
    return out


def grades_recompute(*, settings: ScoringSettings, lead_ids: Sequence[int] | None = None) -> int:
    """After the thresholds change: regrade every lead (or those of ``lead_ids``)
    whose grade moved, each with a ``grade.changed`` event. Returns how many moved."""
    graded = Case(
        When(score__gte=settings.hot_threshold, then=Value(Grade.HOT)),
        When(score__gte=settings.warm_threshold, then=Value(Grade.WARM)),
        default=Value(Grade.COLD),
        output_field=CharField(),
    )
    moved = 0
    stamp = uuid.uuid4().hex
    while True:
        leads = Lead.objects.all() if lead_ids is None else Lead.objects.filter(pk__in=lead_ids)
        batch = list(
            leads.annotate(new_grade=graded)
            .exclude(grade=F("new_grade"))
            .values_list("id", "grade", "new_grade", "score")[:2000]
        )
        if not batch:
            return moved
        with transaction.atomic():
            now = timezone.now()
            for new_grade in {row[2] for row in batch}:
                Lead.objects.filter(pk__in=[r[0] for r in batch if r[2] == new_grade]).update(
                    grade=new_grade
                )
            events_record(
                events=[
                    Event(
                        lead_id=lead_id,
                        type="grade.changed",
                        name=new_grade,
                        properties={"from": old, "to": new_grade, "score": score},
                        occurred_at=now,
                        received_at=now,
                        source=SYSTEM_SOURCE,
                        idempotency_key=f"grade.changed:regrade:{stamp}:{lead_id}",
                    )
                    for lead_id, old, new_grade, score in batch
                ]
            )
        moved += len(batch)


def review_log_record(
    *, user: User | None, subject: str, summary: str, changes: dict[str, Any] | None = None
) -> ReviewLogEntry:
    """Write down a change to the scoring model (``subject``: "settings",
    "category", "flow" or "preset") with who made it, so a month's review can be
    read against the model that produced its numbers."""
    return ReviewLogEntry.objects.create(
        user=user, subject=subject, summary=summary[:500], changes=changes or {}
    )

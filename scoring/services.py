"""Score writes: every change is a ledger row, applied to the lead's totals as increments
in the database in the same transaction, and announced as ``score.changed`` (and
``grade.changed`` when the grade moves)."""

from __future__ import annotations

import uuid
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
    ScoringSettings,
)
from scoring.rules import stage_after_score


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


# Raw statements where one round trip does what the ORM needs two or three for:
# insert-or-skip with the new id, add-and-return, upsert-and-return. Table and
# column names are constants; every value is a bound parameter.
_LEDGER_INSERT = (
    f"INSERT INTO {ScoreChange._meta.db_table} "  # noqa: S608
    "(lead_id, delta, category_id, reason, source, source_key, created_by_id, created_at, "
    "occurred_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (source_key) DO NOTHING RETURNING id"
)
_LEAD_ADD = (
    f"UPDATE {Lead._meta.db_table} SET score = score + %s WHERE id = %s "  # noqa: S608
    "RETURNING score, grade, stage"
)
_CATEGORY_ADD = (
    f"INSERT INTO {LeadScore._meta.db_table} AS s (lead_id, category_id, score) "  # noqa: S608
    "VALUES (%s, %s, %s) ON CONFLICT (lead_id, category_id) "
    "DO UPDATE SET score = s.score + excluded.score RETURNING score"
)

# The three in one round trip on PostgreSQL (prepared): the totals move only if
# the ledger row was inserted, and no row comes back if it already existed.
_SCORE_ADD = (
    f"WITH change AS ({_LEDGER_INSERT}), "  # noqa: S608
    f"lead AS (UPDATE {Lead._meta.db_table} SET score = score + %s "
    "WHERE id = %s AND EXISTS (SELECT FROM change) RETURNING score, grade, stage), "
    f"category AS (INSERT INTO {LeadScore._meta.db_table} AS s (lead_id, category_id, score) "
    "SELECT %s, %s, %s FROM change ON CONFLICT (lead_id, category_id) "
    "DO UPDATE SET score = s.score + excluded.score RETURNING score) "
    "SELECT change.id, lead.score, lead.grade, lead.stage, category.score "
    "FROM change, lead, category"
)


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
) -> ScoreChange | None:
    """Add ``delta`` points in ``category``. A second call with the same
    ``source_key`` changes nothing and returns None. The lead's row is locked
    by the update until the transaction ends. The change happened when its cause
    did (the event's time), or now."""
    now = timezone.now()
    occurred_at = cause.occurred_at if cause is not None else now
    ledger: list[Any] = [
        lead.pk,
        delta,
        category.pk,
        reason[:255],
        source,
        source_key,
        created_by.pk if created_by else None,
        now,
        occurred_at,
    ]
    if prepared.enabled():
        rows = prepared.fetch(_SCORE_ADD, [*ledger, delta, lead.pk, lead.pk, category.pk, delta])
        if not rows:
            return None
        change_id, new_score, old_grade, stage, category_after = rows[0]
    else:
        with connection.cursor() as cursor:
            cursor.execute(_LEDGER_INSERT, ledger)
            inserted = cursor.fetchone()
            if inserted is None:
                return None
            change_id = inserted[0]
            cursor.execute(_LEAD_ADD, [delta, lead.pk])
            new_score, old_grade, stage = cursor.fetchone()
            cursor.execute(_CATEGORY_ADD, [lead.pk, category.pk, delta])
            category_after = cursor.fetchone()[0]
    change = ScoreChange(
        pk=change_id,
        lead=lead,
        delta=delta,
        category=category,
        reason=reason[:255],
        source=source,
        source_key=source_key,
        created_by=created_by,
        created_at=now,
        occurred_at=occurred_at,
    )
    old_score = new_score - delta
    category_before = category_after - delta
    settings = batch_cached("scoring_settings", scoring_settings)
    new_grade = grade_for(new_score, settings)
    depth = cause.depth + 1 if cause is not None else 0
    props: dict[str, Any] = {
        "delta": delta,
        "from": old_score,
        "to": new_score,
        "category": category.key,
        "category_from": category_before,
        "category_to": category_after,
        "reason": change.reason,
    }
    event_derive(
        lead=lead,
        type="score.changed",
        name=category.key,
        properties=props,
        key=f"score.changed:{change.pk}",
        depth=depth,
        occurred_at=occurred_at,
    )
    if new_grade != old_grade:
        Lead.objects.filter(pk=lead.pk).update(grade=new_grade)
        event_derive(
            lead=lead,
            type="grade.changed",
            name=new_grade,
            properties={"from": old_grade, "to": new_grade, "score": new_score},
            key=f"grade.changed:{change.pk}",
            depth=depth,
            occurred_at=occurred_at,
        )
    lead.score, lead.grade = new_score, new_grade
    moved = stage_after_score(before=old_score, after=new_score, stage=stage, settings=settings)
    if moved is not None:
        locked = Lead.objects.select_for_update().get(pk=lead.pk)
        lead_update(lead=locked, changes={"stage": moved}, cause=cause)
        lead.stage = moved
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


def grades_recompute(*, settings: ScoringSettings) -> int:
    """After the thresholds change: regrade every lead whose grade moved, each with
    a ``grade.changed`` event. Returns how many moved."""
    graded = Case(
        When(score__gte=settings.hot_threshold, then=Value(Grade.HOT)),
        When(score__gte=settings.warm_threshold, then=Value(Grade.WARM)),
        default=Value(Grade.COLD),
        output_field=CharField(),
    )
    moved = 0
    stamp = uuid.uuid4().hex
    while True:
        batch = list(
            Lead.objects.annotate(new_grade=graded)
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

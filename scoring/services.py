"""Score writes: every change is a ledger row, applied to the lead's totals with
``F()`` in the same transaction, and announced as ``score.changed`` (and
``grade.changed`` when the grade moves)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from leads.models import Event, Lead, Stage
from leads.services.events import event_derive
from scoring.models import Grade, LeadScore, ScoreCategory, ScoreChange, ScoringSettings


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


@transaction.atomic
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
    ``source_key`` changes nothing and returns None."""
    try:
        with transaction.atomic():
            change = ScoreChange.objects.create(
                lead=lead,
                delta=delta,
                category=category,
                reason=reason[:255],
                source=source,
                source_key=source_key,
                created_by=created_by,
            )
    except IntegrityError:
        if ScoreChange.objects.filter(source_key=source_key).exists():
            return None
        raise
    before = Lead.objects.select_for_update().values_list("score", "grade", "stage").get(pk=lead.pk)
    old_score, old_grade, stage = before
    Lead.objects.filter(pk=lead.pk).update(score=F("score") + delta)
    LeadScore.objects.bulk_create(
        [LeadScore(lead=lead, category=category, score=0)], ignore_conflicts=True
    )
    category_before = (
        LeadScore.objects.filter(lead=lead, category=category).values_list("score", flat=True).get()
    )
    LeadScore.objects.filter(lead=lead, category=category).update(score=F("score") + delta)
    new_score = old_score + delta
    settings = scoring_settings()
    new_grade = grade_for(new_score, settings)
    depth = cause.depth + 1 if cause is not None else 0
    props: dict[str, Any] = {
        "delta": delta,
        "from": old_score,
        "to": new_score,
        "category": category.key,
        "category_from": category_before,
        "category_to": category_before + delta,
        "reason": change.reason,
    }
    event_derive(
        lead=lead,
        type="score.changed",
        name=category.key,
        properties=props,
        key=f"score.changed:{change.pk}",
        depth=depth,
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
        )
    lead.score, lead.grade = new_score, new_grade
    crossed_mql = old_score < settings.mql_threshold <= new_score
    if crossed_mql and settings.mql_moves_stage and stage in (Stage.SUBSCRIBER, Stage.LEAD):
        from leads.services.leads import lead_update

        locked = Lead.objects.select_for_update().get(pk=lead.pk)
        lead_update(lead=locked, changes={"stage": Stage.MQL}, cause=cause)
        lead.stage = Stage.MQL
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
    from django.db.models import Case, CharField, Value, When

    from leads.models import Event as EventModel
    from leads.services.events import SYSTEM_SOURCE, events_record

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
                    EventModel(
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

"""Score writes: every change is a ledger row, applied to the lead's totals as increments
in the database in the same transaction, and announced as ``score.changed`` (and
``grade.changed`` when the grade moves)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Case, CharField, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from core import prepared
from core.scope import batch_cached
from core.vocabulary import EngagementGrade, FitGrade, Grade
from leads.models import CLOSED_STAGES, Event, Lead
from leads.services.events import (
    SYSTEM_SOURCE,
    derived_event_ctes,
    event_derive,
    events_record,
    events_written,
)
from leads.services.leads import lead_update
from scoring.models import (
    DecayMode,
    HotRule,
    LeadScore,
    Preset,
    ReviewLogEntry,
    ScoreCategory,
    ScoreChange,
    ScoreSource,
    ScoringSettings,
)
from scoring.rules import (
    ENGAGEMENT,
    FIT,
    GRADE_SETTINGS,
    Grades,
    change_words,
    counted_points,
    grades_for,
    stage_after_score,
)


def scoring_settings() -> ScoringSettings:
    return ScoringSettings.objects.order_by("id").first() or ScoringSettings.objects.create()


# How the review log names what changed.
SETTING_LABELS = {
    "warm_threshold": gettext_lazy("Warm from"),
    "hot_threshold": gettext_lazy("Hot from"),
    "mql_threshold": gettext_lazy("MQL threshold"),
    "mql_moves_stage": gettext_lazy("MQL moves the stage"),
    "sales_can_adjust": gettext_lazy("Sales may adjust scores"),
    "total_cap": gettext_lazy("Cap on the total"),
    "hot_rule": gettext_lazy("Hot rule"),
    "hot_min_fit": gettext_lazy("Hot: fit at least"),
    "hot_min_engagement": gettext_lazy("Hot: engagement at least"),
    "fit_a": gettext_lazy("Fit A from"),
    "fit_b": gettext_lazy("Fit B from"),
    "fit_c": gettext_lazy("Fit C from"),
    "engagement_1": gettext_lazy("Engagement 1 from"),
    "engagement_2": gettext_lazy("Engagement 2 from"),
    "engagement_3": gettext_lazy("Engagement 3 from"),
    "preset": gettext_lazy("Preset"),
    "label": gettext_lazy("Label"),
    "cap": gettext_lazy("Cap"),
    "decay_mode": gettext_lazy("Decay"),
    "decay_days": gettext_lazy("Decay days"),
    "decay_percent": gettext_lazy("Decay percent"),
}


def _changes(instance: Any, values: dict[str, Any]) -> dict[str, list[Any]]:
    return {
        field: [getattr(instance, field), value]
        for field, value in values.items()
        if getattr(instance, field) != value
    }


def setting_labels() -> dict[str, str]:
    """The settings' and categories' fields by their human labels (the review log)."""
    return {field: str(label) for field, label in SETTING_LABELS.items()}


def setting_choice_labels() -> dict[str, dict[str, str]]:
    """The choice fields' values by their labels, by field (the review log)."""
    return {
        "hot_rule": {value: str(label) for value, label in HotRule.choices},
        "decay_mode": {value: str(label) for value, label in DecayMode.choices},
        "preset": {value: str(label) for value, label in Preset.choices},
    }


@transaction.atomic
def scoring_settings_update(*, user: User | None = None, **values: Any) -> ScoringSettings:
    """Save the scoring settings (validated: ``scoring.rules.settings_problems``).
    When anything a grade depends on moved, every lead is regraded; whatever
    changed goes into the review log with who changed it."""
    settings = ScoringSettings.objects.select_for_update().get(pk=scoring_settings().pk)
    changes = _changes(settings, values)
    if not changes:
        return settings
    for field, (_, value) in changes.items():
        setattr(settings, field, value)
    settings.save(update_fields=list(changes))
    if set(changes) & set(GRADE_SETTINGS):
        grades_recompute(settings=settings)
    review_log_record(
        user=user,
        subject="settings",
        summary=change_words(changes, setting_labels(), setting_choice_labels()),
        changes=changes,
    )
    return settings


@transaction.atomic
def score_category_update(
    *, category: ScoreCategory, user: User | None = None, **values: Any
) -> ScoreCategory:
    """Change a category's label, cap or decay (validated:
    ``scoring.rules.category_problems``); what changed goes into the review log."""
    locked = ScoreCategory.objects.select_for_update().get(pk=category.pk)
    changes = _changes(locked, values)
    if not changes:
        return locked
    for field, (_, value) in changes.items():
        setattr(locked, field, value)
    locked.save(update_fields=list(changes))
    labels = setting_labels()
    review_log_record(
        user=user,
        subject="category",
        summary=f"{locked.label}: {change_words(changes, labels, setting_choice_labels())}",
        changes=changes,
    )
    return locked


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
@functools.cache
def _score_add_sql(ctes: str = "", rows: str = "", key: str = "", returning: str = "") -> str:
    """``_SCORE_ADD``, or that statement after a caller's CTEs, keyed by their
    ``key`` and returning their ``returning`` too (``prepared.Within``)."""
    ledger_values = _LEDGER_VALUES.format(counted="delta")
    if key:
        ledger_values = ledger_values.replace("%(source_key)s", key)
    also = f", {rows}" if rows else ""
    return (
        f"WITH {ctes + ', ' if ctes else ''}before AS ({_BEFORE}), "  # noqa: S608
        f"counted AS (SELECT fit, engagement, {_COUNTED} AS delta FROM before), "
        f"change AS (INSERT INTO {_LEDGER} ({_LEDGER_COLUMNS}) "
        f"SELECT {ledger_values} FROM counted{also} "
        "ON CONFLICT (source_key) DO NOTHING RETURNING id, delta), "
        f"lead AS (UPDATE {_LEAD} l SET score = l.score + change.delta FROM change "
        "WHERE l.id = %(lead)s RETURNING l.score, l.grade, l.fit_grade, l.engagement_grade, "
        "l.stage), "
        f"category AS (INSERT INTO {_POINTS} AS s (lead_id, category_id, score) "
        "SELECT %(lead)s, %(category)s, delta FROM change ON CONFLICT (lead_id, category_id) "
        "DO UPDATE SET score = s.score + excluded.score RETURNING score), "
        + derived_event_ctes(
            rows="change, lead, category",
            where="change.delta <> 0",
            key="'score.changed:' || change.id",
            # ``score.changed``'s properties, as score_adjust builds them.
            properties=(
                "jsonb_build_object('delta', change.delta, 'from', lead.score - change.delta, "
                "'to', lead.score, 'category', %(category_key)s::text, "
                "'category_from', category.score - change.delta, 'category_to', category.score, "
                "'reason', %(reason)s::text) || CASE WHEN change.delta <> %(asked)s "
                "THEN jsonb_build_object('capped', %(asked)s - change.delta) ELSE '{}'::jsonb END"
            ),
        )
        + " SELECT change.id, change.delta, lead.score, lead.grade, lead.fit_grade, "  # noqa: S608
        "lead.engagement_grade, lead.stage, category.score, counted.fit, counted.engagement, "
        f"(SELECT id FROM derived){', ' + returning if returning else ''} "
        f"FROM change, lead, category, counted{also}"
    )


_SCORE_ADD = _score_add_sql()


def score_category_id(key: str) -> int | None:
    """The id of the category with this key, None when there is none."""
    try:
        return score_category(key).pk
    except ScoreCategory.DoesNotExist:
        return None


def _score_added(
    values: dict[str, Any], within: prepared.Within | None, *, category: ScoreCategory, depth: int
) -> tuple[Any, ...] | None:
    """``_SCORE_ADD`` (after ``within``'s CTEs): its row, or None when the key
    was taken before."""
    statement = _SCORE_ADD
    if within is not None:
        statement = _score_add_sql(within.ctes, within.rows, within.key, within.returning)
    rows = prepared.fetch(
        statement,
        {
            **(within.params if within is not None else {}),
            **values,
            "category_key": category.key,
            "derived_type": "score.changed",
            "derived_name": category.key,
            "derived_lead": values["lead"],
            "derived_depth": depth,
            "derived_occurred_at": values["occurred_at"],
            "derived_received_at": values["now"],
        },
    )
    if not rows:
        if within is not None:
            # Its key is new: the caller's rows went with it.
            raise RuntimeError("A keyed change within another statement was not written.")
        return None
    return rows[0]


def _score_added_apart(
    values: dict[str, Any], *, asked: int, category: ScoreCategory, settings: ScoringSettings
) -> tuple[Any, ...] | None:
    """The same in a statement per part (SQLite), the event derived apart."""
    # Stored as Django stores them (UTC, no offset), so they compare as text.
    adapt = connection.ops.adapt_datetimefield_value
    values = {**values, "now": adapt(values["now"]), "occurred_at": adapt(values["occurred_at"])}
    with connection.cursor() as cursor:
        cursor.execute(_BEFORE, values)
        total, points, fit, engagement = cursor.fetchone()
        counted = counted_points(
            asked=asked, points=points, total=total, cap=category.cap, total_cap=settings.total_cap
        )
        cursor.execute(_LEDGER_INSERT, {**values, "delta": counted})
        inserted = cursor.fetchone()
        if inserted is None:
            return None
        cursor.execute(_LEAD_ADD, [counted, values["lead"]])
        new_score, old_grade, old_fit_grade, old_engagement_grade, stage = cursor.fetchone()
        cursor.execute(_CATEGORY_ADD, [values["lead"], category.pk, counted])
        category_after = cursor.fetchone()[0]
    return (
        inserted[0],
        counted,
        new_score,
        old_grade,
        old_fit_grade,
        old_engagement_grade,
        stage,
        category_after,
        fit,
        engagement,
        None,
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
    occurred_at: datetime | None = None,
    within: prepared.Within | None = None,
) -> ScoreChange | None:
    """Add ``delta`` points in ``category``. A second call with the same
    ``source_key`` changes nothing and returns None. ``within``: the caller's
    statement that this change finishes, whose key it takes instead of
    ``source_key`` (PostgreSQL; see ``prepared.Within``).

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
    fit_id, engagement_id = score_category_id(FIT), score_category_id(ENGAGEMENT)
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
    depth = cause.depth + 1 if cause is not None else 0
    if within is not None and not prepared.enabled():
        raise ValueError("A change within another statement needs PostgreSQL.")
    added = (
        _score_added(values, within, category=category, depth=depth)
        if prepared.enabled()
        else _score_added_apart(values, asked=delta, category=category, settings=settings)
    )
    if added is None:
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
        announced,
        *theirs,
    ) = added
    if within is not None:
        source_key = within.finish(theirs)
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
    key = f"score.changed:{change.pk}"
    if announced is not None:
        # Written by the statement above, with these properties.
        events_written(
            events=[
                Event(
                    pk=announced,
                    lead=lead,
                    type="score.changed",
                    name=category.key,
                    properties=props,
                    occurred_at=occurred_at,
                    received_at=now,
                    source=SYSTEM_SOURCE,
                    idempotency_key=key,
                    depth=depth,
                )
            ]
        )
    else:
        event_derive(
            lead=lead,
            type="score.changed",
            name=category.key,
            properties=props,
            key=key,
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


_GRADES_WRITE = (
    f"UPDATE {Lead._meta.db_table} SET grade = %s, fit_grade = %s, "  # noqa: S608
    "engagement_grade = %s WHERE id = %s"
)


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
    if prepared.enabled():
        # A statement of its own on the hot path: a score step that moves a
        # grade runs it, and the ORM took longer to build it than to run it.
        prepared.fetch(
            _GRADES_WRITE, [after.grade, after.fit_grade, after.engagement_grade, lead.pk]
        )
    else:
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


def _thresholds_met(column: str, needed: int | None) -> Q:
    """At least ``needed`` points in ``column`` (None: always)."""
    return Q() if needed is None else Q(**{f"{column}__gte": needed})


def _regraded(settings: ScoringSettings) -> QuerySet[Lead]:
    """Leads annotated with their grades by ``scoring.rules.grades_for``, computed
    in the database (``new_grade``, ``new_fit``, ``new_engagement``), from the
    total and the fit and engagement points. A test holds the two equal over
    every hot rule and stage (tests/scoring/test_grades.py)."""
    keys = dict(ScoreCategory.objects.filter(key__in=(FIT, ENGAGEMENT)).values_list("key", "pk"))

    def points(key: str) -> Coalesce | Value:
        if key not in keys:
            return Value(0)
        return Coalesce(
            Subquery(
                LeadScore.objects.filter(lead=OuterRef("pk"), category_id=keys[key]).values(
                    "score"
                )[:1]
            ),
            Value(0),
        )

    fit = Case(
        When(fit_points__gte=settings.fit_a, then=Value(FitGrade.A)),
        When(fit_points__gte=settings.fit_b, then=Value(FitGrade.B)),
        When(fit_points__gte=settings.fit_c, then=Value(FitGrade.C)),
        default=Value(FitGrade.D),
        output_field=CharField(),
    )
    engagement = Case(
        When(engagement_points__gte=settings.engagement_1, then=Value(EngagementGrade.ONE)),
        When(engagement_points__gte=settings.engagement_2, then=Value(EngagementGrade.TWO)),
        When(engagement_points__gte=settings.engagement_3, then=Value(EngagementGrade.THREE)),
        default=Value(EngagementGrade.FOUR),
        output_field=CharField(),
    )
    if settings.hot_rule == HotRule.AXES:
        # "Fit B or better" is "at least fit_b points": the grades are bands.
        fit_needed = {"A": settings.fit_a, "B": settings.fit_b, "C": settings.fit_c}
        engagement_needed = {
            "1": settings.engagement_1,
            "2": settings.engagement_2,
            "3": settings.engagement_3,
        }
        hot = _thresholds_met("fit_points", fit_needed.get(settings.hot_min_fit)) & _thresholds_met(
            "engagement_points", engagement_needed.get(settings.hot_min_engagement)
        )
    else:
        hot = Q(score__gte=settings.hot_threshold)
    if not hot:
        # Q() would vanish inside When(): every lead meets the hot rule.
        hot = Q(pk__isnull=False)
    grade = Case(
        When(hot & ~Q(stage__in=CLOSED_STAGES), then=Value(Grade.HOT)),
        When(Q(score__gte=settings.warm_threshold) | hot, then=Value(Grade.WARM)),
        default=Value(Grade.COLD),
        output_field=CharField(),
    )
    return (
        Lead.objects.annotate(fit_points=points(FIT), engagement_points=points(ENGAGEMENT))
        .annotate(new_grade=grade, new_fit=fit, new_engagement=engagement)
        .filter(
            ~Q(grade=F("new_grade"))
            | ~Q(fit_grade=F("new_fit"))
            | ~Q(engagement_grade=F("new_engagement"))
        )
    )


_REGRADED = (
    "id",
    "score",
    "grade",
    "fit_grade",
    "engagement_grade",
    "new_grade",
    "new_fit",
    "new_engagement",
)


def _grade_changed(row: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    """The name and properties of the ``grade.changed`` event of a regraded row."""
    _, score, grade, fit, engagement, new_grade, new_fit, new_engagement = row
    return new_grade, {
        "from": grade,
        "to": new_grade,
        "score": score,
        "fit_from": fit,
        "fit_to": new_fit,
        "engagement_from": engagement,
        "engagement_to": new_engagement,
    }


def grades_recompute(*, settings: ScoringSettings, lead_ids: Iterable[int] | None = None) -> int:
    """Regrade every lead (or those of ``lead_ids``) whose grade, fit grade or
    engagement grade differs from what the rule gives now (after the settings
    changed, or to repair): in batches, the grades computed by the database,
    each lead that moved with a ``grade.changed`` event. Returns how many moved."""
    candidates = _regraded(settings)
    if lead_ids is not None:
        candidates = candidates.filter(pk__in=list(lead_ids))
    moved = 0
    stamp = uuid.uuid4().hex
    while True:
        batch = list(candidates.values_list(*_REGRADED)[:2000])
        if not batch:
            return moved
        with transaction.atomic():
            now = timezone.now()
            Lead.objects.bulk_update(
                [
                    Lead(pk=row[0], grade=row[5], fit_grade=row[6], engagement_grade=row[7])
                    for row in batch
                ],
                ["grade", "fit_grade", "engagement_grade"],
            )
            events: list[Event] = []
            for row in batch:
                name, properties = _grade_changed(row)
                events.append(
                    Event(
                        lead_id=row[0],
                        type="grade.changed",
                        name=name,
                        properties=properties,
                        occurred_at=now,
                        received_at=now,
                        source=SYSTEM_SOURCE,
                        idempotency_key=f"grade.changed:regrade:{stamp}:{row[0]}",
                    )
                )
            events_record(events=events)
        moved += len(batch)


def lead_regrade(*, lead: Lead, cause: Event | None = None) -> bool:
    """Regrade one (locked) lead, e.g. after its stage changed: a customer, a lost
    or a disqualified lead is no longer hot. Emits ``grade.changed`` (derived from
    ``cause``) when anything moved; returns whether it did. One query when
    nothing moved."""
    settings = batch_cached("scoring_settings", scoring_settings)
    row = _regraded(settings).filter(pk=lead.pk).values_list(*_REGRADED).first()
    if row is None:
        return False
    name, properties = _grade_changed(row)
    Lead.objects.filter(pk=lead.pk).update(grade=row[5], fit_grade=row[6], engagement_grade=row[7])
    lead.grade, lead.fit_grade, lead.engagement_grade = row[5], row[6], row[7]
    key = f"grade.changed:regrade:{cause.pk}" if cause is not None and cause.pk else None
    event_derive(
        lead=lead,
        type="grade.changed",
        name=name,
        properties=properties,
        key=key or f"grade.changed:regrade:{uuid.uuid4().hex}",
        depth=cause.depth + 1 if cause is not None else 0,
    )
    return True


def scoring_on_event(*, event: Event, lead: Lead) -> None:
    """The pipeline's reaction for scoring (``REACTION_ORDER``): a lead whose stage
    changed is regraded, so that a customer, a lost or a disqualified lead drops
    from hot before segments and flows react to the change."""
    if event.type == "field.changed" and event.name == "stage":
        lead_regrade(lead=lead, cause=event)


def review_log_record(
    *, user: User | None, subject: str, summary: str, changes: dict[str, Any] | None = None
) -> ReviewLogEntry:
    """Write down a change to the scoring model (``subject``: "settings",
    "category", "flow" or "preset") with who made it, so a month's review can be
    read against the model that produced its numbers."""
    return ReviewLogEntry.objects.create(
        user=user, subject=subject, summary=summary[:500], changes=changes or {}
    )

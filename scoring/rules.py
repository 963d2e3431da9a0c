"""Scoring decisions as pure functions: what the ledger does and what the flows'
dry run predicts are the same call."""

from __future__ import annotations

from typing import Any, NamedTuple

from django.db.models import Q
from django.utils.translation import gettext, gettext_lazy

from core.vocabulary import EngagementGrade, FitGrade, Grade
from leads.models import CLOSED_STAGES, Stage
from scoring.models import DecayMode, HotRule, ScoringSettings

# The built-in categories the two axes read.
FIT = "fit"
ENGAGEMENT = "engagement"

# Stages a lead crossing the MQL threshold is moved out of; anyone further along
# (or disqualified) keeps their stage.
MQL_MOVES_FROM = (Stage.SUBSCRIBER, Stage.LEAD)


def stage_after_score(
    *, before: int, after: int, stage: str, settings: ScoringSettings
) -> str | None:
    """The stage a score change from ``before`` to ``after`` moves a lead in
    ``stage`` to, or None when it stays: MQL when the score rises to or past the
    MQL threshold from below, the settings let crossing it move the stage, and
    the lead is a subscriber or a lead."""
    crossed = before < settings.mql_threshold <= after
    if crossed and settings.mql_moves_stage and stage in MQL_MOVES_FROM:
        return Stage.MQL
    return None


def mql_crossing(threshold: int) -> Q:
    """A ``score.changed`` event that took the lead's total score from below the
    MQL threshold to at or above it.

    This is our definition of "became an MQL": reaching the threshold set on the
    scoring settings (``ScoringSettings.mql_threshold``, the current one), read
    from the ``from``/``to`` totals every ``score.changed`` event carries. It
    holds whether or not reaching the threshold also moves the lifecycle stage
    (``mql_moves_stage``), and a manual stage change is not a score crossing. A
    lead that drops below and crosses again counts again, but once per period.
    """
    # JSON comparisons, not casts: other event types keep text in from/to.
    return Q(type="score.changed", properties__from__lt=threshold, properties__to__gte=threshold)


def is_mql_crossing(event_type: str, properties: dict[str, Any], threshold: int) -> bool:
    """``mql_crossing`` for one event in hand (the outbound ``lead.mql`` hook)."""
    before, after = properties.get("from"), properties.get("to")
    return (
        event_type == "score.changed"
        and isinstance(before, int)
        and isinstance(after, int)
        and before < threshold <= after
    )


class Grades(NamedTuple):
    """A lead's grade (cold, warm, hot) and its two axes (fit A to D, engagement 1 to 4)."""

    grade: str
    fit_grade: str
    engagement_grade: str


def fit_grade_for(points: int, settings: ScoringSettings) -> str:
    if points >= settings.fit_a:
        return FitGrade.A
    if points >= settings.fit_b:
        return FitGrade.B
    if points >= settings.fit_c:
        return FitGrade.C
    return FitGrade.D


def engagement_grade_for(points: int, settings: ScoringSettings) -> str:
    if points >= settings.engagement_1:
        return EngagementGrade.ONE
    if points >= settings.engagement_2:
        return EngagementGrade.TWO
    if points >= settings.engagement_3:
        return EngagementGrade.THREE
    return EngagementGrade.FOUR


def grades_for(
    *, total: int, fit: int, engagement: int, stage: str, settings: ScoringSettings
) -> Grades:
    """The grades of a lead with these points in this stage.

    Hot is the admin's choice: the total at or above the hot threshold, or (the
    two-axes rule) at least the minimum fit *and* the minimum engagement. Warm is
    the total at or above the warm threshold. A customer, a lost or a disqualified
    lead is never hot: it is warm at most, so sales is not sent after it.
    """
    fit_grade = fit_grade_for(fit, settings)
    engagement_grade = engagement_grade_for(engagement, settings)
    if settings.hot_rule == HotRule.AXES:
        # Letters and digits both sort best first: "A" < "B", "1" < "2".
        hot = fit_grade <= settings.hot_min_fit and engagement_grade <= settings.hot_min_engagement
    else:
        hot = total >= settings.hot_threshold
    if hot and stage not in CLOSED_STAGES:
        grade = Grade.HOT
    elif total >= settings.warm_threshold or hot:
        grade = Grade.WARM
    else:
        grade = Grade.COLD
    return Grades(grade, fit_grade, engagement_grade)


# --- the settings' own rules -------------------------------------------------------------

# The settings that decide a lead's grades: changing one regrades every lead.
GRADE_SETTINGS = (
    "warm_threshold",
    "hot_threshold",
    "hot_rule",
    "hot_min_fit",
    "hot_min_engagement",
    "fit_a",
    "fit_b",
    "fit_c",
    "engagement_1",
    "engagement_2",
    "engagement_3",
)


def _unreachable(cap: int, threshold: int, grade: Any) -> str:
    return gettext(
        "With a cap of %(cap)s points, %(grade)s (from %(threshold)s points) can never be "
        "reached: the cap must be at least %(threshold)s."
    ) % {"cap": cap, "grade": str(grade), "threshold": threshold}


# The category whose cap bounds each axis' top grade: (category key, setting, grade).
TOP_GRADES = (
    (FIT, "fit_a", gettext_lazy("fit A")),
    (ENGAGEMENT, "engagement_1", gettext_lazy("engagement 1")),
)


def settings_problems(
    values: dict[str, Any], caps: dict[str, int | None] | None = None
) -> dict[str, list[str]]:
    """What is wrong with these scoring settings (the whole set, as they would be
    saved), by field: thresholds out of order, a cap below 1, a top grade
    (fit A, engagement 1) above its category's cap (``caps``: by category key),
    which no lead could reach. The page's form and the API both ask this."""
    problems: dict[str, list[str]] = {}

    def above(high: str, low: str, message: str) -> None:
        high_value, low_value = values.get(high), values.get(low)
        if high_value is not None and low_value is not None and high_value <= low_value:
            problems.setdefault(high, []).append(message)

    above("hot_threshold", "warm_threshold", gettext("Hot must be above warm."))
    above("fit_a", "fit_b", gettext("Fit A must be above fit B."))
    above("fit_b", "fit_c", gettext("Fit B must be above fit C."))
    above("engagement_1", "engagement_2", gettext("Engagement 1 must be above engagement 2."))
    above("engagement_2", "engagement_3", gettext("Engagement 2 must be above engagement 3."))
    cap = values.get("total_cap")
    if cap is not None and cap < 1:
        problems["total_cap"] = [gettext("A cap is at least 1 point; leave it blank for none.")]
    if values.get("hot_min_fit") not in (None, *FitGrade.values):
        problems["hot_min_fit"] = [gettext("Choose a fit grade, A to D.")]
    if values.get("hot_min_engagement") not in (None, *EngagementGrade.values):
        problems["hot_min_engagement"] = [gettext("Choose an engagement grade, 1 to 4.")]
    for key, setting, grade in TOP_GRADES:
        cap, threshold = (caps or {}).get(key), values.get(setting)
        if cap is not None and threshold is not None and cap < threshold:
            problems.setdefault(setting, []).append(_unreachable(cap, threshold, grade))
    return problems


def category_problems(
    values: dict[str, Any], *, key: str = "", settings: ScoringSettings | None = None
) -> dict[str, list[str]]:
    """What is wrong with a category's cap and decay, by field: a decay mode
    needs its days (and a percentage, 1 to 100, for a share per period); the fit
    or engagement category (``key``) capped below fit A or engagement 1 (of
    ``settings``) would make that grade unreachable."""
    problems: dict[str, list[str]] = {}
    mode = values.get("decay_mode") or DecayMode.NONE
    days, percent = values.get("decay_days"), values.get("decay_percent")
    if mode != DecayMode.NONE and not days:
        problems["decay_days"] = [gettext("Enter the number of days for this kind of decay.")]
    if days is not None and days < 1:
        problems["decay_days"] = [gettext("Enter at least 1 day.")]
    if mode == DecayMode.PERCENT and percent is None:
        problems["decay_percent"] = [gettext("Enter the share of points lost per period.")]
    if percent is not None and not 1 <= percent <= 100:
        problems["decay_percent"] = [gettext("Enter a percentage from 1 to 100.")]
    cap = values.get("cap")
    if cap is not None and cap < 1:
        problems["cap"] = [gettext("A cap is at least 1 point; leave it blank for none.")]
    elif cap is not None and settings is not None:
        for category, setting, grade in TOP_GRADES:
            threshold = getattr(settings, setting)
            if key == category and cap < threshold:
                problems["cap"] = [_unreachable(cap, threshold, grade)]
    return problems


def change_lines(
    changes: dict[str, list[Any]],
    labels: dict[str, str],
    choices: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """One line per changed field: "Hot from: 50 → 60", a choice by its label
    (``choices``: by field, value to label), yes or no, "none" for nothing."""

    def shown(field: str, value: Any) -> str:
        if value is None or value == "":
            return gettext("none")
        if isinstance(value, bool):
            return gettext("yes") if value else gettext("no")
        if isinstance(value, list):
            return ", ".join(shown(field, item) for item in value) or gettext("none")
        return str((choices or {}).get(field, {}).get(value, value))

    return [
        f"{labels.get(field, field)}: {shown(field, before)} → {shown(field, after)}"
        for field, (before, after) in changes.items()
    ]


def change_words(
    changes: dict[str, list[Any]],
    labels: dict[str, str],
    choices: dict[str, dict[str, str]] | None = None,
) -> str:
    """A review-log summary: "Hot from: 50 → 60; Fit A from: 40 → 45", a choice
    by its label (``choices``: by field, value to label), yes or no."""
    return "; ".join(change_lines(changes, labels, choices))


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

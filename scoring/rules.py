"""Scoring decisions as pure functions: what the ledger does and what the flows'
dry run predicts are the same call."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from leads.models import Stage
from scoring.models import ScoringSettings

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

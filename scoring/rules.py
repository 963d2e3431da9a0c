"""Scoring decisions as pure functions: what the ledger does and what the flows'
dry run predicts are the same call."""

from __future__ import annotations

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

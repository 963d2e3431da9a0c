"""A lead's score ledger in their data export, and gone with them on erasure
(registered with ``leads.services.privacy`` by ``ScoringConfig.ready``)."""

from __future__ import annotations

from typing import Any

from django.db.models import F

from leads.models import Lead
from leads.services.privacy import Gone, export_rows
from scoring.models import LeadScore, ScoreChange


def lead_scores_export(lead: Lead) -> dict[str, list[dict[str, Any]]]:
    return {
        "score_by_category": export_rows(
            LeadScore.objects.filter(lead=lead).order_by("category__key"),
            "score",
            category=F("category__key"),
        ),
        "score_changes": export_rows(
            ScoreChange.objects.filter(lead=lead).order_by("id"),
            "delta",
            "capped",
            "reason",
            "source",
            "occurred_at",
            "created_at",
            category=F("category__key"),
            by=F("created_by__username"),
        ),
    }


def lead_scores_erase(lead: Lead, gone: Gone) -> None:
    gone("score_changes", ScoreChange.objects.filter(lead=lead))
    gone("category_scores", LeadScore.objects.filter(lead=lead))

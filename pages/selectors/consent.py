"""The profile's consent card: the state, the evidence of each change, and
the form for those who may change it."""

from __future__ import annotations

from typing import Any

from django import forms

from core.roles import ADMIN_MARKETER
from leads.models import ConsentRecord, Lead
from leads.roles import user_role
from pages.forms.consent import LeadConsentForm

# The newest changes shown; the privacy export has them all.
TRAIL_LIMIT = 10


def consent_panel(lead: Lead, *, user: Any, form: forms.Form | None = None) -> dict[str, Any]:
    trail = list(
        ConsentRecord.objects.filter(lead=lead)
        .select_related("created_by")
        .order_by("-occurred_at", "-id")[: TRAIL_LIMIT + 1]
    )
    may_change = user_role(user) in ADMIN_MARKETER
    return {
        "consent_trail": trail[:TRAIL_LIMIT],
        "consent_trail_more": len(trail) > TRAIL_LIMIT,
        "consent_form": (form or LeadConsentForm(initial={"state": lead.consent_state}))
        if may_change
        else None,
    }

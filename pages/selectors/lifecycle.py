"""The lead profile's lifecycle panel: the stages reached, with their dates, and
the lead's opportunities."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, When

from leads.models import Lead, Opportunity, OpportunityStatus, Stage
from leads.roles import user_role
from leads.services.leads import STAGE_DATE_FIELDS
from leads.services.policy import opportunity_refusal
from pages.forms.lifecycle import (
    LeadLocaleForm,
    LeadSourceForm,
    OpportunityLoseForm,
    OpportunityOpenForm,
)

# The way a lead goes; lost and disqualified are shown only when reached.
LIFECYCLE_PATH = (Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER)
OFF_PATH = (Stage.LOST, Stage.DISQUALIFIED)
OPPORTUNITY_LIMIT = 20


@dataclass(frozen=True)
class LifecycleStep:
    stage: str
    label: str
    reached_at: dt.datetime | None
    current: bool


@dataclass(frozen=True)
class Lifecycle:
    steps: list[LifecycleStep]
    opportunities: list[Opportunity]


def lead_lifecycle(*, lead: Lead) -> Lifecycle:
    """The steps of the lead's lifecycle (the path, then lost or disqualified
    when reached) with the date each was first reached, and its latest
    opportunities, open ones first."""
    steps = [
        LifecycleStep(
            stage=stage,
            label=str(stage.label),
            reached_at=getattr(lead, STAGE_DATE_FIELDS[stage]),
            current=lead.stage == stage,
        )
        for stage in (*LIFECYCLE_PATH, *OFF_PATH)
        if stage in LIFECYCLE_PATH
        or lead.stage == stage
        or getattr(lead, STAGE_DATE_FIELDS[stage]) is not None
    ]
    opportunities = Opportunity.objects.filter(lead=lead).order_by(
        Case(When(status=OpportunityStatus.OPEN, then=0), default=1), "-opened_at", "-pk"
    )
    return Lifecycle(steps=steps, opportunities=list(opportunities[:OPPORTUNITY_LIMIT]))


def lifecycle_panel(
    lead: Lead,
    *,
    user: Any,
    open_form: OpportunityOpenForm | None = None,
    lose_form: OpportunityLoseForm | None = None,
    lose_id: int | None = None,
    source_form: LeadSourceForm | None = None,
    locale_form: LeadLocaleForm | None = None,
) -> dict[str, Any]:
    """What the panel shows: the steps, the deals and the forms (bound ones
    with their errors, after a refused POST)."""
    return {
        "lead": lead,
        "lifecycle": lead_lifecycle(lead=lead),
        "can_work_deals": opportunity_refusal(user_role(user)) is None,
        "open_form": open_form or OpportunityOpenForm(),
        "lose_form": lose_form or OpportunityLoseForm(),
        "lose_id": lose_id,
        "source_form": source_form
        or LeadSourceForm(initial={"source": lead.source, "source_detail": lead.source_detail}),
        "locale_form": locale_form
        or LeadLocaleForm(initial={"language": lead.language, "time_zone": lead.time_zone}),
    }

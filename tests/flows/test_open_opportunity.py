"""The "Open opportunity" action: in a published flow, through the pipeline, and
in the dry run, which decides the stage as the service does."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from flows.dryrun import flow_dry_run
from flows.lifecycle import flow_create
from flows.models import Delivery
from flows.rules import stage_move_refusal
from leads.models import Lead, Opportunity, Stage
from leads.services.outcomes import opportunity_win
from tests.factories import EventFactory, HookSubscriptionFactory, LeadFactory, OpportunityFactory
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db

SIGNED = dt.datetime(2026, 11, 20, 14, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
CONTRACT = {"type": "track", "name": "Signed order form", "properties": {}}


def _graph() -> dict:
    return graph(
        ("t", "app.event", {"event": "Signed order form"}),
        ("deal", "opportunity.open", {"value": 4800, "currency": "USD", "name": "Team plan"}),
    )


def test_a_flow_opens_one_opportunity_dated_by_its_trigger():
    published("Order forms", _graph(), reentry="always")
    lead = LeadFactory.create(stage=Stage.SQL, score=33)
    EventFactory.create(lead=lead, type="track", name="Signed order form", occurred_at=SIGNED)
    drain()
    opportunity = Opportunity.objects.get()
    lead = Lead.objects.get(pk=lead.pk)
    assert (opportunity.name, opportunity.value, opportunity.currency) == (
        "Team plan",
        Decimal("4800.00"),
        "USD",
    )
    assert (opportunity.opened_at, opportunity.created_by) == (SIGNED, None)
    assert opportunity.source_key is not None
    assert opportunity.source_key.startswith("step:")
    assert (lead.stage, lead.opportunity_at, lead.qualified_score) == (
        Stage.OPPORTUNITY,
        SIGNED,
        33,
    )


@pytest.mark.parametrize(
    ("stage", "effect"),
    [
        (
            "sql",
            "opens an opportunity of 4800 USD (Team plan); stage Sales qualified → Opportunity",
        ),
        ("customer", "opens an opportunity of 4800 USD (Team plan); stage stays Customer"),
    ],
)
def test_the_dry_run_tells_the_stage_it_would_reach(stage, effect):
    flow = flow_create(name="Order forms", graph=_graph())
    lead = LeadFactory.create(stage=stage)
    result = flow_dry_run(flow=flow, graph=flow.draft, lead=lead, event=CONTRACT, now=NOW)
    deal = next(s for s in result["steps"] if s["node"] == "deal")
    assert (deal["outcome"], deal["effect"]) == ("would_apply", effect)
    assert not Opportunity.objects.exists()


def test_forward_only_knows_the_opportunity_stage():
    assert stage_move_refusal(current="opportunity", target="mql", forward_only=True) == "behind"
    assert stage_move_refusal(current="sql", target="opportunity", forward_only=True) is None


def test_a_won_deal_is_delivered_to_its_hook():
    hook = HookSubscriptionFactory.create(events=["opportunity.won"])
    opportunity = OpportunityFactory.create(opened_at=SIGNED)
    opportunity_win(opportunity=opportunity, user=None, closed_at=NOW)
    drain()
    delivery = Delivery.objects.get(hook=hook)
    assert delivery.payload["body"]["event"] == "opportunity.won"
    assert delivery.payload["body"]["data"] == {
        "opportunity_id": opportunity.pk,
        "name": opportunity.name,
        "value": 1000.0,
        "currency": "EUR",
    }

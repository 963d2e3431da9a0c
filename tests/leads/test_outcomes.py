"""Opportunities: open, win, lose; the stage they move the lead to; their events
and their refusals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from leads.models import Event, Lead, Opportunity, OpportunityStatus, Stage
from leads.services.outcomes import (
    opportunity_lose,
    opportunity_open,
    opportunity_terms_clean,
    opportunity_win,
)
from tests.factories import LeadFactory, OpportunityFactory, UserFactory

pytestmark = pytest.mark.django_db

OPENED = dt.datetime(2026, 10, 1, 10, 0, tzinfo=dt.UTC)
CLOSED = dt.datetime(2026, 11, 15, 16, 0, tzinfo=dt.UTC)


def test_opening_moves_the_lead_to_opportunity_dated_and_emits_an_event():
    rep = UserFactory.create(role="sales")
    lead = LeadFactory.create(stage=Stage.SQL, score=55)
    opportunity = opportunity_open(
        lead=lead, value="12500.5", currency="eur", name="Pilot", user=rep, opened_at=OPENED
    )
    opportunity.refresh_from_db()
    assert (opportunity.value, opportunity.currency, opportunity.status, opportunity.opened_at) == (
        Decimal("12500.50"),
        "EUR",
        OpportunityStatus.OPEN,
        OPENED,
    )
    assert opportunity.created_by == rep
    assert (lead.stage, lead.opportunity_at, lead.qualified_score) == (
        Stage.OPPORTUNITY,
        OPENED,
        55,
    )
    event = Event.objects.get(lead=lead, type="opportunity.opened")
    assert (event.name, event.occurred_at, event.properties) == (
        "Pilot",
        OPENED,
        {"opportunity_id": opportunity.pk, "name": "Pilot", "value": 12500.5, "currency": "EUR"},
    )


def test_opening_a_deal_with_a_customer_keeps_it_a_customer():
    lead = LeadFactory.create(stage=Stage.CUSTOMER)
    opportunity_open(lead=lead, value=100, currency="USD", name="Upsell", user=None)
    lead.refresh_from_db()
    assert (lead.stage, lead.opportunity_at) == (Stage.CUSTOMER, None)


def test_a_source_key_opens_once():
    lead = LeadFactory.create()
    first = opportunity_open(lead=lead, value=1, name="", user=None, source_key="step:7")
    again = opportunity_open(lead=lead, value=1, name="", user=None, source_key="step:7")
    assert first.pk == again.pk
    assert Opportunity.objects.count() == 1


@pytest.mark.parametrize(
    ("value", "currency", "errors"),
    [
        (-1, "EUR", {"value": ["The value cannot be negative."]}),
        ("lots", "EUR", {"value": ["Enter the value as a number, e.g. 12500 or 12500.50."]}),
        ("1.005", "EUR", {"value": ["The value has at most two decimal places."]}),
        (10, "EURO", {"currency": ["Enter a currency as its three-letter code, e.g. EUR or USD."]}),
        (10, "E1R", {"currency": ["Enter a currency as its three-letter code, e.g. EUR or USD."]}),
    ],
)
def test_bad_terms_are_refused_with_their_field(value, currency, errors):
    with pytest.raises(ValidationError) as refused:
        opportunity_terms_clean(value=value, currency=currency)
    assert refused.value.message_dict == errors


def test_winning_makes_the_lead_a_customer_at_the_close():
    lead = LeadFactory.create(stage=Stage.OPPORTUNITY, score=70, qualified_score=40)
    opportunity = OpportunityFactory.create(lead=lead, opened_at=OPENED, value=5000)
    opportunity_win(opportunity=opportunity, user=None, closed_at=CLOSED)
    opportunity.refresh_from_db()
    lead.refresh_from_db()
    assert (opportunity.status, opportunity.closed_at) == (OpportunityStatus.WON, CLOSED)
    assert (lead.stage, lead.customer_at, lead.qualified_score) == (Stage.CUSTOMER, CLOSED, 40)
    event = Event.objects.get(type="opportunity.won")
    assert (event.occurred_at, event.properties["value"]) == (CLOSED, 5000.0)


def test_a_closed_opportunity_cannot_be_won_or_lost_again():
    opportunity = OpportunityFactory.create(status=OpportunityStatus.WON, closed_at=CLOSED)
    with pytest.raises(ValidationError) as refused:
        opportunity_win(opportunity=opportunity, user=None)
    assert (refused.value.code, refused.value.messages) == (
        "closed",
        ["This opportunity is already won."],
    )
    with pytest.raises(ValidationError):
        opportunity_lose(opportunity=opportunity, reason="Budget", user=None)


def test_a_close_before_the_opening_is_refused():
    opportunity = OpportunityFactory.create(opened_at=CLOSED)
    with pytest.raises(ValidationError) as refused:
        opportunity_win(opportunity=opportunity, user=None, closed_at=OPENED)
    assert refused.value.message_dict == {
        "closed_at": ["An opportunity cannot close before it was opened."]
    }


def test_losing_the_only_deal_makes_the_lead_lost_with_the_reason():
    lead = LeadFactory.create(stage=Stage.OPPORTUNITY)
    opportunity = OpportunityFactory.create(lead=lead, opened_at=OPENED)
    opportunity_lose(
        opportunity=opportunity, reason=" Chose a competitor ", user=None, closed_at=CLOSED
    )
    opportunity.refresh_from_db()
    lead.refresh_from_db()
    assert (opportunity.status, opportunity.lost_reason, opportunity.closed_at) == (
        OpportunityStatus.LOST,
        "Chose a competitor",
        CLOSED,
    )
    assert (lead.stage, lead.lost_at) == (Stage.LOST, CLOSED)
    assert Event.objects.get(type="opportunity.lost").properties["reason"] == "Chose a competitor"


def test_losing_one_of_two_open_deals_keeps_the_lead_an_opportunity():
    lead = LeadFactory.create(stage=Stage.OPPORTUNITY)
    first, _ = OpportunityFactory.create_batch(2, lead=lead, opened_at=OPENED)
    opportunity_lose(opportunity=first, reason="Too early", user=None)
    assert Lead.objects.get(pk=lead.pk).stage == Stage.OPPORTUNITY


def test_losing_needs_a_reason():
    opportunity = OpportunityFactory.create()
    with pytest.raises(ValidationError) as refused:
        opportunity_lose(opportunity=opportunity, reason="  ", user=None)
    assert refused.value.message_dict == {"reason": ["Say why the opportunity was lost."]}
    opportunity.refresh_from_db()
    assert opportunity.status == OpportunityStatus.OPEN

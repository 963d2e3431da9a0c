"""The lead profile's lifecycle panel: stages reached with their dates, the
opportunities, and the forms to open, win and lose one and to correct the source."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import translation

from leads.models import Lead, Opportunity, OpportunityStatus, Stage
from leads.services.outcomes import opportunity_lose
from tests.factories import LeadFactory, OpportunityFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
MQL_AT = dt.datetime(2026, 9, 2, 8, 0, tzinfo=dt.UTC)
OPENED = dt.datetime(2026, 10, 1, 10, 0, tzinfo=dt.UTC)


def _panel(body: str) -> str:
    start = body.index('id="profile-lifecycle"')
    return body[start : body.index("</section>", start)]


def test_the_panel_shows_steps_deals_and_source(client, sales):
    lead = LeadFactory.create(
        stage=Stage.OPPORTUNITY,
        mql_at=MQL_AT,
        opportunity_at=OPENED,
        source="paid",
        source_detail="google / cpc / spring",
    )
    OpportunityFactory.create(lead=lead, name="Pilot", value="12500.50", opened_at=OPENED)
    OpportunityFactory.create(
        lead=lead,
        name="First try",
        value=900,
        currency="USD",
        status=OpportunityStatus.LOST,
        opened_at=MQL_AT,
        closed_at=OPENED,
        lost_reason="No budget",
    )
    client.force_login(sales)

    panel = _panel(client.get(f"/leads/{lead.pk}/").content.decode())

    steps = re.findall(r'data-step="(\w+)"', panel)
    assert steps == ["mql", "sql", "opportunity", "customer"]
    assert '<time datetime="2026-09-02T08:00:00+00:00">2 Sep 2026</time>' in panel
    assert 'aria-current="step"' in panel
    assert "Paid" in panel
    assert "google / cpc / spring" in panel
    assert re.findall(r'data-status="(\w+)"', panel) == ["open", "lost"]
    assert "<span data-value>12,500.50 EUR</span>" in panel
    assert "<span data-value>900.00 USD</span>" in panel
    assert "<span data-reason>No budget</span>" in panel
    assert panel.count(">Won</button>") == 1
    assert "Open an opportunity" in panel


def test_values_follow_the_users_language(client, sales):
    lead = LeadFactory.create()
    OpportunityFactory.create(lead=lead, value="12500.50")
    client.force_login(sales)
    with translation.override("de"):
        response = client.get(f"/leads/{lead.pk}/", HTTP_ACCEPT_LANGUAGE="de")
    assert "<span data-value>12.500,50 EUR</span>" in _panel(response.content.decode())


def test_a_marketer_sees_the_deals_without_the_buttons(client, marketer):
    lead = LeadFactory.create()
    OpportunityFactory.create(lead=lead)
    client.force_login(marketer)
    panel = _panel(client.get(f"/leads/{lead.pk}/").content.decode())
    assert ">Won</button>" not in panel
    assert "Open an opportunity" not in panel
    refused = client.post(f"/leads/{lead.pk}/opportunities/", {"value": "1", "currency": "EUR"})
    assert refused.status_code == 403


def test_a_rep_opens_an_opportunity_and_the_header_follows(client, sales):
    lead = LeadFactory.create(stage=Stage.SQL, score=61)
    client.force_login(sales)

    response = client.post(
        f"/leads/{lead.pk}/opportunities/",
        {"name": "Pilot", "value": "4000", "currency": "chf"},
        **HTMX,
    )

    body = response.content.decode()
    assert response.status_code == 200
    opportunity = Opportunity.objects.get()
    assert (opportunity.name, opportunity.value, opportunity.currency) == (
        "Pilot",
        Decimal("4000.00"),
        "CHF",
    )
    lead.refresh_from_db()
    assert (lead.stage, lead.qualified_score) == (Stage.OPPORTUNITY, 61)
    assert 'id="profile-header" class="card" hx-swap-oob="true"' in body
    assert "<strong data-stage>Opportunity</strong>" in body
    assert "Opportunity opened." in body


def test_a_bad_value_comes_back_beside_the_field(client, sales):
    lead = LeadFactory.create()
    client.force_login(sales)
    response = client.post(
        f"/leads/{lead.pk}/opportunities/", {"value": "-3", "currency": "EURO"}, **HTMX
    )
    body = response.content.decode()
    assert response.status_code == 422
    assert "Ensure this value is greater than or equal to 0." in body
    assert "Ensure this value has at most 3 characters (it has 4)." in body
    assert not Opportunity.objects.exists()


def test_winning_makes_a_customer_and_closes_the_follow_ups(client, sales):
    lead = LeadFactory.create(stage=Stage.OPPORTUNITY)
    opportunity = OpportunityFactory.create(lead=lead, opened_at=OPENED)
    task = TaskFactory.create(lead=lead, follow_up=True, title="Call the hot lead")
    client.force_login(sales)

    response = client.post(f"/leads/{lead.pk}/opportunities/{opportunity.pk}/win/", **HTMX)

    assert response.status_code == 200
    lead.refresh_from_db()
    task.refresh_from_db()
    assert lead.stage == Stage.CUSTOMER
    assert (task.status, task.closed_reason) == ("closed", "Lead became a customer")
    again = client.post(f"/leads/{lead.pk}/opportunities/{opportunity.pk}/win/", **HTMX)
    assert again.status_code == 422
    assert "This opportunity is already won." in again.content.decode()
    profile = client.get(f"/leads/{lead.pk}/").content.decode()
    assert "<span data-closed-reason>Lead became a customer</span>" in profile


def test_losing_needs_a_reason_then_records_it(client, admin_user):
    lead = LeadFactory.create(stage=Stage.OPPORTUNITY)
    opportunity = OpportunityFactory.create(lead=lead, opened_at=OPENED)
    client.force_login(admin_user)
    url = f"/leads/{lead.pk}/opportunities/{opportunity.pk}/lose/"

    missing = client.post(url, {"reason": ""}, **HTMX)
    lost = client.post(url, {"reason": "Went with a competitor"})

    assert missing.status_code == 422
    assert "This field is required." in missing.content.decode()
    assert (lost.status_code, lost["Location"]) == (302, f"/leads/{lead.pk}/")
    opportunity.refresh_from_db()
    assert (opportunity.status, opportunity.lost_reason) == ("lost", "Went with a competitor")
    assert Lead.objects.get(pk=lead.pk).stage == Stage.LOST


def test_another_reps_lead_and_deal_are_not_found(client, sales):
    colleague = UserFactory.create(role="sales")
    opportunity = OpportunityFactory.create(lead__owner=colleague)
    client.force_login(sales)
    url = f"/leads/{opportunity.lead_id}/opportunities/{opportunity.pk}/win/"
    assert client.post(url, **HTMX).status_code == 404


def test_the_source_is_editable(client, sales):
    lead = LeadFactory.create(source="direct")
    client.force_login(sales)
    response = client.post(
        f"/leads/{lead.pk}/source/", {"source": "event", "source_detail": "Hannover fair"}, **HTMX
    )
    assert response.status_code == 200
    lead.refresh_from_db()
    assert (lead.source, lead.source_detail) == ("event", "Hannover fair")
    assert "Event / trade fair" in response.content.decode()


def test_the_timeline_shows_a_lost_deal_with_its_value_and_reason(client, sales):
    lead = LeadFactory.create(stage=Stage.OPPORTUNITY)
    opportunity = OpportunityFactory.create(lead=lead, value="2500", opened_at=OPENED)
    opportunity_lose(opportunity=opportunity, reason="No budget", user=None)
    client.force_login(sales)
    body = client.get(f"/leads/{lead.pk}/").content.decode()
    assert '<span class="badge text-bg-light border">opportunity.lost</span>' in body
    deal = '<span class="small text-body-secondary" data-deal>2,500.00 EUR · No budget</span>'
    assert deal in body


def test_language_and_time_zone_are_editable_on_the_profile(client, sales):
    lead = LeadFactory.create()
    client.force_login(sales)
    body = client.get(f"/leads/{lead.pk}/").content.decode()
    assert 'data-locale="|"' in body
    assert '<option value="" selected>The site&#x27;s default</option>' in body

    response = client.post(
        f"/leads/{lead.pk}/locale/", {"language": "de", "time_zone": "europe/berlin"}, **HTMX
    )

    assert response.status_code == 200
    lead.refresh_from_db()
    assert (lead.language, lead.time_zone) == ("de", "Europe/Berlin")
    html = response.content.decode()
    assert 'data-locale="de|Europe/Berlin"' in html
    assert '<option value="de" selected>Deutsch</option>' in html


def test_a_wrong_time_zone_is_said_and_nothing_is_saved(client, sales):
    lead = LeadFactory.create(language="en", time_zone="UTC")
    client.force_login(sales)

    response = client.post(
        f"/leads/{lead.pk}/locale/", {"language": "de", "time_zone": "Berlin"}, **HTMX
    )

    assert response.status_code == 422
    assert "This is not a time zone. Use a name like &quot;Europe/Berlin&quot;." in (
        response.content.decode()
    )
    # What was typed stays in the form.
    assert 'value="Berlin"' in response.content.decode()
    lead.refresh_from_db()
    assert (lead.language, lead.time_zone) == ("en", "UTC")

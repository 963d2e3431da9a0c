"""The opportunities API and the lifecycle fields on the leads API."""

from __future__ import annotations

import datetime as dt

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from leads.models import Lead, Opportunity, OpportunityStatus, Stage
from tests.factories import LeadFactory, OpportunityFactory

pytestmark = pytest.mark.django_db

OPENED = dt.datetime(2026, 10, 1, 10, 0, tzinfo=dt.UTC)


def test_the_lead_shows_its_stage_dates_source_and_qualified_score(marketer_api):
    lead = LeadFactory.create(
        stage=Stage.OPPORTUNITY,
        mql_at=OPENED,
        opportunity_at=OPENED,
        qualified_score=48,
        source="paid",
        source_detail="google / cpc",
    )
    body = marketer_api.get(f"/api/v1/leads/{lead.pk}/").json()
    assert {k: body[k] for k in ("mql_at", "sql_at", "opportunity_at", "customer_at")} == {
        "mql_at": "2026-10-01T10:00:00Z",
        "sql_at": None,
        "opportunity_at": "2026-10-01T10:00:00Z",
        "customer_at": None,
    }
    assert (body["qualified_score"], body["source"], body["source_detail"]) == (
        48,
        "paid",
        "google / cpc",
    )


def test_source_is_writable_and_dates_are_not(marketer_api):
    lead = LeadFactory.create()
    response = marketer_api.patch(
        f"/api/v1/leads/{lead.pk}/",
        {"source": "event", "source_detail": "Hannover fair", "mql_at": "2020-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    lead.refresh_from_db()
    assert (lead.source, lead.source_detail, lead.mql_at) == ("event", "Hannover fair", None)
    bad = marketer_api.patch(f"/api/v1/leads/{lead.pk}/", {"source": "pigeon"}, format="json")
    assert bad.json()["error"]["fields"] == {"source": ['"pigeon" is not a valid choice.']}


def test_a_rep_opens_wins_and_loses_opportunities(sales_api):
    lead = LeadFactory.create(stage=Stage.SQL)
    opened = sales_api.post(
        f"/api/v1/leads/{lead.pk}/opportunities/",
        {
            "value": "12500.00",
            "currency": "usd",
            "name": "Pilot",
            "opened_at": "2026-10-01T10:00:00Z",
        },
        format="json",
    )
    assert opened.status_code == 201, opened.json()
    body = opened.json()
    assert {k: body[k] for k in ("lead", "name", "value", "currency", "status", "opened_at")} == {
        "lead": lead.pk,
        "name": "Pilot",
        "value": "12500.00",
        "currency": "USD",
        "status": "open",
        "opened_at": "2026-10-01T10:00:00Z",
    }
    assert Lead.objects.get(pk=lead.pk).stage == Stage.OPPORTUNITY

    won = sales_api.post(f"/api/v1/opportunities/{body['id']}/win/", {}, format="json")
    assert (won.status_code, won.json()["status"]) == (200, "won")
    assert Lead.objects.get(pk=lead.pk).stage == Stage.CUSTOMER

    again = sales_api.post(
        f"/api/v1/opportunities/{body['id']}/lose/", {"reason": "Budget"}, format="json"
    )
    assert again.status_code == 409
    assert again.json() == {
        "error": {"code": "closed", "message": "This opportunity is already won.", "fields": {}}
    }


def test_losing_needs_a_reason_and_records_it(admin_api):
    opportunity = OpportunityFactory.create(lead__stage=Stage.OPPORTUNITY)
    missing = admin_api.post(f"/api/v1/opportunities/{opportunity.pk}/lose/", {}, format="json")
    assert (missing.status_code, missing.json()["error"]["fields"]) == (
        400,
        {"reason": ["This field is required."]},
    )
    lost = admin_api.post(
        f"/api/v1/opportunities/{opportunity.pk}/lose/",
        {"reason": "Chose a competitor"},
        format="json",
    )
    assert (lost.json()["status"], lost.json()["lost_reason"]) == ("lost", "Chose a competitor")
    assert Lead.objects.get(pk=opportunity.lead_id).stage == Stage.LOST


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"value": "-5"}, {"value": ["Ensure this value is greater than or equal to 0."]}),
        (
            {"value": "5", "currency": "E1"},
            {"currency": ["Enter a currency as its three-letter code, e.g. EUR or USD."]},
        ),
        ({}, {"value": ["This field is required."]}),
    ],
)
def test_bad_terms_are_refused_in_the_house_shape(admin_api, payload, fields):
    lead = LeadFactory.create()
    response = admin_api.post(f"/api/v1/leads/{lead.pk}/opportunities/", payload, format="json")
    assert (response.status_code, response.json()["error"]["fields"]) == (400, fields)
    assert not Opportunity.objects.exists()


def test_marketers_read_but_do_not_act(marketer_api):
    opportunity = OpportunityFactory.create()
    assert (
        marketer_api.get(f"/api/v1/leads/{opportunity.lead_id}/opportunities/").status_code == 200
    )
    refused = marketer_api.post(f"/api/v1/opportunities/{opportunity.pk}/win/", {}, format="json")
    assert (refused.status_code, refused.json()["error"]["message"]) == (
        403,
        "Only sales reps and admins open, win or lose opportunities.",
    )
    opportunity.refresh_from_db()
    assert opportunity.status == OpportunityStatus.OPEN


def test_a_rep_cannot_reach_another_reps_lead(sales_api, other_sales):
    opportunity = OpportunityFactory.create(lead__owner=other_sales)
    assert sales_api.get(f"/api/v1/leads/{opportunity.lead_id}/opportunities/").status_code == 404
    assert sales_api.post(f"/api/v1/opportunities/{opportunity.pk}/win/").status_code == 404


def test_the_lists_read_a_fixed_number_of_queries(marketer_api, django_assert_max_num_queries):
    lead = LeadFactory.create()
    OpportunityFactory.create_batch(12, lead=lead)
    OpportunityFactory.create_batch(3)
    with django_assert_max_num_queries(4):
        own = marketer_api.get(f"/api/v1/leads/{lead.pk}/opportunities/").json()
    with django_assert_max_num_queries(4):
        every = marketer_api.get("/api/v1/opportunities/?status=open").json()
    assert len(own) == 12
    assert len(every["results"]) == 15


def test_the_schema_stays_valid_with_the_new_endpoints():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    assert {
        "/api/v1/leads/{lead_pk}/opportunities/",
        "/api/v1/opportunities/{id}/win/",
        "/api/v1/opportunities/{id}/lose/",
    } <= set(schema["paths"])

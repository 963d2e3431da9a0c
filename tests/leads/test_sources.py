"""Where a lead came from: its first page view's campaign or referrer, a form,
an import or the API."""

from __future__ import annotations

import io

import pytest

from leads.models import Lead
from leads.services.events import events_process
from leads.services.imports import leads_import_stream
from leads.sources import source_from_page
from tests.factories import EventFactory, LeadFactory

SITE = "https://leadflow.example/pricing"


@pytest.mark.parametrize(
    ("campaign", "expected"),
    [
        (
            {"source": "google", "medium": "cpc", "name": "spring"},
            ("paid", "google / cpc / spring"),
        ),
        ({"source": "bing", "medium": "PPC"}, ("paid", "bing / PPC")),
        (
            {"source": "newsletter", "medium": "email", "name": "nov"},
            ("email", "newsletter / email / nov"),
        ),
        ({"source": "linkedin", "medium": "social"}, ("social", "linkedin / social")),
        ({"source": "linkedin"}, ("social", "linkedin")),
        ({"source": "partner-x", "medium": "banana"}, ("other", "partner-x / banana")),
    ],
)
def test_the_campaign_decides_by_its_medium(campaign, expected):
    context = {"campaign": campaign, "page": {"referrer": "https://www.google.com/"}}
    assert source_from_page(properties={"url": SITE}, context=context) == expected


def test_utm_parameters_of_the_url_count_when_the_context_has_no_campaign():
    properties = {"url": f"{SITE}?utm_source=google&utm_medium=cpc&utm_campaign=brand"}
    assert source_from_page(properties=properties, context={}) == ("paid", "google / cpc / brand")


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("https://www.google.de/search?q=lead+scoring", ("organic", "google.de")),
        ("https://duckduckgo.com/", ("organic", "duckduckgo.com")),
        ("https://www.google.co.uk/", ("organic", "google.co.uk")),
        ("https://t.co/abc", ("social", "t.co")),
        ("https://blog.partner.example/post", ("referral", "blog.partner.example")),
        ("https://leadflow.example/", ("direct", "")),
        ("", ("direct", "")),
    ],
)
def test_without_a_campaign_the_referrer_host_decides(referrer, expected):
    assert source_from_page(properties={"url": SITE, "referrer": referrer}, context={}) == expected


@pytest.mark.django_db
def test_the_first_page_view_sets_the_source_and_later_ones_do_not():
    first = EventFactory.create(
        lead=None,
        anonymous_id="anon-1",
        type="page",
        name="Pricing",
        properties={"url": SITE, "referrer": "https://www.bing.com/"},
    )
    events_process(event_ids=[first.pk])
    second = EventFactory.create(
        lead=None,
        anonymous_id="anon-1",
        type="page",
        properties={"url": SITE},
        context={"campaign": {"source": "google", "medium": "cpc"}},
    )
    events_process(event_ids=[second.pk])
    lead = Lead.objects.get()
    assert (lead.source, lead.source_detail) == ("organic", "bing.com")


@pytest.mark.django_db
def test_a_form_submission_of_a_lead_without_a_source_says_form():
    lead = LeadFactory.create()
    event = EventFactory.create(lead=lead, type="form.submitted", name="Demo request")
    events_process(event_ids=[event.pk])
    lead.refresh_from_db()
    assert (lead.source, lead.source_detail) == ("form", "Demo request")


@pytest.mark.django_db
def test_a_source_set_before_is_kept():
    lead = LeadFactory.create(source="event", source_detail="Hannover fair")
    event = EventFactory.create(lead=lead, type="page", properties={"url": SITE})
    events_process(event_ids=[event.pk])
    lead.refresh_from_db()
    assert (lead.source, lead.source_detail) == ("event", "Hannover fair")


@pytest.mark.django_db
def test_an_import_is_the_source_of_the_leads_it_creates_unless_a_column_says():
    LeadFactory.create(email="known@acme.example")
    text = "email,channel\nnew@acme.example,\nfair@acme.example,Trade fair\nknown@acme.example,\n"
    leads_import_stream(
        stream=io.BytesIO(text.encode()),
        mapping={"email": "email", "channel": "source"},
        file_name="fair-2026.csv",
    )
    sources = dict(Lead.objects.values_list("email", "source").order_by("email"))
    assert sources == {
        "fair@acme.example": "event",
        "known@acme.example": "",
        "new@acme.example": "import",
    }
    assert Lead.objects.get(email="new@acme.example").source_detail == "fair-2026.csv"


@pytest.mark.django_db
def test_an_unknown_source_in_a_csv_is_a_row_error():
    totals = leads_import_stream(
        stream=io.BytesIO(b"email,source\na@acme.example,carrier pigeon\n"),
        mapping={"email": "email", "source": "source"},
    )
    assert totals["errors"] == [
        {
            "row": 2,
            "error": "source: 'carrier pigeon' is not one of organic, paid, social, email, "
            "referral, direct, event, import, form, api, other.",
        }
    ]


@pytest.mark.django_db
def test_a_lead_created_through_the_api_comes_from_the_api_unless_given(marketer_api):
    plain = marketer_api.post("/api/v1/leads/", {"email": "a@acme.example"}, format="json")
    given = marketer_api.post(
        "/api/v1/leads/",
        {"email": "b@acme.example", "source": "event", "source_detail": "Hannover fair"},
        format="json",
    )
    assert (plain.json()["source"], plain.json()["source_detail"]) == ("api", "")
    assert (given.json()["source"], given.json()["source_detail"]) == ("event", "Hannover fair")

"""The scoring review page: who may open it, what it shows, accepting
suggestions into a draft flow, and applying a preset with its confirm step."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.cache import cache
from django.utils import timezone

from flows.models import Flow, FlowStatus
from leads.models import Lead
from scoring.models import ReviewLogEntry
from scoring.services import scoring_settings
from tests.factories import (
    EventFactory,
    FlowFactory,
    FlowVersionFactory,
    LeadFactory,
    ReviewLogEntryFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def converting_leads() -> None:
    """40 heads of sales who viewed pricing and became opportunities; 60 students who did not."""
    now = timezone.now()
    for index in range(100):
        converted = index < 40
        lead = LeadFactory.create(
            job_title="Head of Sales" if converted else "Student",
            opportunity_at=now if converted else None,
        )
        if converted or index % 10 == 0:
            EventFactory.create(
                lead=lead,
                type="page",
                properties={"url": "https://example.com/pricing"},
                occurred_at=now - dt.timedelta(days=2),
            )


@pytest.mark.parametrize("who", ["admin_user", "marketer"])
def test_admins_and_marketers_open_the_review(client, request, who):
    ReviewLogEntryFactory.create(user=request.getfixturevalue(who), summary="Hot 50 to 60")
    client.force_login(request.getfixturevalue(who))

    response = client.get("/scoring/")

    assert response.status_code == 200
    html = response.content.decode()
    for section in ("distribution", "ratings", "auc", "weeks", "funnel", "suggestions"):
        assert f'id="{section}"' in html
    assert "Hot 50 to 60" in html
    assert 'href="/scoring/">Scoring review</a>' in html
    # Nothing set up yet: the presets are offered.
    assert 'href="/scoring/presets/b2b/"' in html
    # Too few conversions: it says how many more.
    assert "suggestions need at least 30, so 30 more." in html


def test_sales_are_refused_and_do_not_see_the_link(client, sales):
    client.force_login(sales)
    assert client.get("/scoring/").status_code == 403
    assert client.post("/scoring/suggestions/accept/", {"accept": "x"}).status_code == 403
    assert client.get("/scoring/presets/b2b/").status_code == 403
    assert 'href="/scoring/"' not in client.get("/").content.decode()


def test_anonymous_visitors_are_sent_to_login(client):
    assert client.get("/scoring/")["Location"].startswith("/login/")


def test_the_review_reads_a_bounded_number_of_queries(
    client, marketer, django_assert_max_num_queries
):
    converting_leads()
    ReviewLogEntryFactory.create_batch(5)
    client.force_login(marketer)
    with django_assert_max_num_queries(25):
        assert client.get("/scoring/?month=2026-11").status_code == 200


def test_accepting_suggestions_opens_the_draft_in_the_builder(client, marketer):
    converting_leads()
    client.force_login(marketer)
    html = client.get("/scoring/").content.decode()
    assert 'value="page:/pricing"' in html
    assert 'value="title:student"' in html

    response = client.post(
        "/scoring/suggestions/accept/",
        {
            "accept": ["page:/pricing", "title:student", "source:unknown"],
            "points:page:/pricing": "12",
            "month": "2026-11",
        },
    )

    flow = Flow.objects.get()
    assert response["Location"] == f"/flows/{flow.pk}/"
    assert (flow.name, flow.status, flow.created_by) == (
        "Suggested scoring 2026-11",
        FlowStatus.DRAFT,
        marketer,
    )
    steps = {
        n["config"]["reason"]: n["config"]["points"]
        for n in flow.draft["nodes"]
        if n["type"] == "score.adjust"
    }
    assert steps["Page view: /pricing"] == 12
    assert steps["Job title: student or intern"] < 0
    assert ReviewLogEntry.objects.get().user == marketer
    builder = client.get(response["Location"])
    assert builder.status_code == 200
    assert "Draft made from 2 suggestions: review and publish." in builder.content.decode()


def test_accepting_nothing_goes_back_with_a_message(client, marketer):
    client.force_login(marketer)
    response = client.post("/scoring/suggestions/accept/", {}, follow=True)
    assert "Pick at least one suggestion" in response.content.decode()
    assert Flow.objects.count() == 0


def test_an_admin_applies_a_preset_after_confirming(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/scoring/presets/b2c/").content.decode()
    assert "B2C engagement scoring" in page
    assert 'name="confirm"' in page

    unconfirmed = client.post("/scoring/presets/b2c/", {})
    assert unconfirmed.status_code == 200
    assert scoring_settings().preset == ""

    done = client.post("/scoring/presets/b2c/", {"confirm": "1"})
    assert done["Location"] == "/scoring/"
    assert (scoring_settings().preset, Flow.objects.filter(status="active").count()) == ("b2c", 2)

    # Set up now: a second preset needs "overwrite" as well.
    refused = client.post("/scoring/presets/b2b/", {"confirm": "1"})
    assert "Not applied: The B2C preset was applied already." in refused.content.decode()
    assert scoring_settings().preset == "b2c"
    client.post("/scoring/presets/b2b/", {"confirm": "1", "overwrite": "1"})
    assert scoring_settings().preset == "b2b"


def test_marketers_see_a_preset_but_cannot_apply_it(client, marketer):
    client.force_login(marketer)
    response = client.post("/scoring/presets/b2b/", {"confirm": "1"})
    assert "Only an admin can apply a preset." in response.content.decode()
    assert scoring_settings().preset == ""
    assert Lead.objects.count() == 0


def test_the_review_log_shows_changes_as_readable_lines(client, marketer):
    flow = FlowFactory.create(name="Pricing points")
    steps = [
        {"id": "n1", "type": "score.adjust", "config": {"points": 5, "reason": "Saw pricing"}},
        {"id": "n2", "type": "score.adjust", "label": "Demo booked", "config": {"points": 20}},
    ]
    FlowVersionFactory.create(flow=flow, number=2, graph={"nodes": steps, "edges": []})
    ReviewLogEntryFactory.create(
        summary="Settings",
        changes={
            "hot_rule": ["total", "axes"],
            "warm_threshold": [20, 25],
            "total_cap": [None, 90],
        },
    )
    ReviewLogEntryFactory.create(
        subject="flow",
        summary="Flow",
        changes={"flow": flow.pk, "version": 2, "points": {"n1": 5, "n2": 20}},
    )
    client.force_login(marketer)

    html = client.get("/scoring/").content.decode()

    assert (
        "<li>Hot rule: Total score at or above the hot threshold"
        " → A minimum fit and a minimum engagement</li>"
    ) in html
    assert "<li>Warm from: 20 → 25</li>" in html
    assert "<li>Cap on the total: none → 90</li>" in html
    assert f'<li><a href="/flows/{flow.pk}/">Flow: Pricing points</a></li>' in html
    assert "<li>Version: 2</li>" in html
    assert "<li>Points: Saw pricing +5, Demo booked +20</li>" in html
    assert "{&#x27;" not in html


def test_an_uncertain_suggestion_is_not_ticked_and_says_why(client, marketer):
    converting_leads()
    now = timezone.now()
    LeadFactory.create_batch(7, job_title="Engineer")
    LeadFactory.create(job_title="Engineer", opportunity_at=now)
    LeadFactory.create_batch(10, job_title="Analyst", source="paid")
    client.force_login(marketer)

    html = client.get("/scoring/").content.decode()

    engineer = re.search(r'<tr data-feature="title:engineer">.*?</tr>', html, re.S)
    head = re.search(r'<tr data-feature="title:head">.*?</tr>', html, re.S)
    assert engineer is not None
    assert head is not None
    assert " checked" not in engineer.group(0)
    assert "Only 8 leads have it." in engineer.group(0)
    assert " checked" in head.group(0)
    assert "data-uncertain" not in head.group(0)
    # A row no flow can give points for says so instead of a bare "-".
    source = re.search(r'<tr data-feature="source:paid">.*?</tr>', html, re.S)
    assert source is not None
    assert "No flow can give these points" in source.group(0)

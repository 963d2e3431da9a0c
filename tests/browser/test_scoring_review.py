"""A marketer opens the scoring review, accepts suggested points and lands on the
draft flow they produced in the builder; the review fits a phone's width."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import Page, ViewportSize, expect

from flows.models import Flow
from tests.factories import EventFactory, LeadFactory

PHONE: ViewportSize = {"width": 390, "height": 844}


def _converting_leads() -> None:
    now = timezone.now()
    for index in range(100):
        converted = index < 40
        lead = LeadFactory.create(
            job_title="Head of Sales" if converted else "Student",
            opportunity_at=now if converted else None,
            source="organic" if index % 2 else "paid",
        )
        if converted or index % 10 == 0:
            EventFactory.create(
                lead=lead,
                type="page",
                properties={"url": "https://example.com/pricing"},
                occurred_at=now - dt.timedelta(days=2),
            )


@pytest.mark.django_db(transaction=True)
def test_a_marketer_accepts_suggestions_into_a_draft_flow(page: Page, live_server, login):
    cache.clear()
    _converting_leads()
    login(page, "marketer", "marketer-review")

    page.get_by_role("link", name="Scoring review").click()
    expect(page.get_by_role("heading", name="Scoring review")).to_be_visible()
    expect(page.locator("#suggestions")).to_contain_text("Page view: /pricing")
    page.get_by_label("Points Page view: /pricing").fill("15")
    page.get_by_role("button", name="Make a draft flow from the ticked rows").click()

    page.wait_for_url(f"{live_server.url}/flows/*/")
    flow = Flow.objects.get()
    assert page.url == f"{live_server.url}/flows/{flow.pk}/"
    assert flow.status == "draft"
    expect(page.get_by_text(flow.name).first).to_be_visible()
    points = {
        n["config"]["reason"]: n["config"]["points"]
        for n in flow.draft["nodes"]
        if n["type"] == "score.adjust"
    }
    assert points["Page view: /pricing"] == 15


@pytest.mark.django_db(transaction=True)
def test_the_review_fits_a_phone(page: Page, live_server, login):
    cache.clear()
    _converting_leads()
    login(page, "marketer", "marketer-phone")
    page.set_viewport_size(PHONE)

    page.goto(f"{live_server.url}/scoring/")
    expect(page.locator("#suggestions")).to_contain_text("Page view: /pricing")
    assert int(page.evaluate("document.documentElement.scrollWidth")) == PHONE["width"]
    button = page.get_by_role("button", name="Make a draft flow from the ticked rows")
    box = button.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= PHONE["width"]
    cache.clear()

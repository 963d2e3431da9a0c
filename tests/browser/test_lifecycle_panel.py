"""A rep works a deal from the lead profile on a phone (390 px): opens an
opportunity, marks it won; the panel and the header follow, nothing scrolls
sideways."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from leads.models import Lead, Opportunity
from tests.factories import LeadFactory

PHONE: ViewportSize = {"width": 390, "height": 844}


def _page_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


@pytest.mark.django_db(transaction=True)
def test_a_rep_opens_and_wins_a_deal_on_a_phone(page: Page, live_server, login):
    login(page, "sales", "rep-phone")
    lead = LeadFactory.create(
        stage="sql", source="paid", source_detail="google / cpc / a-rather-long-campaign-name"
    )
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/leads/{lead.pk}/")

    panel = page.locator("#profile-lifecycle")
    panel.get_by_text("Open an opportunity").click()
    panel.get_by_label("Name").fill("Pilot for the whole sales team")
    panel.get_by_label("Value").fill("12500")
    panel.get_by_role("button", name="Open opportunity").click()

    expect(panel.get_by_text("Opportunity opened.")).to_be_visible()
    expect(page.locator("[data-stage]")).to_have_text("Opportunity")
    won = panel.get_by_role("button", name="Won")
    expect(won).to_be_visible()
    assert _page_width(page) == PHONE["width"]
    box = won.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= PHONE["width"]

    won.click()
    expect(panel.get_by_text("Marked won: the lead is a customer.")).to_be_visible()
    expect(page.locator("[data-stage]")).to_have_text("Customer")
    assert _page_width(page) == PHONE["width"]
    assert Lead.objects.get(pk=lead.pk).stage == "customer"
    assert Opportunity.objects.get().status == "won"

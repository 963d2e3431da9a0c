"""At a phone's width (390 px) the settings pages fit the screen: the page never
scrolls sideways, and the action buttons stay inside it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from leads.services.users import identity_secret_rotate
from tests.factories import (
    DeliveryFactory,
    HookSubscriptionFactory,
    LeadFactory,
    ReviewLogEntryFactory,
)

PHONE: ViewportSize = {"width": 390, "height": 844}


def _page_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


@pytest.mark.django_db(transaction=True)
def test_webhooks_and_integrations_fit_a_phone(page: Page, live_server, login):
    login(page, "admin", "admin-phone")
    for n in range(2):
        HookSubscriptionFactory.create(
            target_url=f"https://automation.example.com/webhooks/leadflow/incoming-{n}",
            events=["lead.mql", "score.changed", "segment.entered"],
        )
    DeliveryFactory.create(
        target="https://automation.example.com/webhooks/leadflow/incoming-0",
        payload={"secret": "", "body": {"event": "lead.mql"}},
    )
    identity_secret_rotate()
    page.set_viewport_size(PHONE)

    page.goto(f"{live_server.url}/settings/webhooks/")
    expect(page.get_by_role("button", name="Delete").first).to_be_visible()
    assert _page_width(page) == PHONE["width"]
    delete = page.get_by_role("button", name="Delete").first.bounding_box()
    assert delete is not None
    assert delete["x"] + delete["width"] <= PHONE["width"]

    page.goto(f"{live_server.url}/settings/integrations/")
    turn_off = page.get_by_role("button", name="Turn off")
    expect(turn_off).to_be_visible()
    assert _page_width(page) == PHONE["width"]
    box = turn_off.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= PHONE["width"]
    # The sign-out button in the top bar wraps onto the screen rather than off it.
    logout = page.get_by_role("button", name="Log out").bounding_box()
    assert logout is not None
    assert logout["x"] + logout["width"] <= PHONE["width"]


@pytest.mark.django_db(transaction=True)
def test_scoring_settings_fit_a_phone(page: Page, live_server, login):
    login(page, "admin", "admin-scoring-phone")
    page.set_viewport_size(PHONE)

    page.goto(f"{live_server.url}/settings/scoring/")
    save = page.locator("#scoring-grades").get_by_role("button", name="Save")
    expect(save).to_be_visible()
    assert _page_width(page) == PHONE["width"]
    # A category's cap and decay open in place and stay on the screen.
    page.locator("#scoring-categories summary").first.click()
    decay = page.locator("#scoring-categories select").first
    expect(decay).to_be_visible()
    assert _page_width(page) == PHONE["width"]
    for box in (save.bounding_box(), decay.bounding_box()):
        assert box is not None
        assert box["x"] + box["width"] <= PHONE["width"]


@pytest.mark.django_db(transaction=True)
def test_the_leads_list_and_the_scoring_review_fit_a_phone(page: Page, live_server, login):
    login(page, "admin", "admin-leads-phone")
    for n in range(3):
        LeadFactory.create(
            first_name=f"Alexandrina-{n}",
            last_name="Featherstonehaugh-Montgomery",
            email=f"alexandrina.featherstonehaugh-{n}@very-long-company-domain.example.com",
            company_name="International Widgets and Sprockets Holding",
            fit_grade="A",
            engagement_grade="4",
        )
    ReviewLogEntryFactory.create(
        changes={"hot_rule": ["total", "axes"], "warm_threshold": [20, 25]},
    )
    page.set_viewport_size(PHONE)

    for path in ("/leads/", "/leads/?view=great_fit"):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("#lead-rows tr")).to_have_count(3)
        assert _page_width(page) == PHONE["width"], path

    page.goto(f"{live_server.url}/scoring/")
    expect(page.locator("#review-log tbody tr")).to_have_count(1)
    assert _page_width(page) == PHONE["width"]
    changed = page.locator("#review-log tbody td").nth(2).bounding_box()
    assert changed is not None
    assert changed["width"] >= 200

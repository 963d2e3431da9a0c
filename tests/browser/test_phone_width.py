"""At a phone's width (390 px) the pages fit the screen: the page never scrolls
sideways, the action buttons stay inside it, and a sales rep can do the whole
day: dashboard, tasks, a lead's profile, complete a task, add a note."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import Page, ViewportSize, expect

from leads.models import Note, Task
from leads.services.users import identity_secret_rotate
from tests.factories import (
    DeliveryFactory,
    HookSubscriptionFactory,
    LeadFactory,
    ReviewLogEntryFactory,
    SegmentMembershipFactory,
    TaskFactory,
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
    # The top bar's menu folds behind a button; opened, sign-out is on the screen.
    expect(page.get_by_role("button", name="Log out")).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
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


@pytest.mark.django_db(transaction=True)
def test_the_lead_filters_fold_behind_a_button_on_a_phone(page: Page, live_server, login):
    login(page, "sales", "sales-filters-phone")
    LeadFactory.create(first_name="Ada", stage="lead")
    page.set_viewport_size(PHONE)

    # Two filters set (the sort order is not one): the form is folded away and
    # the button says how many filters are on.
    page.goto(f"{live_server.url}/leads/?q=Ada&stage=lead&sort=score")
    expect(page.locator("#lead-rows tr")).to_have_count(1)
    toggle = page.get_by_role("button", name="Filters")
    expect(toggle).to_have_text("Filters 2")
    expect(page.locator("#lead-filters")).to_be_hidden()

    # Opened, a third filter counts at once.
    toggle.click()
    expect(page.locator("#lead-stage")).to_be_visible()
    page.locator("#lead-tag").fill("vip")
    expect(toggle).to_have_text("Filters 3")

    # On a laptop the form is always open and there is no button.
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/leads/")
    expect(page.locator("#lead-filters")).to_be_visible()
    expect(page.get_by_role("button", name="Filters")).to_be_hidden()


@pytest.mark.django_db(transaction=True)
def test_segments_and_their_members_fit_a_phone(page: Page, live_server, login):
    login(page, "marketer", "marketer-segments-phone")
    membership = SegmentMembershipFactory.create(
        segment__name="Decision makers at companies of twenty-five people or more",
        segment__description="Founders, C-level, VPs, heads and directors " * 3,
        segment__member_count=1,
        lead__email="alexandrina.featherstonehaugh@very-long-company-domain.example.com",
        lead__company_name="International Widgets and Sprockets Holding",
    )
    page.set_viewport_size(PHONE)

    page.goto(f"{live_server.url}/segments/")
    expect(page.locator("#segment-table td[data-label='Members']")).to_have_text("1")
    assert _page_width(page) == PHONE["width"]

    page.goto(f"{live_server.url}/segments/{membership.segment.pk}/")
    expect(page.locator("#member-rows td[data-label='Company']")).to_have_text(
        "International Widgets and Sprockets Holding"
    )
    assert _page_width(page) == PHONE["width"]


def _inside(page: Page, locator) -> None:
    """The element is visible and wholly on the phone's screen (left to right)."""
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]


@pytest.mark.django_db(transaction=True)
def test_a_sales_reps_day_on_a_phone(page: Page, live_server, login):
    rep = login(page, "sales", "clara")
    rep.first_name, rep.last_name = "Clara", "Keller"
    rep.save(update_fields=["first_name", "last_name"])
    now = timezone.now()
    kim = LeadFactory.create(
        first_name="Kim",
        last_name="Ortega",
        company_name="Ortega Logistics",
        owner=rep,
        score=85,
        grade="hot",
    )
    lou = LeadFactory.create(first_name="Lou", last_name="Baker", owner=rep, score=20)
    TaskFactory.create(lead=kim, assignee=rep, title="Call Kim", due_at=now - dt.timedelta(hours=2))
    TaskFactory.create(lead=lou, assignee=rep, title="Email Lou", due_at=now + dt.timedelta(days=2))
    page.set_viewport_size(PHONE)

    # The dashboard: the rep's name in the menu, the overdue and upcoming tasks
    # with their leads' scores.
    page.goto(f"{live_server.url}/")
    page.get_by_role("button", name="Menu").click()
    expect(page.locator("#topbar-user")).to_contain_text("Clara Keller")
    page.get_by_role("button", name="Menu").click()
    tasks = page.locator("#dashboard-task-list li")
    expect(tasks).to_have_count(2)
    expect(tasks.first).to_contain_text("Call Kim")
    expect(tasks.first).to_contain_text("85")
    expect(tasks.nth(1)).to_contain_text("Email Lou")
    expect(page.locator("[data-overdue]")).to_have_text("1 task overdue")
    assert _page_width(page) == PHONE["width"]

    # My tasks, through the menu: a list of cards, each with its actions on screen.
    page.get_by_role("button", name="Menu").click()
    page.locator("#topbar-menu").get_by_role("link", name="Tasks").click()
    page.wait_for_url(f"{live_server.url}/tasks/")
    card = page.locator("#tasks-overdue tbody tr").first
    expect(card).to_contain_text("Call Kim")
    _inside(page, card.get_by_role("button", name="Complete “Call Kim”"))
    _inside(page, card.get_by_role("button", name="Snooze"))
    assert _page_width(page) == PHONE["width"]

    # Kim's profile: the open task and the note box come first.
    card.get_by_role("link", name="Kim Ortega").click()
    page.wait_for_url(f"{live_server.url}/leads/{kim.pk}/")
    complete = page.locator("#profile-tasks").get_by_role("button", name="Complete “Call Kim”")
    _inside(page, complete)
    viewport_bottom = PHONE["height"]
    box = complete.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= viewport_bottom
    assert _page_width(page) == PHONE["width"]

    complete.click()
    expect(page.locator("#profile-tasks")).to_contain_text("Call Kim: Completed.")
    expect(page.locator("#profile-no-open-tasks")).to_be_visible()

    note = page.get_by_label("New note")
    note.fill("Called: wants a demo next Tuesday.")
    _inside(page, page.get_by_role("button", name="Add note"))
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#profile-notes .note").first).to_contain_text(
        "Called: wants a demo next Tuesday."
    )
    expect(page.locator("#profile-notes .note").first).to_contain_text("Clara Keller")
    assert _page_width(page) == PHONE["width"]

    assert Task.objects.get(title="Call Kim").status == "done"
    assert list(Note.objects.filter(lead=kim).values_list("body", "author__username")) == [
        ("Called: wants a demo next Tuesday.", "clara")
    ]
    page.screenshot(path="test-results/phone-rep-day-profile.png", full_page=True)

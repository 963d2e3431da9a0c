"""Small things a marketer meets every day: a request that a newer one replaces
(``hx-sync="this:replace"``) is cancelled quietly, with nothing logged as an
error in the console; a new custom field's key is made from its label; the
score's reasons beyond the ten biggest load on demand."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from leads.models import FieldDefinition
from scoring.models import ScoreCategory, ScoreSource
from scoring.services import score_adjust
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_replaced_live_count_request_logs_no_error(page: Page, live_server, login):
    LeadFactory.create(job_title="CEO")
    LeadFactory.create(job_title="CTO")
    login(page, "marketer")
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.goto(f"{live_server.url}/segments/new/")
    page.locator('[name="c-0-value"]').press_sequentially("CEO")
    expect(page.locator("#segment-count")).to_have_text("1")
    page.on("console", on_console)

    # Two changes at once: the second request replaces the first one in flight.
    aborted = page.evaluate(
        """() => new Promise((resolve) => {
            const builder = document.querySelector("#condition-builder");
            let aborts = 0;
            builder.addEventListener("htmx:sendAbort", () => { aborts += 1; });
            htmx.trigger(builder, "change");
            document.querySelector('[name="c-0-value"]').value = "CTO";
            htmx.trigger(builder, "change");
            setTimeout(() => resolve(aborts), 0);
        })"""
    )

    assert aborted == 1
    expect(page.locator("#segment-count")).to_have_text("1")
    value = page.locator('[name="c-0-value"]')
    value.fill("")
    value.press_sequentially("CT")
    expect(page.locator("#segment-count")).to_have_text("1")
    assert errors == []


def test_a_custom_fields_key_follows_its_label_until_edited(page: Page, live_server, login):
    login(page, "admin")
    page.goto(f"{live_server.url}/settings/fields/")
    label, key = page.get_by_label("Label"), page.get_by_label("Key")

    label.press_sequentially("Café visits")
    expect(key).to_have_value("cafe_visits")
    key.fill("visits")
    label.fill("Café visits (web)")
    expect(key).to_have_value("visits")
    key.fill("")
    label.fill("Café visits (web)!")
    expect(key).to_have_value("cafe_visits_web")
    page.get_by_role("button", name="Add field").click()

    expect(page.locator("code", has_text="cafe_visits_web")).to_be_visible()
    assert list(FieldDefinition.objects.values_list("key", "label")) == [
        ("cafe_visits_web", "Café visits (web)!")
    ]


def test_the_bulk_bar_shows_only_the_chosen_actions_input(page: Page, live_server, login):
    LeadFactory.create(first_name="Ada")
    login(page, "marketer")
    page.goto(f"{live_server.url}/leads/")
    owner, tag, stage = (
        page.get_by_label("New owner"),
        page.get_by_label("Tag", exact=True).last,
        page.get_by_label("New stage"),
    )

    page.get_by_label("Bulk action").select_option("owner")
    expect(owner).to_be_visible()
    expect(tag).to_be_hidden()
    expect(stage).to_be_hidden()

    page.get_by_label("Bulk action").select_option("tag_remove")
    expect(owner).to_be_hidden()
    expect(tag).to_be_visible()

    page.get_by_label("Bulk action").select_option("stage")
    expect(tag).to_be_hidden()
    expect(stage).to_be_visible()


REASON = re.compile(r"Reason \d\d")


def test_the_profile_loads_every_reason_of_the_score_on_demand(page: Page, live_server, login):
    marketer = login(page, "marketer")
    lead = LeadFactory.create(first_name="Ada", last_name="King")
    engagement = ScoreCategory.objects.get(key="engagement")
    for n in range(1, 13):
        score_adjust(
            lead=lead,
            delta=n,
            category=engagement,
            reason=f"Reason {n:02d}",
            source=ScoreSource.MANUAL,
            source_key=f"manual:browser-{n}",
            created_by=marketer,
        )

    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    breakdown = page.locator("#score-breakdown")
    expect(breakdown.locator("tbody tr", has_text=REASON)).to_have_count(10)
    expect(breakdown).not_to_contain_text("Reason 02")
    breakdown.get_by_role("link", name="Show all 12 reasons").click()

    expect(breakdown.locator("tbody tr", has_text=REASON)).to_have_count(12)
    expect(breakdown.locator("tbody tr").last).to_contain_text("Reason 01")
    expect(breakdown.get_by_role("link", name="Show all 12 reasons")).to_have_count(0)

"""The segment editor in a real browser: the condition builder, the live count
as rules change, saving, and the members a worker works out."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from leads.models import Segment
from tests.factories import LeadFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def settled(page: Page) -> None:
    """Wait until the builder's requests are answered, swapped in and settled
    (htmx wires up new rows as they settle): typing into a row that is about to
    be replaced would be lost."""
    page.wait_for_function(
        "() => document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling') === null"
    )


def test_a_marketer_builds_a_segment_with_a_live_count(
    page: Page, live_server, login, celery_worker_process
):
    big_ceo = LeadFactory.create(
        job_title="CEO", company_size=500, first_name="Ada", last_name="Lovelace"
    )
    LeadFactory.create(job_title="Co-CEO", company_size=8, first_name="Bo", last_name="Diddley")
    LeadFactory.create(job_title="CTO", company_size=900, first_name="Cy")
    LeadFactory.create(job_title="Intern", company_size=2000, first_name="Di")
    login(page, "marketer")

    page.get_by_role("link", name="Segments").click()
    expect(page.get_by_text("No segments yet.")).to_be_visible()
    page.get_by_role("link", name="New segment").click()
    page.get_by_label("Name").fill("Big-company CEOs")

    # The first rule is there: job title contains …
    count = page.locator("#segment-count")
    # Typed, as a person does: the count follows the keys (debounced).
    page.locator('[name="c-0-value"]').press_sequentially("CEO")
    expect(count).to_have_text("2")
    expect(page.locator("#segment-sample a")).to_have_text(
        ["Bo Diddley", "Ada Lovelace"], use_inner_text=True
    )

    # A nested group: any of (company size ≥ 100).
    page.locator('button[value="add-group:c"]').click()
    settled(page)
    field = page.locator('[name="c-1-0-field"]')
    expect(field).to_be_visible()
    field.select_option("company_size")
    settled(page)
    operator = page.locator('[name="c-1-0-op"]')
    expect(operator).to_have_value("eq")
    operator.select_option("gte")
    settled(page)
    expect(page.locator('[name="c-1-0-op"]')).to_have_value("gte")
    page.locator('[name="c-1-0-value"]').press_sequentially("100")
    expect(count).to_have_text("1")
    # The first rule kept its value through the builder's re-renders.
    expect(page.locator('[name="c-0-value"]')).to_have_value("CEO")

    page.get_by_role("button", name="Create segment").click()
    segment = Segment.objects.get(name="Big-company CEOs")
    page.wait_for_url(f"{live_server.url}/segments/{segment.pk}/")
    assert segment.conditions == {
        "all": [
            {"field": "job_title", "op": "contains", "value": "CEO"},
            {"any": [{"field": "company_size", "op": "gte", "value": 100}]},
        ]
    }
    # The worker works out the members; the page follows without a reload.
    members = page.locator("#member-rows a")
    expect(members).to_have_text(["Ada Lovelace"], timeout=20_000)
    expect(page.locator("#segment-member-count")).to_have_text("1")
    expect(page.get_by_role("button", name="Refresh now")).to_be_visible()
    members.first.click()
    page.wait_for_url(f"{live_server.url}/leads/{big_ceo.pk}/")
    expect(
        page.locator("#profile-segments").get_by_role("link", name="Big-company CEOs")
    ).to_be_visible()

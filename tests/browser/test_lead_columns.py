"""A marketer adds the job title column to the leads list, sorts by it with a
click on its header, and a second click turns the order round."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.factories import LeadFactory


@pytest.mark.django_db(transaction=True)
def test_choose_a_column_and_sort_by_it_both_ways(page: Page, live_server, login):
    LeadFactory.create(email="b@x.example", job_title="Buyer")
    LeadFactory.create(email="a@x.example", job_title="Analyst")
    LeadFactory.create(email="c@x.example", job_title="CEO")
    login(page, "marketer", "list-columns")
    page.goto(f"{live_server.url}/leads/")

    # The marketer ticks "Job title" in the columns panel and saves,
    page.get_by_text("Columns", exact=True).click()
    page.get_by_role("checkbox", name="Job title").check()
    page.get_by_role("button", name="Save columns").click()
    header = page.locator('th[data-column="job_title"]')
    expect(header).to_have_attribute("aria-sort", "none")

    # clicks its header: Z to A,
    header.get_by_role("link").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    titles = page.locator('#lead-rows td[data-label="Job title"]')
    expect(titles).to_have_text(["CEO", "Buyer", "Analyst"])
    page.screenshot(path="/tmp/list-shots/columns-sorted.png")

    # and again: A to Z.
    header.get_by_role("link").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect(titles).to_have_text(["Analyst", "Buyer", "CEO"])
    assert "sort=job_title%3Aasc" in page.url

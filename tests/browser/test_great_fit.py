"""A sales rep goes from the dashboard to "Great fit, not yet engaged" and finds
the well-fitting leads that have not engaged yet, best fit first; not the
engaged ones, not a customer, not a poor fit."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from scoring.models import ScoreCategory
from tests.factories import LeadFactory, LeadScoreFactory


def _lead(email: str, fit: int, fit_grade: str, engagement_grade: str, **extra: object) -> None:
    lead = LeadFactory.create(
        email=email, fit_grade=fit_grade, engagement_grade=engagement_grade, **extra
    )
    LeadScoreFactory.create(lead=lead, category=ScoreCategory.objects.get(key="fit"), score=fit)


@pytest.mark.django_db(transaction=True)
def test_a_rep_opens_great_fit_not_yet_engaged(page: Page, live_server, login):
    # Given two quiet leads that fit well, an engaged one, a customer and a poor fit,
    _lead("ceo@quiet.example", 45, "A", "4", job_title="CEO")
    _lead("head@quiet.example", 30, "B", "3", job_title="Head of Sales")
    _lead("busy@engaged.example", 50, "A", "1")
    _lead("bought@customer.example", 50, "A", "4", stage="customer")
    _lead("student@poor.example", 0, "D", "4", job_title="Student")
    login(page, "sales", "rep-great-fit")

    # when the rep follows the dashboard's link,
    page.locator("#dashboard-great-fit").get_by_role("link").click()

    # then the list explains itself and shows the two quiet, well-fitting leads,
    # the better fit first.
    expect(page.locator("#great-fit-help")).to_be_visible()
    expect(page.locator("#view-great-fit")).to_have_attribute("aria-current", "page")
    rows = page.locator("#lead-rows tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("ceo@quiet.example")
    expect(rows.nth(0)).to_contain_text("A4")
    expect(rows.nth(1)).to_contain_text("head@quiet.example")
    expect(rows.nth(1)).to_contain_text("B3")

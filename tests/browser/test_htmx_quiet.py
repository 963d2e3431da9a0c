"""htmx requests that a newer one replaces (``hx-sync="this:replace"``) are
cancelled on purpose: nothing is logged as an error in the browser's console."""

from __future__ import annotations

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

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

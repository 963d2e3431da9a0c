"""An admin finds an email held for the send window on the held sends page, at a
desktop's and a phone's width, sends it now, and it leaves the list."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, ViewportSize, expect

from emails.models import EmailSend, HoldReason, SendStatus
from leads.models import ConsentState
from tests.factories import (
    EmailSendFactory,
    EmailSettingsFactory,
    EmailTemplateFactory,
    LeadFactory,
)

DESKTOP: ViewportSize = {"width": 1440, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
# Where the screenshots go when asked for (LEADFLOW_SCREENSHOTS=<folder>).
SHOTS = os.environ.get("LEADFLOW_SCREENSHOTS", "")


def _shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def _page_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


@pytest.mark.django_db(transaction=True)
def test_an_admin_sends_a_held_email_now_and_reads_why_others_wait(page: Page, live_server, login):
    EmailSettingsFactory.create(
        send_window_start=dt.time(9), send_window_end=dt.time(17), frequency_cap=2
    )
    welcome = EmailTemplateFactory.create(name="Welcome to Acme")
    digest = EmailTemplateFactory.create(name="Monthly product digest")
    later = timezone.now() + dt.timedelta(hours=9)
    window = EmailSendFactory.create(
        template=welcome,
        lead=LeadFactory.create(
            first_name="Ada",
            last_name="Lovelace",
            email="ada@analytical.example",
            time_zone="Pacific/Auckland",
            consent_state=ConsentState.CONFIRMED,
        ),
        status=SendStatus.HELD,
        held_for=HoldReason.SEND_WINDOW,
        next_attempt_at=later,
    )
    EmailSendFactory.create(
        template=digest,
        lead=LeadFactory.create(first_name="Grace", last_name="Hopper"),
        status=SendStatus.HELD,
        held_for=HoldReason.FREQUENCY_CAP,
        next_attempt_at=later + dt.timedelta(days=2),
    )
    EmailSendFactory.create(
        template=digest,
        lead=LeadFactory.create(first_name="Alan", last_name="Turing"),
        status=SendStatus.FAILED,
        attempts=5,
        last_error="(550, b'5.1.1 <alan@turing.example>: Recipient address rejected: "
        "User unknown in virtual mailbox table')",
        next_attempt_at=None,
    )
    login(page, "admin", "admin-held")

    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/emails/held/")
    expect(page.get_by_role("heading", name="Emails")).to_be_visible()
    expect(page.locator("#held-sends tbody tr")).to_have_count(3)
    _shot(page, "held-sends-1440")

    page.set_viewport_size(PHONE)
    page.reload()
    assert _page_width(page) == PHONE["width"]
    _shot(page, "held-sends-390")

    page.set_viewport_size(DESKTOP)
    row = page.locator(f"#send-{window.pk}")
    row.get_by_role("button", name="Send now").click()
    expect(page.get_by_text("The email goes out now, outside the send window.")).to_be_visible()
    window.refresh_from_db()
    assert window.send_window_waived is True
    assert window.status in (SendStatus.QUEUED, SendStatus.SENDING, SendStatus.SENT)
    expect(page.locator(f"#send-{window.pk}")).to_have_count(0)
    assert EmailSend.objects.filter(status__in=["held", "failed"]).count() == 2

"""The unsubscribe page as a German reader opens it on a phone: it fits the
screen, asks with one button, and the button unsubscribes."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from emails.links import unsubscribe_url
from leads.models import ConsentState, Event
from tests.factories import LeadFactory

PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.mark.django_db(transaction=True)
def test_unsubscribe_on_a_phone_in_german(page: Page, live_server, settings):
    settings.SITE_URL = live_server.url
    lead = LeadFactory.create(
        email="sehr.lange.adresse.fuer.ein.handy@beispiel-unternehmen.example",
        language="de",
        consent_state=ConsentState.CONFIRMED,
    )
    page.set_viewport_size(PHONE)

    page.goto(unsubscribe_url(lead=lead, send_key="welcome-1"))

    expect(page.locator("html")).to_have_attribute("lang", "de")
    button = page.get_by_role("button")
    expect(button).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    box = button.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= PHONE["width"]
    assert box["y"] + box["height"] <= PHONE["height"]
    lead.refresh_from_db()
    assert lead.consent_state == ConsentState.CONFIRMED

    button.click()

    expect(page.get_by_role("button")).to_have_count(0)
    expect(page.locator("html")).to_have_attribute("lang", "de")
    lead.refresh_from_db()
    assert (lead.unsubscribed, lead.consent_state) == (True, ConsentState.WITHDRAWN)
    assert Event.objects.filter(type="email.unsubscribed", lead=lead).count() == 1

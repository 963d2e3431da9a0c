"""The email template editor in a real browser: blocks added, moved and removed,
the preview for a lead at desktop and mobile width, and saving."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from emails.models import EmailTemplate
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_marketer_writes_previews_and_saves_a_template(page: Page, live_server, login):
    LeadFactory.create(email="jana@acme.example", first_name="Jana", company_name="Acme & Co")
    login(page, "marketer")

    page.get_by_role("link", name="Emails").click()
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Name").fill("Welcome")
    page.get_by_label("Subject").fill("Hi {{ first_name }}")

    cards = page.locator('[data-block-list="root"] > [data-block]')
    expect(cards).to_have_count(2)
    root_add = page.locator("section[data-block-editor] > div.d-flex")
    root_add.get_by_role("button", name="+ Button").click()
    button_card = cards.nth(2)
    button_card.get_by_label("Label").fill("Start at {{ company_name }}")
    button_card.get_by_label("Link").fill("https://acme.example/start")
    button_card.get_by_role("button", name="Move up").click()
    # Heading, button, text: the text goes.
    expect(cards.nth(1)).to_have_attribute("data-block", "button")
    cards.nth(2).get_by_role("button", name="Remove").click()
    expect(cards).to_have_count(2)

    frame = page.frame_locator("#preview-frame")
    expect(frame.get_by_role("link", name="Start at Acme & Co")).to_be_visible()
    expect(frame.get_by_role("heading", name="Hello Jana")).to_be_visible()
    expect(page.locator("#preview-subject")).to_have_text("Hi Jana")
    page.get_by_text("Mobile", exact=True).click()
    expect(page.locator("#preview-frame")).to_have_css("width", "375px")

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("The template is saved.")).to_be_visible()
    template = EmailTemplate.objects.get()
    assert template.blocks == [
        {"type": "heading", "text": 'Hello {{ first_name | default: "there" }}', "level": 1},
        {
            "type": "button",
            "label": "Start at {{ company_name }}",
            "url": "https://acme.example/start",
        },
    ]
    assert page.url == f"{live_server.url}/emails/templates/{template.pk}/"
    expect(cards).to_have_count(2)

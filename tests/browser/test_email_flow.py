"""The whole loop of a flow's email in a real browser: a marketer writes a
template and previews it for a lead, puts it in a flow after "entered segment"
and publishes; the lead enters the segment and the email is sent to the
outbox, where an admin reads it; opening it loads the tracking pixel and the
step's counts on the canvas move."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from emails.models import EmailSend, EmailTemplate, OutboxMessage, SendStatus
from emails.sending import email_sends_drain
from flows.models import Flow
from leads.models import ConsentState, Event, Lead
from segments.services import segment_create
from tests.browser.test_builder_adding import add_after, node_of
from tests.factories import EmailSettingsFactory, LeadFactory, SenderFactory
from tests.flows.helpers import drain
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_an_email_from_a_flow_goes_out_is_read_and_counted(
    page: Page, browser: Browser, live_server, login, settings, full_key
):
    settings.EMAIL_BACKEND = "emails.backends.OutboxBackend"
    settings.SITE_URL = live_server.url
    cache.clear()
    EmailSettingsFactory.create()
    SenderFactory.create(name="Acme News", address="news@acme.example")
    segment_create(
        name="Newsletter",
        conditions={"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]},
    )
    LeadFactory.create(
        email="jana@acme.example",
        first_name="Jana",
        company_name="Acme",
        job_title="Engineer",
        consent_state=ConsentState.CONFIRMED,
    )
    login(page, "marketer")

    # The template, previewed for Jana.
    page.get_by_role("link", name="Emails").click()
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Name").fill("Welcome")
    page.get_by_label("Subject").fill("Welcome, {{ first_name }}")
    page.get_by_label("From").select_option(label="Acme News <news@acme.example>")
    page.locator("#preview-lead").fill("jana@acme.example")
    page.locator("#preview-lead").dispatch_event("change")
    frame = page.frame_locator("#preview-frame")
    expect(frame.get_by_role("heading", name="Hello Jana")).to_be_visible()
    expect(page.locator("#preview-subject")).to_have_text("Welcome, Jana")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("The template is saved.")).to_be_visible()
    template = EmailTemplate.objects.get(name="Welcome")

    # The flow: entered "Newsletter" → Send email "Welcome", published.
    page.goto(f"{live_server.url}/flows/")
    page.get_by_label("New flow").fill("Welcome new subscribers")
    page.get_by_role("button", name="Create and open").click()
    flow = Flow.objects.get(name="Welcome new subscribers")
    page.locator('.lf-palette [data-node-type="segment.entered"]').click()
    trigger = node_of(page, "segment.entered")
    trigger.click()
    panel = page.locator(".lf-panel form[data-ready]")
    panel.get_by_label("Segment", exact=True).select_option(label="Newsletter")
    expect(trigger.locator(".lf-node-summary")).to_have_text("Entered segment: Newsletter")
    email = add_after(page, trigger, "Send email")
    email.click()
    panel.get_by_label("Template", exact=True).select_option(label="Welcome")
    expect(email.locator(".lf-node-summary")).to_have_text("Welcome")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published version 1.")).to_be_visible()

    # Jana becomes a CEO through the API, enters the segment, and the flow
    # sends her the email (the worker's part run here, in order).
    response = requests.post(
        f"{live_server.url}/api/v1/events/",
        data=json.dumps(
            {
                "type": "identify",
                "email": "jana@acme.example",
                "properties": {"job_title": "CEO"},
                "idempotency_key": "jana-ceo",
            }
        ),
        headers={"Authorization": f"Bearer {full_key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 202, response.content
    drain()
    assert email_sends_drain() == [SendStatus.SENT]
    send = EmailSend.objects.get()
    assert (send.lead, send.template, send.flow_id) == (
        Lead.objects.get(email="jana@acme.example"),
        template,
        flow.pk,
    )
    # Read a minute later, not by a machine the second it arrived.
    EmailSend.objects.filter(pk=send.pk).update(sent_at=timezone.now() - dt.timedelta(minutes=1))
    message = OutboxMessage.objects.get()
    assert message.to == ["jana@acme.example"]
    assert message.subject == "Welcome, Jana"
    assert f'<img src="{live_server.url}/e/o/' in message.html
    page.reload()
    stats = email.locator(".lf-node-email-stats")
    expect(stats).to_have_text(
        "1 sent · 0 delivered · 0 opened · 0 clicked · 0 bounced · 0 unsubscribed"
    )

    # The admin reads it under "Sent emails": the pixel loads.
    admin_context = browser.new_context(viewport={"width": 1280, "height": 800})
    admin_page = admin_context.new_page()
    login(admin_page, "admin")
    admin_page.goto(f"{live_server.url}/emails/sent/")
    admin_page.get_by_role("link", name="Welcome, Jana").click()
    # The email sits in a sandboxed frame whose requests Playwright does not
    # report: that the pixel loaded is told by the open it recorded.
    admin_frame = admin_page.frame_locator("#outbox-frame")
    expect(admin_frame.get_by_role("heading", name="Hello Jana")).to_be_visible()
    wait_for(lambda: Event.objects.filter(type="email.opened").exists(), 15, "the open recorded")
    admin_context.close()
    drain()
    send.refresh_from_db()
    assert send.opened_at is not None

    # Back on the canvas, the step says so.
    page.goto(f"{live_server.url}/flows/{flow.pk}/")
    expect(stats).to_have_text(
        "1 sent · 0 delivered · 1 opened · 0 clicked · 0 bounced · 0 unsubscribed"
    )

"""A flow's "Send email" step through Django's SMTP backend to a real SMTP server
(aiosmtpd, started by the test): what arrives, its headers and tracked links, and
what the pixel and the links record when loaded through the app."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
from anymail.signals import AnymailTrackingEvent
from django.utils import timezone

from emails.models import EmailSend, SendStatus
from flows.models import StepRun
from flows.selectors import flow_email_stats
from leads.models import ConsentState, Event
from leads.services.email_events import anymail_tracking_received
from tests.factories import (
    EmailSettingsFactory,
    EmailTemplateFactory,
    EventFactory,
    LeadFactory,
    SenderFactory,
)
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)"


@pytest.fixture
def template(db):
    EmailSettingsFactory.create()
    return EmailTemplateFactory.create(
        name="Welcome",
        subject='Welcome, {{ first_name | default: "there" }}',
        sender=SenderFactory.create(name="Leadflow Team", address="team@example.com"),
        blocks=[
            {"type": "heading", "text": "Hello {{ first_name }}", "level": 1},
            {"type": "text", "text": "Glad to have you at {{ company_name }}."},
            {
                "type": "button",
                "label": "See the guide",
                "url": "https://example.com/guide?a=1&b=2",
            },
        ],
    )


@pytest.fixture
def flow(template):
    return published(
        "Onboarding",
        graph(
            ("t", "app.event", {"event": "Signed up"}),
            ("send", "email.send", {"template": template.pk}),
        ),
    )


def _signed_up(**fields):
    lead = LeadFactory.create(consent_state=ConsentState.CONFIRMED, **fields)
    EventFactory.create(lead=lead, name="Signed up")
    drain()
    return lead


def _parts(message):
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    return html, text


def _first(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found is not None, pattern
    return found.group(1)


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_the_email_arrives_with_both_parts_merge_tags_headers_and_tracking(
    smtp_server, flow, template
):
    lead = _signed_up(email="ada@example.com", first_name="Ada", company_name="Analytical")

    [received] = smtp_server.received
    send = EmailSend.objects.get()
    assert (send.status, send.key, send.flow_id, send.node_id) == (
        SendStatus.SENT,
        f"step:{StepRun.objects.get(node_id='send').pk}",
        flow.pk,
        "send",
    )
    assert received.rcpt_tos == ["ada@example.com"]
    message = received.message
    assert message["Subject"] == "Welcome, Ada"
    assert message["To"] == "ada@example.com"
    assert message["From"] == "Leadflow Team <team@example.com>"
    assert message["Message-ID"] == f"<{send.message_id}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<http://testserver/\S+>", message["List-Unsubscribe"].strip())
    html, text = _parts(message)
    assert "Hello Ada" in html
    assert "Glad to have you at Analytical." in html
    assert "Hello Ada" in text
    assert "Leadflow GmbH, Hauptstr. 1, 10115 Berlin" in text
    pixels = re.findall(r'src="(http://testserver/e/o/[^"]+)"', html)
    links = re.findall(r'href="(http://testserver/e/c/[^"]+)"', html)
    assert len(pixels) == 1
    assert len(links) == 1
    assert send.token in links[0].replace("&amp;", "&")
    assert lead.email_sends.get() == send


def test_the_pixel_and_the_link_each_record_one_event(smtp_server, flow, client):
    lead = _signed_up(email="ada@example.com", first_name="Ada")
    html, _text = _parts(smtp_server.received[0].message)
    pixel = _first(r'src="(http://testserver/e/o/[^"]+)"', html)
    link = _first(r'href="(http://testserver/e/c/[^"]+)"', html).replace("&amp;", "&")
    # Read a minute after it was sent: a person, not a prefetch.
    EmailSend.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=1))

    for _ in range(2):
        response = client.get(_local(pixel), HTTP_USER_AGENT=BROWSER)
        assert (response.status_code, response["Content-Type"]) == (200, "image/gif")
    for _ in range(2):
        response = client.get(_local(link), HTTP_USER_AGENT=BROWSER)
        assert (response.status_code, response["Location"]) == (
            302,
            "https://example.com/guide?a=1&b=2",
        )
    drain()

    opened = Event.objects.get(type="email.opened")
    clicked = Event.objects.get(type="email.clicked")
    assert (opened.lead_id, opened.name, opened.source) == (lead.pk, "Welcome", "email")
    assert "machine" not in opened.properties
    assert clicked.properties["url"] == "https://example.com/guide?a=1&b=2"
    assert flow_email_stats(flow=flow) == {
        "send": {
            "sent": 1,
            "delivered": 0,
            "opened": 1,
            "clicked": 1,
            "bounced": 0,
            "unsubscribed": 0,
            "held": 0,
            "skipped": 0,
            "text": "1 sent · 0 delivered · 1 opened · 1 clicked · 0 bounced · 0 unsubscribed",
        }
    }


def test_the_providers_report_of_the_same_open_is_the_same_event(smtp_server, flow, client):
    _signed_up(email="ada@example.com")
    send = EmailSend.objects.get()
    EmailSend.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=1))
    html, _text = _parts(smtp_server.received[0].message)
    pixel = _first(r'src="(http://testserver/e/o/[^"]+)"', html)
    client.get(_local(pixel), HTTP_USER_AGENT=BROWSER)

    anymail_tracking_received(
        sender=None,
        event=AnymailTrackingEvent(
            event_type="opened",
            message_id=send.message_id,
            recipient="ada@example.com",
            timestamp=timezone.now(),
            event_id="provider-open-1",
            user_agent=BROWSER,
        ),
        esp_name="Postmark",
    )

    assert Event.objects.filter(type="email.opened").count() == 1


def test_a_forged_click_goes_nowhere(smtp_server, flow, client):
    _signed_up(email="ada@example.com")
    html, _text = _parts(smtp_server.received[0].message)
    link = _first(r'href="(http://testserver/e/c/[^"]+)"', html).replace("&amp;", "&")
    forged = re.sub(r"u=[^&]+", "u=https%3A%2F%2Fevil.example%2F", link)

    assert client.get(_local(forged)).status_code == 404
    assert not Event.objects.filter(type="email.clicked").exists()


def test_a_prefetch_open_is_flagged_and_not_scored(smtp_server, template, client):
    published(
        "Onboarding",
        graph(
            ("t", "app.event", {"event": "Signed up"}),
            ("send", "email.send", {"template": template.pk}),
        ),
    )
    published(
        "Engagement",
        graph(
            ("t", "email.activity", {"activity": "opened"}),
            ("s", "score.adjust", {"points": 5, "category": "engagement", "reason": "opened"}),
        ),
    )
    lead = _signed_up(email="ada@example.com")
    html, _text = _parts(smtp_server.received[0].message)
    pixel = _first(r'src="(http://testserver/e/o/[^"]+)"', html)

    client.get(_local(pixel), HTTP_USER_AGENT=BROWSER)  # the second it arrived
    EmailSend.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=1))
    client.get(_local(pixel), HTTP_USER_AGENT="Mozilla/5.0 (via ggpht.com GoogleImageProxy)")
    drain()

    opens = list(Event.objects.filter(type="email.opened").values_list("properties", flat=True))
    assert sorted(p["machine"] for p in opens) == ["prefetch"]  # the proxy's is the same key
    lead.refresh_from_db()
    assert lead.score == 0
    assert EmailSend.objects.get().opened_at is None

    client.get(_local(pixel), HTTP_USER_AGENT=BROWSER)
    drain()
    lead.refresh_from_db()
    assert lead.score == 5
    assert Event.objects.filter(type="email.opened").count() == 2


def test_an_unsubscribed_lead_is_skipped_and_the_flow_goes_on(smtp_server, template):
    published(
        "Onboarding",
        graph(
            ("t", "app.event", {"event": "Signed up"}),
            ("send", "email.send", {"template": template.pk}),
            ("tag", "tag.add", {"tag": "onboarded"}),
        ),
    )
    lead = LeadFactory.create(
        email="ada@example.com", consent_state=ConsentState.CONFIRMED, unsubscribed=True
    )
    EventFactory.create(lead=lead, name="Signed up")
    drain()

    assert smtp_server.received == []
    step = StepRun.objects.get(node_id="send")
    assert (step.status, step.output["skipped"]) == ("completed", "skipped: unsubscribed")
    assert StepRun.objects.get(node_id="tag").status == "completed"
    assert EmailSend.objects.get().status == SendStatus.SKIPPED


def test_the_unsubscribe_link_works_without_login_and_the_next_send_is_skipped(
    smtp_server, flow, template, client
):
    published(
        "Newsletter",
        graph(
            ("t", "app.event", {"event": "Read a post"}),
            ("news", "email.send", {"template": template.pk}),
        ),
    )
    lead = _signed_up(email="ada@example.com")
    link = smtp_server.received[0].message["List-Unsubscribe"].strip().strip("<>")

    assert client.get(_local(link)).status_code == 200  # a page with one button
    lead.refresh_from_db()
    assert lead.unsubscribed is False
    # The one-click POST a mail provider makes (RFC 8058), with no session.
    response = client.post(_local(link), {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    drain()
    lead.refresh_from_db()
    assert lead.unsubscribed is True
    assert flow_email_stats(flow=flow)["send"]["unsubscribed"] == 1

    EventFactory.create(lead=lead, name="Read a post")
    drain()

    assert len(smtp_server.received) == 1
    step = StepRun.objects.get(node_id="news")
    assert step.output["skipped"] == "skipped: unsubscribed"
    assert EmailSend.objects.get(node_id="news").status == SendStatus.SKIPPED

"""Provider webhooks through django-anymail, with each provider's payload format."""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from leads.models import Event, Lead
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

SECRET = "hook:s3cret"
MAILGUN_KEY = "mailgun-signing-key"


@pytest.fixture(autouse=True)
def anymail_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}


@pytest.fixture
def lead():
    return LeadFactory.create(email="pat@example.com")


@pytest.fixture
def hook(client, django_capture_on_commit_callbacks):
    def post(esp, payload, *, auth=SECRET):
        headers = {}
        if auth:
            headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                f"/anymail/{esp}/tracking/",
                json.dumps(payload),
                content_type="application/json",
                **headers,
            )

    return post


def email_events():
    return list(
        Event.objects.filter(type__startswith="email.")
        .order_by("type")
        .values_list("type", "source", "lead__email")
    )


def test_sendgrid_open_and_click(hook, lead):
    payload = [
        {
            "email": "Pat@example.com",
            "timestamp": 1767225600,
            "event": "open",
            "sg_event_id": "sg-open-1",
            "sg_message_id": "msg-1",
        },
        {
            "email": "pat@example.com",
            "timestamp": 1767225660,
            "event": "click",
            "url": "https://www.example.com/pricing",
            "sg_event_id": "sg-click-1",
            "sg_message_id": "msg-1",
        },
        {
            "email": "pat@example.com",
            "timestamp": 1767225600,
            "event": "processed",
            "sg_event_id": "p",
        },
    ]
    assert hook("sendgrid", payload).status_code == 200
    assert hook("sendgrid", payload).status_code == 200  # the provider retries
    assert email_events() == [
        ("email.clicked", "email:sendgrid", "pat@example.com"),
        ("email.opened", "email:sendgrid", "pat@example.com"),
    ]
    click = Event.objects.get(type="email.clicked")
    assert click.properties["url"] == "https://www.example.com/pricing"
    assert click.occurred_at.timestamp() == 1767225660
    lead.refresh_from_db()
    assert lead.last_activity_at == click.occurred_at


def test_webhook_without_basic_auth_is_refused(hook, lead):
    response = hook(
        "sendgrid", [{"email": "pat@example.com", "event": "open", "sg_event_id": "x"}], auth=None
    )
    assert response.status_code in (400, 401, 403)
    assert hook(
        "sendgrid", [{"email": "pat@example.com", "event": "open"}], auth="hook:wrong"
    ).status_code in (400, 401, 403)
    assert email_events() == []


def test_mailgun_signed_bounce(hook, lead):
    timestamp = str(int(time.time()))
    token = "a" * 50
    signature = hmac.new(
        MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    payload: dict[str, Any] = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "event": "failed",
            "severity": "permanent",
            "timestamp": 1767225600.5,
            "id": "mg-1",
            "recipient": "pat@example.com",
            "message": {"headers": {"message-id": "m@mg"}},
            "delivery-status": {"code": 550, "message": "No such user"},
        },
    }
    assert hook("mailgun", payload).status_code == 200
    assert email_events() == [("email.bounced", "email:mailgun", "pat@example.com")]
    payload["signature"]["signature"] = "0" * 64
    assert hook("mailgun", payload).status_code == 400


def test_postmark_spam_complaint_unsubscribes(hook, lead):
    payload = {
        "RecordType": "SpamComplaint",
        "MessageID": "pm-1",
        "Email": "pat@example.com",
        "BouncedAt": "2026-01-01T10:00:00Z",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Tag": "newsletter",
    }
    assert hook("postmark", payload).status_code == 200
    assert email_events() == [("email.complained", "email:postmark", "pat@example.com")]
    lead.refresh_from_db()
    assert lead.unsubscribed is True


def test_brevo_delivered_and_unknown_recipient_becomes_a_lead(hook, lead):
    payload = {
        "event": "delivered",
        "email": "stranger@example.com",
        "id": 1,
        "message-id": "<b-1@brevo>",
        "ts_epoch": 1767225600000,
        "tag": "welcome",
    }
    assert hook("brevo", payload).status_code == 200
    assert hook("brevo", payload).status_code == 200
    assert email_events() == [("email.delivered", "email:brevo", "stranger@example.com")]
    assert Lead.objects.filter(email="stranger@example.com").exists()
    assert Event.objects.get(type="email.delivered").name == "welcome"

"""Who is suppressed, from the real inputs: the unsubscribe link, a provider's
hard bounce and spam complaint, a withdrawal through the API. Each ends in the
one rule (``marketing_block_reason``) saying no, with or without double opt-in;
a soft bounce does not."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from django.test import Client

from emails.links import unsubscribe_url
from emails.rules import marketing_block_reason
from leads.models import ConsentState, Lead
from tests.factories import LeadFactory
from tests.flows.helpers import drain

pytestmark = pytest.mark.django_db

SECRET = "hook:s3cret"
MAILGUN_KEY = "mailgun-signing-key"


@pytest.fixture(autouse=True)
def anymail_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}
    settings.SITE_URL = "http://testserver"


def _reasons(lead: Lead) -> tuple[str | None, str | None]:
    lead.refresh_from_db()
    return (
        marketing_block_reason(lead=lead, require_double_opt_in=False),
        marketing_block_reason(lead=lead, require_double_opt_in=True),
    )


def _webhook(client, django_capture_on_commit_callbacks, esp, payload):
    auth = "Basic " + base64.b64encode(SECRET.encode()).decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/anymail/{esp}/tracking/",
            json.dumps(payload),
            content_type="application/json",
            HTTP_AUTHORIZATION=auth,
        )
    assert response.status_code == 200
    drain()


def _mailgun_failure(recipient: str, severity: str, event_id: str) -> dict:
    timestamp = str(int(time.time()))
    token = event_id * 50
    signature = hmac.new(
        MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "event": "failed",
            "severity": severity,
            "timestamp": 1767225600.5,
            "id": event_id,
            "recipient": recipient,
            "message": {"headers": {"message-id": f"{event_id}@mg"}},
            "delivery-status": {"code": 550, "message": "No such user"},
        },
    }


def test_a_confirmed_lead_may_receive():
    lead = LeadFactory.create(consent_state=ConsentState.CONFIRMED)

    assert _reasons(lead) == (None, None)


def test_the_unsubscribe_link(django_capture_on_commit_callbacks):
    lead = LeadFactory.create(consent_state=ConsentState.CONFIRMED)
    path = unsubscribe_url(lead=lead).removeprefix("http://testserver")

    with django_capture_on_commit_callbacks(execute=True):
        Client().post(path)
    drain()

    assert _reasons(lead) == ("unsubscribed", "unsubscribed")


def test_a_hard_bounce_but_not_a_soft_one(client, django_capture_on_commit_callbacks):
    hard = LeadFactory.create(email="gone@example.com", consent_state=ConsentState.CONFIRMED)
    soft = LeadFactory.create(email="full@example.com", consent_state=ConsentState.CONFIRMED)

    _webhook(
        client,
        django_capture_on_commit_callbacks,
        "mailgun",
        _mailgun_failure("gone@example.com", "permanent", "a"),
    )
    _webhook(
        client,
        django_capture_on_commit_callbacks,
        "mailgun",
        _mailgun_failure("full@example.com", "temporary", "b"),
    )

    assert _reasons(hard) == ("the address bounced", "the address bounced")
    assert _reasons(soft) == (None, None)


def test_a_spam_complaint(client, django_capture_on_commit_callbacks):
    lead = LeadFactory.create(email="angry@example.com", consent_state=ConsentState.CONFIRMED)

    _webhook(
        client,
        django_capture_on_commit_callbacks,
        "postmark",
        {
            "RecordType": "SpamComplaint",
            "MessageID": "pm-1",
            "Email": "angry@example.com",
            "BouncedAt": "2026-01-01T10:00:00Z",
            "ID": 42,
            "Type": "SpamComplaint",
            "TypeCode": 512,
        },
    )

    assert _reasons(lead) == ("unsubscribed", "unsubscribed")
    assert lead.consent_state == ConsentState.WITHDRAWN


def test_a_withdrawal_through_the_api(marketer_api):
    lead = LeadFactory.create(consent_state=ConsentState.CONFIRMED)

    response = marketer_api.post(
        f"/api/v1/leads/{lead.pk}/consent/", {"state": "withdrawn"}, format="json"
    )

    assert response.status_code == 200
    assert _reasons(lead) == ("consent withdrawn", "consent withdrawn")

"""Double opt-in: a lead that becomes pending gets one confirmation email (after
the commit, from a task), in its language; the link's page asks, its button
confirms with the evidence; old, altered or outdated links change nothing."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from emails.consent import confirmations_sweep, consent_confirmation_send
from emails.models import EmailSettings, Sender
from leads.models import ConsentRecord, ConsentSource, ConsentState, Event
from leads.services.consent import consent_set
from tests.factories import LeadFactory
from tests.flows.helpers import drain

pytestmark = pytest.mark.django_db

WORDING = (
    "Yes, I want to receive marketing emails from Acme News. "
    "I can unsubscribe at any time with the link in every email."
)


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = "https://leads.example.com"
    Sender.objects.create(name="Acme News", address="news@acme.example")


@pytest.fixture
def anonymous():
    return Client(enforce_csrf_checks=True)


def _subscribe(lead, **kwargs):
    record = consent_set(
        lead=lead,
        state=ConsentState.PENDING,
        source=ConsentSource.FORM,
        source_detail="Newsletter form",
        **kwargs,
    )
    drain()
    return record


def _link(message) -> str:
    found = re.search(r"https://leads\.example\.com(/email/confirm/[^/\s]+/)", message.body)
    assert found, message.body
    return found.group(1)


def test_a_new_subscriber_gets_one_confirmation_email(mailoutbox):
    lead = LeadFactory.create(email="pat@example.com", first_name="Pat")

    record = _subscribe(lead)

    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert (message.to, message.subject, message.from_email) == (
        ["pat@example.com"],
        "Please confirm your subscription",
        "Acme News <news@acme.example>",
    )
    assert message.extra_headers["Message-ID"] == f"<consent-{record.pk}@leads.example.com>"
    assert message.body.startswith("Hello Pat,\n")
    html = message.alternatives[0][0]
    assert f'href="https://leads.example.com{_link(message)}"' in html
    record.refresh_from_db()
    assert record.confirmation_sent_at is not None
    # Again, by a resent task or a sweep: nothing more.
    assert consent_confirmation_send(record_id=record.pk) is False
    assert confirmations_sweep(
        now=timezone.now(), before=None, waited=timezone.now(), limit=100
    ) == (0, True)
    drain()
    assert len(mailoutbox) == 1


def test_the_email_is_in_the_leads_language(mailoutbox):
    lead = LeadFactory.create(language="de")

    _subscribe(lead)

    assert '<html lang="de">' in mailoutbox[0].alternatives[0][0]


def test_no_email_without_double_opt_in_or_when_confirmed(mailoutbox):
    EmailSettings.objects.create(require_double_opt_in=False)
    _subscribe(LeadFactory.create())
    EmailSettings.objects.update(require_double_opt_in=True)
    _subscribe(LeadFactory.create(consent_state=ConsentState.CONFIRMED))

    assert mailoutbox == []


def test_a_second_sign_up_mails_again_only_after_a_day(mailoutbox):
    lead = LeadFactory.create()
    _subscribe(lead)

    assert _subscribe(lead) is None
    assert len(mailoutbox) == 1
    with time_machine.travel(timezone.now() + dt.timedelta(days=1, minutes=1)):
        assert _subscribe(lead) is not None
    assert len(mailoutbox) == 2
    assert ConsentRecord.objects.filter(lead=lead, state="pending").count() == 2


def test_the_sweeper_sends_what_a_lost_message_did_not(mailoutbox):
    lead = LeadFactory.create()
    # Recorded, but the worker's message never arrived (no drain).
    record = consent_set(lead=lead, state=ConsentState.PENDING, source=ConsentSource.API)
    assert record is not None
    Event.objects.filter(type="consent.changed").update(processed_at=timezone.now())

    later = timezone.now() + dt.timedelta(minutes=1)
    assert confirmations_sweep(now=later, before=None, waited=later, limit=100) == (1, True)

    assert [m.to for m in mailoutbox] == [[lead.email]]
    record.refresh_from_db()
    assert record.confirmation_sent_at is not None


def test_a_claim_whose_worker_died_is_taken_again_later(mailoutbox):
    lead = LeadFactory.create()
    record = consent_set(lead=lead, state=ConsentState.PENDING, source=ConsentSource.API)
    assert record is not None
    ConsentRecord.objects.filter(pk=record.pk).update(confirmation_claimed_at=timezone.now())

    assert consent_confirmation_send(record_id=record.pk) is False
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=11)):
        assert consent_confirmation_send(record_id=record.pk) is True
    assert len(mailoutbox) == 1


def test_the_link_asks_then_confirms_with_the_evidence(mailoutbox, anonymous):
    lead = LeadFactory.create(email="pat@example.com")
    _subscribe(lead)
    path = _link(mailoutbox[0])

    page = anonymous.get(path)
    lead.refresh_from_db()
    assert lead.consent_state == ConsentState.PENDING
    assert page.status_code == 200
    assert WORDING in page.content.decode()
    assert '<button type="submit">Confirm</button>' in page.content.decode()

    done = anonymous.post(path, REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="Firefox/140")

    assert done.status_code == 200
    assert "Thank you, you are subscribed" in done.content.decode()
    lead.refresh_from_db()
    assert lead.consent_state == ConsentState.CONFIRMED
    record = ConsentRecord.objects.filter(lead=lead).latest("id")
    assert (record.state, record.source, record.ip_address, record.user_agent, record.wording) == (
        "confirmed",
        "confirmation",
        "198.51.100.7",
        "Firefox/140",
        WORDING,
    )
    again = anonymous.post(path)
    assert "You are subscribed already" in again.content.decode()
    assert ConsentRecord.objects.filter(lead=lead, state="confirmed").count() == 1


def test_the_page_is_in_the_leads_language(mailoutbox, anonymous):
    lead = LeadFactory.create(language="de")
    _subscribe(lead)

    page = anonymous.get(_link(mailoutbox[0]))

    assert '<html lang="de">' in page.content.decode()


def test_confirming_lifts_an_earlier_unsubscribe(mailoutbox, anonymous):
    lead = LeadFactory.create(unsubscribed=True, consent_state=ConsentState.WITHDRAWN)
    _subscribe(lead)

    anonymous.post(_link(mailoutbox[0]))
    drain()

    lead.refresh_from_db()
    assert (lead.consent_state, lead.unsubscribed) == (ConsentState.CONFIRMED, False)


def test_an_expired_link_changes_nothing(mailoutbox, anonymous):
    lead = LeadFactory.create()
    _subscribe(lead)
    path = _link(mailoutbox[0])

    with time_machine.travel(timezone.now() + dt.timedelta(days=7, minutes=1)):
        response = anonymous.post(path)

    assert response.status_code == 410
    assert "This link has expired" in response.content.decode()
    lead.refresh_from_db()
    assert lead.consent_state == ConsentState.PENDING


def test_an_altered_link_changes_nothing(mailoutbox, anonymous):
    lead = LeadFactory.create()
    _subscribe(lead)
    path = _link(mailoutbox[0])

    response = anonymous.post(path[:-4] + "xyz/")

    assert response.status_code == 404
    assert "This link does not work" in response.content.decode()
    lead.refresh_from_db()
    assert lead.consent_state == ConsentState.PENDING


def test_a_link_after_a_withdrawal_changes_nothing(mailoutbox, anonymous):
    lead = LeadFactory.create()
    _subscribe(lead)
    consent_set(lead=lead, state=ConsentState.WITHDRAWN, source=ConsentSource.API)

    response = anonymous.post(_link(mailoutbox[0]))

    assert response.status_code == 200
    assert "This link is no longer valid" in response.content.decode()
    lead.refresh_from_db()
    assert lead.consent_state == ConsentState.WITHDRAWN

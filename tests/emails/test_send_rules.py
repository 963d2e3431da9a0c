"""What holds a send back at send time (the postal address, the send window in
the lead's time zone, the lead's frequency cap, the instance's rate) and that a
held send waits, it is not dropped; and the SMTP rule that keeps a send from
going out twice."""

from __future__ import annotations

import datetime as dt
import smtplib

import pytest
import time_machine
from django.core.cache import cache
from django.core.mail import get_connection

from emails.models import EmailSend, SendStatus
from emails.rules import send_window_opens
from emails.sending import (
    _smtp_send,
    email_message_build,
    email_send_queue,
    email_sends_claim,
    email_sends_drain,
    send_error_text,
)
from leads.models import ConsentState
from tests.factories import EmailSettingsFactory, EmailTemplateFactory, LeadFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _fresh_rate():
    cache.clear()


def _queued(template, **lead_fields):
    lead = LeadFactory.create(consent_state=ConsentState.CONFIRMED, **lead_fields)
    return email_send_queue(key=f"test:{lead.pk}", lead=lead, template=template)


@time_machine.travel(NOW, tick=False)
def test_marketing_email_without_a_postal_address_is_held_with_the_reason(smtp_server):
    EmailSettingsFactory.create(postal_address="")
    send = _queued(EmailTemplateFactory.create())

    assert email_sends_claim() == ([], True)

    send.refresh_from_db()
    assert send.status == SendStatus.HELD
    assert "postal address" in send.reason
    assert send.next_attempt_at == NOW + dt.timedelta(minutes=10)
    assert smtp_server.received == []


@pytest.mark.parametrize(
    ("now", "zone", "opens"),
    [
        # 08:00 in Berlin (UTC+1 in December): the window opens at 09:00 there.
        (dt.datetime(2026, 12, 7, 7, 0, tzinfo=dt.UTC), "Europe/Berlin", "2026-12-07 08:00"),
        (dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC), "Europe/Berlin", None),
        # 17:30 in New York: tomorrow 09:00 there, 14:00 UTC.
        (dt.datetime(2026, 12, 7, 22, 30, tzinfo=dt.UTC), "America/New_York", "2026-12-08 14:00"),
        # No zone on the lead: the site's (UTC in the tests).
        (dt.datetime(2026, 12, 7, 18, 0, tzinfo=dt.UTC), "", "2026-12-08 09:00"),
    ],
)
def test_the_send_window_is_in_the_leads_time_zone(now, zone, opens):
    got = send_window_opens(now=now, time_zone=zone, start=dt.time(9), end=dt.time(17))

    assert (f"{got:%Y-%m-%d %H:%M}" if got else None) == opens


@time_machine.travel(NOW, tick=False)
def test_a_send_outside_the_window_waits_and_goes_when_it_opens(smtp_server):
    EmailSettingsFactory.create(send_window_start=dt.time(14), send_window_end=dt.time(18))
    send = _queued(EmailTemplateFactory.create(), time_zone="Europe/Berlin")

    email_sends_drain()
    send.refresh_from_db()
    assert (send.status, send.next_attempt_at) == (
        SendStatus.HELD,
        dt.datetime(2026, 12, 7, 13, 0, tzinfo=dt.UTC),
    )

    with time_machine.travel(dt.datetime(2026, 12, 7, 13, 0, 1, tzinfo=dt.UTC), tick=False):
        email_sends_drain()
    send.refresh_from_db()
    assert send.status == SendStatus.SENT
    assert len(smtp_server.received) == 1


@time_machine.travel(NOW, tick=False)
def test_the_frequency_cap_holds_the_third_email_of_the_day(smtp_server):
    EmailSettingsFactory.create(frequency_cap=2, frequency_period="day")
    lead = LeadFactory.create(consent_state=ConsentState.CONFIRMED)
    template = EmailTemplateFactory.create()
    sends = [email_send_queue(key=f"test:{n}", lead=lead, template=template) for n in range(3)]

    email_sends_drain()

    states = [EmailSend.objects.get(pk=send.pk) for send in sends]
    assert [s.status for s in states] == [SendStatus.SENT, SendStatus.SENT, SendStatus.HELD]
    assert states[2].next_attempt_at == NOW + dt.timedelta(days=1)
    assert len(smtp_server.received) == 2


@time_machine.travel(NOW, tick=False)
def test_over_the_rate_sends_wait_for_the_next_minute(smtp_server):
    EmailSettingsFactory.create(sends_per_minute=2)
    template = EmailTemplateFactory.create()
    sends = [_queued(template) for _ in range(3)]

    email_sends_drain()

    statuses = sorted(EmailSend.objects.get(pk=s.pk).status for s in sends)
    assert statuses == [SendStatus.HELD, SendStatus.SENT, SendStatus.SENT]
    held = EmailSend.objects.get(status=SendStatus.HELD)
    assert held.next_attempt_at is not None
    assert held.next_attempt_at >= NOW + dt.timedelta(minutes=1)
    assert len(smtp_server.received) == 2


def test_a_sender_that_dies_before_its_record_leaves_nothing_at_the_server(smtp_server):
    EmailSettingsFactory.create()
    _queued(EmailTemplateFactory.create())
    [claimed], _found = email_sends_claim()
    message = email_message_build(claimed=claimed)
    connection = get_connection()

    def dies() -> None:
        raise SystemExit("killed between the message and its record")

    with pytest.raises(SystemExit):
        _smtp_send(connection, message, before_accept=dies)
    connection.close()

    assert smtp_server.received == []


def test_a_claim_left_sending_is_sent_again_once_it_expired(smtp_server, settings):
    settings.EMAIL_SEND_CLAIM_SECONDS = 60
    EmailSettingsFactory.create()
    send = _queued(EmailTemplateFactory.create())
    email_sends_claim()  # and the sender dies: no message, the row says "sending"

    assert email_sends_drain() == []  # the claim is fresh: someone may be sending
    with time_machine.travel(dt.timedelta(seconds=61)):
        assert email_sends_drain() == [SendStatus.SENT]

    send.refresh_from_db()
    assert (send.status, send.attempts) == (SendStatus.SENT, 2)
    assert len(smtp_server.received) == 1


def test_a_server_refusal_after_the_record_is_not_counted_sent(smtp_server):
    EmailSettingsFactory.create()
    send = _queued(EmailTemplateFactory.create())
    smtp_server.mailbox.refuse = True

    assert email_sends_drain() == [SendStatus.FAILED]

    send.refresh_from_db()
    assert (send.status, send.sent_at) == (SendStatus.FAILED, None)
    assert send.last_error == "550 Message refused"


def test_an_smtp_error_is_shown_in_the_servers_words():
    refused = smtplib.SMTPRecipientsRefused(
        {"alan@turing.example": (550, b"5.1.1 <alan@turing.example>: User unknown")}
    )
    assert send_error_text(refused) == "550 5.1.1 <alan@turing.example>: User unknown"
    busy = smtplib.SMTPDataError(421, b"Service not available")
    assert send_error_text(busy) == "421 Service not available"
    assert send_error_text(TimeoutError()) == "TimeoutError"

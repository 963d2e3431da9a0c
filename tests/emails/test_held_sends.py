"""The held sends page: held sends with the rule in words and when they are tried
again, failed ones with their error, filtered by status and paged, and what an
admin may do about each (send now past the send window, retry, cancel)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.cache import cache

from emails.models import EmailSend, HoldReason, SendStatus
from emails.rules import CANCEL, RETRY, SEND_NOW, send_actions
from emails.sending import email_sends_drain
from leads.models import ConsentState
from tests.factories import (
    EmailSendFactory,
    EmailSettingsFactory,
    EmailTemplateFactory,
    LeadFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _fresh_rate():
    cache.clear()


def _send(status: str, **fields):
    lead = LeadFactory.create(consent_state=ConsentState.CONFIRMED, **fields.pop("lead", {}))
    return EmailSendFactory.create(lead=lead, status=status, **fields)


def _window_held(**fields):
    return _send(
        SendStatus.HELD,
        held_for=HoldReason.SEND_WINDOW,
        reason="Held until the send window opens in the lead's time zone.",
        next_attempt_at=NOW + dt.timedelta(hours=8),
        **fields,
    )


@pytest.mark.parametrize(
    ("status", "held_for", "actions"),
    [
        (SendStatus.FAILED, "", (RETRY, CANCEL)),
        (SendStatus.HELD, HoldReason.SEND_WINDOW, (SEND_NOW, CANCEL)),
        (SendStatus.HELD, HoldReason.FREQUENCY_CAP, (CANCEL,)),
        (SendStatus.HELD, HoldReason.RATE, (CANCEL,)),
        (SendStatus.HELD, HoldReason.POSTAL_ADDRESS, (CANCEL,)),
        (SendStatus.SENDING, "", ()),
        (SendStatus.SENT, "", ()),
    ],
)
def test_what_an_admin_may_do_with_a_send(status, held_for, actions):
    assert send_actions(status=status, held_for=held_for) == actions


def test_the_page_lists_held_sends_with_the_rule_and_failed_ones_with_their_error(
    client, admin_user
):
    EmailSettingsFactory.create()
    template = EmailTemplateFactory.create(name="Welcome")
    _window_held(template=template, lead={"first_name": "Ada", "last_name": "Lovelace"})
    _send(
        SendStatus.HELD,
        template=template,
        held_for=HoldReason.FREQUENCY_CAP,
        next_attempt_at=NOW + dt.timedelta(days=2),
    )
    failed = _send(
        SendStatus.FAILED,
        template=template,
        attempts=5,
        last_error="(421, b'Service not available')",
        next_attempt_at=None,
    )
    _send(SendStatus.SENT, template=template)
    client.force_login(admin_user)

    html = client.get("/emails/held/").content.decode()

    assert html.count('data-status="held"') == 2
    assert html.count('data-status="failed"') == 1
    assert "Ada Lovelace" in html
    assert "waiting for the send window in the lead&#x27;s time zone" in html
    assert "the lead reached the limit of marketing emails" in html
    assert "after 5 tries" in html
    assert "(421, b&#x27;Service not available&#x27;)" in html
    assert f'action="/emails/held/{failed.pk}/retry/"' in html
    # The cap cannot be overridden here: the page says so, and offers no "send now".
    assert "cannot be overridden here" in html
    assert html.count("/send-now/") == 1


def test_the_page_filters_by_status_and_counts_each(client, admin_user):
    EmailSettingsFactory.create()
    held = _window_held()
    failed = _send(SendStatus.FAILED, last_error="refused")
    client.force_login(admin_user)

    only_failed = client.get("/emails/held/?status=failed").content.decode()
    only_held = client.get("/emails/held/?status=held").content.decode()

    assert f'id="send-{failed.pk}"' in only_failed
    assert f'id="send-{held.pk}"' not in only_failed
    assert f'id="send-{held.pk}"' in only_held
    assert f'id="send-{failed.pk}"' not in only_held
    assert 'All <span class="badge text-bg-light border">2</span>' in only_held


def test_the_page_is_paged_in_few_queries(client, admin_user, django_assert_max_num_queries):
    EmailSettingsFactory.create()
    template = EmailTemplateFactory.create()
    for n in range(55):
        _send(SendStatus.FAILED if n % 2 else SendStatus.HELD, template=template)
    client.force_login(admin_user)

    with django_assert_max_num_queries(9):
        first = client.get("/emails/held/")
    second = client.get("/emails/held/?page=2")

    assert first.content.decode().count('id="send-') == 50
    assert second.content.decode().count('id="send-') == 5
    assert "Page 1 of 2" in first.content.decode()


def test_only_admins_see_the_page(client):
    client.force_login(UserFactory.create(role="marketer"))

    assert client.get("/emails/held/").status_code == 403


@time_machine.travel(NOW, tick=False)
def test_send_now_sends_a_send_held_for_the_window_outside_it(client, admin_user, smtp_server):
    # Given a window of 09:00 to 10:00 in Berlin, and it is 13:00 there.
    EmailSettingsFactory.create(send_window_start=dt.time(9), send_window_end=dt.time(10))
    send = _window_held(lead={"time_zone": "Europe/Berlin"})
    client.force_login(admin_user)

    response = client.post(f"/emails/held/{send.pk}/send-now/", {"status": "held"})
    email_sends_drain()

    assert response.status_code == 302
    assert response["Location"] == "/emails/held/?status=held"
    send.refresh_from_db()
    assert (send.status, send.send_window_waived) == (SendStatus.SENT, True)
    assert len(smtp_server.received) == 1


@time_machine.travel(NOW, tick=False)
def test_send_now_is_refused_for_a_send_held_by_the_frequency_cap(client, admin_user):
    EmailSettingsFactory.create(frequency_cap=1)
    send = _send(SendStatus.HELD, held_for=HoldReason.FREQUENCY_CAP)
    client.force_login(admin_user)

    response = client.post(f"/emails/held/{send.pk}/send-now/", follow=True)

    send.refresh_from_db()
    assert send.status == SendStatus.HELD
    html = response.content.decode()
    assert "Nothing was changed: the email&#x27;s status is now “Held”." in html


@time_machine.travel(NOW, tick=False)
def test_retry_queues_a_failed_send_with_its_tries_counted_afresh(client, admin_user, smtp_server):
    EmailSettingsFactory.create()
    send = _send(SendStatus.FAILED, attempts=5, last_error="timed out", next_attempt_at=None)
    client.force_login(admin_user)

    client.post(f"/emails/held/{send.pk}/retry/")
    send.refresh_from_db()
    assert (send.status, send.attempts, send.next_attempt_at) == (SendStatus.QUEUED, 0, NOW)

    email_sends_drain()
    send.refresh_from_db()
    assert (send.status, send.attempts) == (SendStatus.SENT, 1)
    assert len(smtp_server.received) == 1


@time_machine.travel(NOW, tick=False)
def test_a_retried_send_to_a_lead_who_unsubscribed_meanwhile_is_skipped(
    client, admin_user, smtp_server
):
    EmailSettingsFactory.create()
    send = _send(SendStatus.FAILED, lead={"unsubscribed": True}, next_attempt_at=None)
    client.force_login(admin_user)

    client.post(f"/emails/held/{send.pk}/retry/")
    email_sends_drain()

    send.refresh_from_db()
    assert (send.status, send.reason) == (SendStatus.SKIPPED, "unsubscribed")
    assert smtp_server.received == []


def test_cancel_skips_the_send_with_who_cancelled_it(client, admin_user):
    EmailSettingsFactory.create()
    send = _window_held()
    client.force_login(admin_user)

    client.post(f"/emails/held/{send.pk}/cancel/")

    send.refresh_from_db()
    assert (send.status, send.reason, send.held_for, send.next_attempt_at) == (
        SendStatus.SKIPPED,
        f"cancelled by {admin_user.username}",
        "",
        None,
    )
    assert EmailSend.objects.filter(status__in=["held", "failed"]).count() == 0


def test_a_send_claimed_meanwhile_is_not_cancelled(client, admin_user):
    EmailSettingsFactory.create()
    send = _send(SendStatus.SENDING, claimed_at=NOW)
    client.force_login(admin_user)

    response = client.post(f"/emails/held/{send.pk}/cancel/", follow=True)

    send.refresh_from_db()
    assert send.status == SendStatus.SENDING
    html = response.content.decode()
    assert "Nothing was changed: the email&#x27;s status is now “Sending”." in html


def test_the_hold_is_recorded_by_the_sender(smtp_server):
    EmailSettingsFactory.create(postal_address="")
    template = EmailTemplateFactory.create()
    send = _send(SendStatus.QUEUED, template=template)

    email_sends_drain()

    send.refresh_from_db()
    assert (send.status, send.held_for) == (SendStatus.HELD, HoldReason.POSTAL_ADDRESS)

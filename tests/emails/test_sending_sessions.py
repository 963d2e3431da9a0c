"""A drain over SMTP sends a batch side by side on several sessions, each message
up to its final ".", records them sent in one statement, then sends the dots;
parallel drains never claim the same send."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core.cache import cache
from django.core.mail import get_connection
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from emails import sending
from emails.models import EmailSend, SendStatus
from emails.sending import (
    _smtp_send_many,
    email_message_build,
    email_send_queue,
    email_sends_claim,
    email_sends_drain,
)
from leads.models import ConsentState
from tests.emails.smtp import Mailbox, SMTPServer
from tests.factories import (
    EmailSendFactory,
    EmailSettingsFactory,
    EmailTemplateFactory,
    LeadFactory,
)


@pytest.fixture(autouse=True)
def _fresh_rate():
    cache.clear()


def _queued(template, count: int) -> list[EmailSend]:
    leads = [
        LeadFactory.create(consent_state=ConsentState.CONFIRMED, email=f"lead{n}@example.com")
        for n in range(count)
    ]
    return [email_send_queue(key=f"test:{lead.pk}", lead=lead, template=template) for lead in leads]


def _sent_records(queries: list[dict[str, Any]]) -> int:
    return sum(
        1
        for query in queries
        if query["sql"].startswith('UPDATE "emails_emailsend" SET "status" = \'sent\'')
    )


@pytest.mark.django_db
def test_a_batch_goes_over_several_sessions_with_one_record_per_group(smtp_server, settings):
    # Given 15 sends and senders that keep 10 SMTP sessions.
    settings.EMAIL_SMTP_SESSIONS = 10
    EmailSettingsFactory.create()
    sends = _queued(EmailTemplateFactory.create(), 15)

    # When a drain sends them (one claim, a group of ten, then one of five).
    with CaptureQueriesContext(connection) as queries:
        outcomes = email_sends_drain()

    # Then each lead got one message, every send is recorded sent, and the
    # records took one statement per group.
    assert outcomes == [SendStatus.SENT] * 15
    received = sorted(rcpt for message in smtp_server.received for rcpt in message.rcpt_tos)
    assert received == sorted(f"lead{n}@example.com" for n in range(15))
    assert EmailSend.objects.filter(status=SendStatus.SENT, provider="smtp").count() == 15
    assert _sent_records(queries.captured_queries) == 2
    first = EmailSend.objects.get(pk=sends[0].pk)
    assert first.provider_message_id == first.message_id


@pytest.mark.django_db
def test_senders_killed_before_the_record_leave_every_session_unfinished(smtp_server):
    EmailSettingsFactory.create()
    _queued(EmailTemplateFactory.create(), 3)
    claimed, _found = email_sends_claim()
    sessions = [get_connection() for _ in claimed]
    outgoing = [
        (session, email_message_build(claimed=item))
        for session, item in zip(sessions, claimed, strict=True)
    ]

    def dies(ready: list[int]) -> set[int]:
        assert ready == [0, 1, 2]  # all three went over the wire up to their dots
        raise SystemExit("killed between the messages and their record")

    with pytest.raises(SystemExit):
        _smtp_send_many(outgoing, before_accept=dies)

    assert smtp_server.received == []


@pytest.mark.django_db
def test_a_message_whose_claim_was_taken_over_gets_no_final_dot(smtp_server):
    EmailSettingsFactory.create()
    _queued(EmailTemplateFactory.create(), 3)
    claimed, _found = email_sends_claim()
    outgoing = [(get_connection(), email_message_build(claimed=item)) for item in claimed]

    errors = _smtp_send_many(outgoing, before_accept=lambda ready: {0, 2})

    assert [type(error).__name__ if error else None for error in errors] == [
        None,
        "_ClaimLost",
        None,
    ]
    received = sorted(rcpt for message in smtp_server.received for rcpt in message.rcpt_tos)
    assert received == [claimed[0].send.to_email, claimed[2].send.to_email]


class RefusesOne(Mailbox):
    """Refuses, at its final ".", the message to one address."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if envelope.rcpt_tos == ["lead1@example.com"]:
            return "550 Mailbox unavailable"
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.django_db
def test_a_refusal_in_a_group_fails_that_send_only(settings):
    server = SMTPServer()
    server.mailbox = RefusesOne()
    server.controller.handler = server.mailbox
    with server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        settings.SITE_URL = "http://testserver"
        EmailSettingsFactory.create()
        sends = _queued(EmailTemplateFactory.create(), 3)

        outcomes = email_sends_drain()
        sending._connection_drop()

    assert outcomes == [SendStatus.SENT, SendStatus.FAILED, SendStatus.SENT]
    refused = EmailSend.objects.get(pk=sends[1].pk)
    assert (refused.status, refused.sent_at) == (SendStatus.FAILED, None)
    assert refused.last_error == "550 Mailbox unavailable"
    assert len(server.received) == 2


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks (SKIP LOCKED) are PostgreSQL's; SQLite has one writer at a time",
)
@pytest.mark.django_db(transaction=True)
def test_parallel_claimers_take_different_sends():
    # Given 30 due sends, the oldest 20 of which another claimer holds locked.
    # (Made by the factory: queueing would kick a drain at once here.)
    EmailSettingsFactory.create()
    template = EmailTemplateFactory.create()
    sends = [
        EmailSendFactory.create(
            template=template, lead=LeadFactory.create(consent_state=ConsentState.CONFIRMED)
        )
        for _ in range(30)
    ]
    held, release = threading.Event(), threading.Event()

    def other_claimer() -> None:
        try:
            with transaction.atomic():
                list(
                    EmailSend.objects.select_for_update().filter(
                        pk__in=[send.pk for send in sends[:20]]
                    )
                )
                held.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_claimer)
    thread.start()
    assert held.wait(10)

    # When a second claimer claims meanwhile.
    try:
        claimed, found = email_sends_claim()
    finally:
        release.set()
        thread.join()

    # Then it takes the other ten, without waiting for the first.
    assert found is True
    assert sorted(item.send.pk for item in claimed) == [send.pk for send in sends[20:]]

"""One email per lead when the worker dies mid-send: 2,000 leads do what
starts a flow whose step sends them an email through Django's SMTP backend to a
real SMTP server (aiosmtpd, in this process); the whole worker is killed with
SIGKILL while sends are in flight, a new one starts, and beat re-sends what the
dead one had taken. The server then holds one message per lead, never two;
only a kill in the instant between a group's record and its final dots can
lose that one group (at most ``EMAIL_SMTP_SESSIONS`` messages).

The rule that makes it so for SMTP (``emails.sending``): a send is recorded sent
after the message went over the wire and before the final "." asks the server
to accept it, so a sender killed before that record leaves an unfinished DATA
that the server drops, and the send is safely sent again."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from typing import Any

import pytest
from django.conf import settings

from emails.models import EmailSend, SendStatus
from leads.models import ConsentState, Event, Lead
from leads.services.events import events_record
from tests.emails.smtp import Mailbox, SMTPServer
from tests.factories import EmailSettingsFactory, EmailTemplateFactory
from tests.flows.helpers import graph, published
from tests.integration.conftest import wait_for
from tests.integration.test_worker_killed import (
    CeleryProcesses,
    _group_members,
    _unacked_messages,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(sys.platform != "linux", reason="reads process groups from /proc"),
]

LEADS = 2000
KILL_AFTER = 500


class SlowMailbox(Mailbox):
    """Takes a few milliseconds per recipient, as a real server does: the time a
    send spends between "sending" and "sent" is long enough for the kill to
    catch sends in the middle."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        await asyncio.sleep(0.004)
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def processes(transactional_db, tmp_path):
    from config.celery import app as celery_app

    celery_app.control.purge()
    _unacked_messages(forget=True)
    procs = CeleryProcesses(tmp_path)
    yield procs
    procs.stop_all()
    _unacked_messages(forget=True)
    celery_app.control.purge()


def test_worker_killed_mid_send_each_lead_receives_exactly_one_email(processes):
    server = SMTPServer()
    server.mailbox = SlowMailbox()
    server.controller.handler = server.mailbox
    with server:
        processes.env.update(
            {
                "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(server.port),
                "EMAIL_SEND_CLAIM_SECONDS": "5",
                "EVENT_SWEEP_AFTER_SECONDS": "10",
                "SITE_URL": "http://127.0.0.1:8108",
            }
        )
        # Given a flow that emails every lead who signs up, and 2,000 sign-ups.
        EmailSettingsFactory.create(sends_per_minute=100_000)
        template = EmailTemplateFactory.create(name="Welcome")
        published(
            "Onboarding",
            graph(
                ("t", "app.event", {"event": "Signed up"}),
                ("send", "email.send", {"template": template.pk}),
            ),
        )
        leads = Lead.objects.bulk_create(
            Lead(
                email=f"lead{n}@example.com",
                first_name=f"Lead{n}",
                consent_state=ConsentState.CONFIRMED,
            )
            for n in range(LEADS)
        )
        processes.worker()
        worker = processes.started[-1]
        processes.beat()
        for start in range(0, LEADS, 200):
            events_record(
                events=[
                    Event(
                        lead=lead,
                        type="track",
                        name="Signed up",
                        source="api",
                        idempotency_key=f"signup-{lead.pk}",
                        occurred_at=lead.created_at,
                        received_at=lead.created_at,
                    )
                    for lead in leads[start : start + 200]
                ]
            )

        # When the worker is killed while emails are going out, and a new one starts.
        def in_flight() -> bool:
            return (
                len(server.received) >= KILL_AFTER
                and EmailSend.objects.filter(status=SendStatus.SENDING).exists()
            )

        wait_for(in_flight, 180, f"{KILL_AFTER} emails received and more in flight")
        assert len(_group_members(worker.pid)) >= 3, "the main process and two pool children"
        processes.kill(worker)
        received_at_kill = len(server.received)
        sending_at_kill = EmailSend.objects.filter(status=SendStatus.SENDING).count()
        assert received_at_kill < LEADS, "the kill must come mid-send"

        processes.worker()
        try:
            wait_for(
                lambda: EmailSend.objects.filter(status=SendStatus.SENT).count() == LEADS,
                300,
                "every email to be sent",
            )
        except AssertionError as exc:
            states = Counter(EmailSend.objects.values_list("status", flat=True))
            raise AssertionError(f"{exc}: {dict(states)}\n{processes.log_tail()}") from None

        # A group's sends are recorded sent just before their final dots go: the
        # server may still be taking the last ones in.
        with contextlib.suppress(AssertionError):
            wait_for(lambda: len(server.received) >= LEADS, 30, "the last messages to arrive")

        # Then no lead received two emails, and every send says it went. A kill
        # in the instant between a group's record and its final dots loses that
        # group rather than sending any of it twice (ARCHITECTURE.md): at most
        # one group of EMAIL_SMTP_SESSIONS messages goes missing.
        received = Counter(rcpt for message in server.received for rcpt in message.rcpt_tos)
        doubled = {address: n for address, n in received.items() if n > 1}
        assert doubled == {}, f"{len(doubled)} leads got more than one email"
        expected = {lead.email for lead in leads}
        assert set(received) <= expected
        lost = expected - set(received)
        assert len(lost) <= settings.EMAIL_SMTP_SESSIONS, f"{len(lost)} leads got no email"
        assert len(server.received) == LEADS - len(lost)
        assert EmailSend.objects.count() == LEADS
        # What the dead worker had in flight was sent again by the new one.
        resent = EmailSend.objects.filter(attempts__gte=2).count()
        assert resent >= sending_at_kill, (received_at_kill, sending_at_kill, resent)

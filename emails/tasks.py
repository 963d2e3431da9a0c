from __future__ import annotations

from celery import shared_task

from emails import sending
from leads.outages import OUTAGE_RETRY


@shared_task(
    name="emails.tasks.email_sends_drain",
    acks_late=True,
    reject_on_worker_lost=True,
    **OUTAGE_RETRY,
)
def email_sends_drain_task() -> int:
    return len(sending.email_sends_drain())


@shared_task(name="emails.tasks.email_sends_due")
def email_sends_due_task() -> int:
    return sending.email_sends_due()


@shared_task(
    name="emails.tasks.consent_confirmation_send",
    acks_late=True,
    reject_on_worker_lost=True,
    **OUTAGE_RETRY,
)
def consent_confirmation_send_task(record_id: int) -> None:
    from emails.consent import consent_confirmation_send

    consent_confirmation_send(record_id=record_id)

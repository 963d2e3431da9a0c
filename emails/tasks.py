from __future__ import annotations

from celery import shared_task

from emails import sending
from leads.outages import OUTAGE_RETRY


@shared_task(
    name="emails.tasks.email_send", acks_late=True, reject_on_worker_lost=True, **OUTAGE_RETRY
)
def email_send_task(send_id: int) -> None:
    sending.email_send(send_id=send_id)


@shared_task(name="emails.tasks.email_sends_due")
def email_sends_due_task() -> int:
    return len(sending.email_sends_due())

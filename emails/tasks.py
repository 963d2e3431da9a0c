from __future__ import annotations

from celery import shared_task

from leads.outages import OUTAGE_RETRY


@shared_task(
    name="emails.tasks.consent_confirmation_send",
    acks_late=True,
    reject_on_worker_lost=True,
    **OUTAGE_RETRY,
)
def consent_confirmation_send_task(record_id: int) -> None:
    from emails.consent import consent_confirmation_send

    consent_confirmation_send(record_id=record_id)

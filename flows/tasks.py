from __future__ import annotations

from celery import shared_task

from flows import engine, services
from leads.outages import OUTAGE_RETRY


@shared_task(name="flows.tasks.wakeups_claim")
def wakeups_claim_task() -> int:
    engine.wakeups_release_stale()
    return engine.wakeups_claim_all()


@shared_task(
    name="flows.tasks.wakeups_fire", acks_late=True, reject_on_worker_lost=True, **OUTAGE_RETRY
)
def wakeups_fire_task(wakeup_ids: list[int]) -> None:
    engine.wakeups_fire(wakeup_ids=wakeup_ids)


@shared_task(
    name="flows.tasks.delivery_send", acks_late=True, reject_on_worker_lost=True, **OUTAGE_RETRY
)
def delivery_send_task(delivery_id: int) -> None:
    services.delivery_send(delivery_id=delivery_id)


@shared_task(name="flows.tasks.deliveries_due")
def deliveries_due_task() -> int:
    return len(services.deliveries_due())

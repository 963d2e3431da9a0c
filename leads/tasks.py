from __future__ import annotations

from celery import shared_task

from leads.outages import OUTAGE_RETRY
from leads.services import events as event_services


@shared_task(
    name="leads.tasks.events_process", acks_late=True, reject_on_worker_lost=True, **OUTAGE_RETRY
)
def events_process_task(event_ids: list[int]) -> None:
    event_services.events_process(event_ids=event_ids, drain=True)


@shared_task(
    name="leads.tasks.events_inbox_drain",
    acks_late=True,
    reject_on_worker_lost=True,
    **OUTAGE_RETRY,
)
def events_inbox_drain_task() -> int:
    from leads.services.inbox import events_inbox_drain

    return events_inbox_drain()


@shared_task(name="leads.tasks.events_sweep")
def events_sweep() -> int:
    from leads.outages import task_send
    from leads.services.inbox import inbox_waiting

    # The embedded mode's inbox is rung too, for a request whose ring was lost.
    if inbox_waiting():
        task_send(events_inbox_drain_task)
    return event_services.events_sweep()


@shared_task(name="leads.tasks.events_partitions")
def events_partitions_task() -> None:
    from django.core.management import call_command

    call_command("events_partitions")


@shared_task(name="leads.tasks.broker_purge")
def broker_purge() -> int:
    from leads.services.health import embedded_broker_purge

    return embedded_broker_purge()


@shared_task(name="leads.tasks.lead_import_run", **OUTAGE_RETRY)
def lead_import_run(import_id: int) -> None:
    from leads.services.imports import lead_import_run as run

    run(import_id=import_id)


@shared_task(name="leads.tasks.lead_job_run", **OUTAGE_RETRY)
def lead_job_run_task(job_id: int) -> None:
    from leads.services.jobs import lead_job_run

    lead_job_run(job_id=job_id)


@shared_task(name="leads.tasks.jobs_sweep")
def jobs_sweep_task() -> int:
    from leads.services.background import jobs_sweep

    return jobs_sweep()

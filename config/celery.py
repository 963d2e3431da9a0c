"""The Celery app. Queues: ``ingest`` (event processing), ``flows``, ``deliveries``
and ``periodic`` (beat's own work, so it never waits behind a backlog)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("leadflow")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUES = ("ingest", "flows", "deliveries", "periodic")

app.conf.update(
    task_queues=[Queue(name) for name in QUEUES],
    task_default_queue="ingest",
    task_routes={
        "leads.tasks.events_sweep": {"queue": "periodic"},
        "leads.tasks.broker_purge": {"queue": "periodic"},
        "leads.tasks.segments_refresh": {"queue": "periodic"},
        "flows.tasks.wakeups_claim": {"queue": "periodic"},
        "flows.tasks.deliveries_due": {"queue": "periodic"},
        "flows.tasks.wakeups_fire": {"queue": "flows"},
        "flows.tasks.delivery_send": {"queue": "deliveries"},
    },
    # At-least-once: a message is acknowledged after its task ran, and re-delivered
    # if the worker process dies mid-task. Effects are idempotent (see DESIGN.md).
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    beat_schedule={
        "events-sweep": {"task": "leads.tasks.events_sweep", "schedule": 10.0},
        # Segments with rules relative to now ("in the last 30 days").
        "segments-refresh": {"task": "leads.tasks.segments_refresh", "schedule": 600.0},
        # Due waits are claimed often: a wait's precision is this interval.
        "wakeups-claim": {"task": "flows.tasks.wakeups_claim", "schedule": 2.0},
        "deliveries-due": {"task": "flows.tasks.deliveries_due", "schedule": 10.0},
    },
)

if app.conf.broker_url and app.conf.broker_url.startswith("sqla+"):
    # The embedded broker polls its SQLite table; the 1 s default caps throughput
    # at a couple of tasks per second. Consumed rows are purged by beat.
    from kombu.transport import sqlalchemy as kombu_sqla

    kombu_sqla.Transport.polling_interval = 0.1
    app.conf.beat_schedule["broker-purge"] = {
        "task": "leads.tasks.broker_purge",
        "schedule": 300.0,
    }

app.autodiscover_tasks()

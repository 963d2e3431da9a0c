"""The Celery app. Queues: ``ingest`` (event processing), ``flows``, ``deliveries``
and ``periodic`` (beat's own work, so it never waits behind a backlog)."""

import logging
import os
import threading
from typing import Any

from celery import Celery, bootsteps
from celery.signals import task_postrun, task_prerun
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
        "leads.tasks.events_partitions": {"queue": "periodic"},
        "leads.tasks.segments_refresh": {"queue": "periodic"},
        "leads.tasks.jobs_sweep": {"queue": "periodic"},
        "flows.tasks.wakeups_claim": {"queue": "periodic"},
        "flows.tasks.deliveries_due": {"queue": "periodic"},
        "scoring.tasks.scores_decay": {"queue": "periodic"},
        "pages.tasks.review_warm": {"queue": "periodic"},
        "flows.tasks.wakeups_fire": {"queue": "flows"},
        "flows.tasks.delivery_send": {"queue": "deliveries"},
        "emails.tasks.email_sends_due": {"queue": "periodic"},
        "emails.tasks.email_sends_drain": {"queue": "deliveries"},
        "emails.tasks.consent_confirmation_send": {"queue": "deliveries"},
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
        # Imports, exports, bulk changes and segment refreshes whose message was
        # lost or whose worker died.
        "jobs-sweep": {"task": "leads.tasks.jobs_sweep", "schedule": 30.0},
        # Segments with rules relative to now ("in the last 30 days").
        "segments-refresh": {"task": "leads.tasks.segments_refresh", "schedule": 600.0},
        # Due waits are claimed often: a wait's precision is this interval.
        "wakeups-claim": {"task": "flows.tasks.wakeups_claim", "schedule": 2.0},
        "deliveries-due": {"task": "flows.tasks.deliveries_due", "schedule": 10.0},
        # Held emails whose time came, retries, and sends whose message was lost.
        "email-sends-due": {"task": "emails.tasks.email_sends_due", "schedule": 10.0},
        # Decay and expiry of points. Hourly: a period ends within the hour, and a
        # run with nothing due only reads.
        "scores-decay": {"task": "scoring.tasks.scores_decay", "schedule": 3600.0},
        # The scoring review's figures ready before anyone opens the page.
        "review-warm": {"task": "pages.tasks.review_warm", "schedule": 300.0},
        # PostgreSQL: the events table's months ahead, and its retention
        # (manage.py events_partitions; a no-op on SQLite).
        "events-partitions": {"task": "leads.tasks.events_partitions", "schedule": 86400.0},
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

if app.conf.broker_url and app.conf.broker_url.startswith("redis"):
    # A Redis that does not answer fails a publish in seconds, instead of the
    # operating system's connect timeout (minutes); the request is not held.
    app.conf.broker_transport_options = {"socket_connect_timeout": 2}


# Celery's Django fixup closes the database connections around every task
# unless told to reuse them. A worker then connected again for each message,
# and prepared and planned its hot statements (core.prepared) again each time:
# with 50 flows, a fifth of a 100-event message's time (bench/account.py). The
# fixup's reuse count is set out of reach, and a task's connections are closed
# as Django closes a request's: once older than CONN_MAX_AGE (every task on the
# embedded default, where it is 0), or unusable after an error.
app.conf.update(CELERY_DB_REUSE_MAX=1_000_000_000)


@task_prerun.connect
@task_postrun.connect
def connections_tidy(task: Any = None, **kwargs: Any) -> None:
    """Close the database connections that are too old or broken; not in an
    eager task (a test's, a request's), whose caller owns the connection."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Each worker writes its heartbeat row from a thread of its main process, so
    /healthz can tell that no worker is running (beat's heartbeat alone is
    written by whichever worker runs the sweeper).

    The main process forks the pool's children (again whenever one dies). A
    child forked while this thread is inside Django's connection handling
    inherits its locks held and hangs for good; one forked while an SQLite
    connection is open inherits that connection's lock bookkeeping without the
    locks, so another process may checkpoint or reset the WAL under it ("disk
    I/O error", then "database disk image is malformed"). So the row is written
    over a connection closed right after, and no fork happens meanwhile."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.stopping = threading.Event()
        self.writing = threading.Lock()

    def start(self, parent: Any) -> None:
        os.register_at_fork(
            before=self.writing.acquire,
            after_in_parent=self.writing.release,
            after_in_child=self.writing.release,
        )
        threading.Thread(
            target=self._run, args=(parent.hostname,), name="heartbeat", daemon=True
        ).start()

    def stop(self, parent: Any) -> None:
        self.stopping.set()

    def _run(self, hostname: str) -> None:
        from django.db import connections

        from leads.services.health import WORKER_HEARTBEAT_SECONDS, worker_heartbeat_write

        while True:
            with self.writing:
                try:
                    worker_heartbeat_write(worker=hostname)
                except Exception as exc:
                    logging.getLogger(__name__).warning("worker heartbeat not written: %s", exc)
                finally:
                    # This thread's connections only (they are per thread).
                    connections.close_all()
            if self.stopping.wait(WORKER_HEARTBEAT_SECONDS):
                return


app.steps["worker"].add(WorkerHeartbeat)
app.autodiscover_tasks()

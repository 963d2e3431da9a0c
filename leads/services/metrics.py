"""Prometheus metrics at /metrics: how much work is waiting and how old it is,
read from the database and the broker when Prometheus scrapes, so every web
process reports the same numbers whatever process did the work."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import Any

from django.db.models import Count
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from config.celery import QUEUES
from leads.models import Event, Heartbeat, LeadImport, LeadJob
from leads.outages import broker_probe
from leads.services.events import MAX_ATTEMPTS, WORKER_HEARTBEAT

logger = logging.getLogger(__name__)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def queue_depths() -> dict[str, int]:
    """Messages waiting in each Celery queue (a passive declare: counts, creates nothing)."""

    depths: dict[str, int] = {}
    with broker_probe() as conn:
        channel: Any = conn.default_channel
        for name in QUEUES:
            try:
                depths[name] = channel.queue_declare(queue=name, passive=True).message_count
            except Exception:
                # A queue nobody has declared yet holds nothing.
                depths[name] = 0
    return depths


# Gauges of other apps' work (flows: wake-ups due, deliveries pending), each
# registered from its AppConfig.ready with ``metrics_register``.
_sources: dict[str, Callable[[dt.datetime], Iterator[Metric]]] = {}


def metrics_register(*, name: str, collect: Callable[[dt.datetime], Iterator[Metric]]) -> None:
    """Have every scrape include ``collect(now)``'s metrics."""
    _sources[name] = collect


class LeadflowCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        unprocessed = Event.objects.filter(processed_at__isnull=True)
        waiting = unprocessed.filter(attempts__lt=MAX_ATTEMPTS)
        yield _gauge(
            "leadflow_events_waiting",
            "Events received and not yet processed (retries included).",
            waiting.count(),
        )
        yield _gauge(
            "leadflow_events_failed",
            "Events that failed every try and wait for someone to look.",
            unprocessed.filter(attempts__gte=MAX_ATTEMPTS).count(),
        )
        oldest = waiting.order_by("received_at").values_list("received_at", flat=True).first()
        yield _gauge(
            "leadflow_event_lag_seconds",
            "Age of the oldest event waiting to be processed (0 when none waits).",
            (now - oldest).total_seconds() if oldest else 0.0,
        )
        for source in _sources.values():
            yield from source(now)
        jobs = GaugeMetricFamily(
            "leadflow_background_jobs_running",
            "Imports, exports and bulk changes waiting or running.",
            labels=["kind"],
        )
        jobs.add_metric(
            ["import"], LeadImport.objects.filter(status__in=["pending", "running"]).count()
        )
        for kind, n in (
            LeadJob.objects.filter(status__in=["pending", "running"])
            .values_list("kind")
            .annotate(n=Count("id"))
            .values_list("kind", "n")
        ):
            jobs.add_metric([kind], n)
        yield jobs
        beat = Heartbeat.objects.filter(name="scheduler").values_list("seen_at", flat=True).first()
        yield _gauge(
            "leadflow_scheduler_seen_seconds_ago",
            "Seconds since beat's periodic task last ran on a worker (-1: never).",
            (now - beat).total_seconds() if beat else -1.0,
        )
        workers = (
            Heartbeat.objects.filter(name__startswith=WORKER_HEARTBEAT)
            .order_by("-seen_at")
            .values_list("seen_at", flat=True)
            .first()
        )
        yield _gauge(
            "leadflow_worker_seen_seconds_ago",
            "Seconds since a Celery worker last wrote its heartbeat (-1: never).",
            (now - workers).total_seconds() if workers else -1.0,
        )
        depth = GaugeMetricFamily(
            "leadflow_queue_messages",
            "Messages waiting in each Celery queue.",
            labels=["queue"],
        )
        try:
            for name, count in queue_depths().items():
                depth.add_metric([name], count)
            broker_up = 1.0
        except Exception:
            logger.exception("metrics: the broker did not answer")
            broker_up = 0.0
        yield depth
        yield _gauge("leadflow_broker_up", "1 when the broker answered this scrape.", broker_up)


def metrics_text() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LeadflowCollector())
    return generate_latest(registry)

"""Flows' gauges at /metrics: wake-ups due and held, deliveries not sent
(registered with ``leads.services.metrics`` by ``FlowsConfig.ready``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric

from flows.models import Delivery, Wakeup


def flows_metrics(now: dt.datetime) -> Iterator[Metric]:
    wakeups = Wakeup.objects.filter(claimed_at__isnull=True)
    yield GaugeMetricFamily(
        "leadflow_wakeups_due",
        "Waiting flow steps whose time has come and that beat has not claimed yet.",
        value=wakeups.filter(held=False, due_at__lte=now).count(),
    )
    yield GaugeMetricFamily(
        "leadflow_wakeups_held",
        "Waiting flow steps held by a paused flow.",
        value=wakeups.filter(held=True).count(),
    )
    deliveries = GaugeMetricFamily(
        "leadflow_deliveries",
        "Outgoing webhooks, emails and Slack messages by status.",
        labels=["status"],
    )
    counts = dict(
        Delivery.objects.exclude(status="sent")
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    for status in ("pending", "failed"):
        deliveries.add_metric([status], counts.get(status, 0))
    yield deliveries

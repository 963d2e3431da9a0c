"""Health of the database and the broker, for /healthz."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from leads.models import Heartbeat
from leads.outages import broker_probe
from leads.services.events import WORKER_HEARTBEAT, events_backlog

logger = logging.getLogger(__name__)


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            row: tuple[Any, ...] | None = cursor.fetchone()
            return row == (1,)
    except Exception:
        logger.exception("database health check failed")
        return False


# A worker writes its heartbeat this often; one not seen for STALE_AFTER is gone.
WORKER_HEARTBEAT_SECONDS = 10
STALE_AFTER = timedelta(seconds=30)
SCHEDULER_STALE_AFTER = timedelta(seconds=60)


def broker_ok() -> bool:
    try:
        with broker_probe():
            return True
    except Exception as exc:
        logger.warning("broker health check failed: %s", exc)
        return False


def worker_heartbeat_write(*, worker: str) -> None:
    """Note that the worker ``worker`` is alive (every WORKER_HEARTBEAT_SECONDS,
    from a thread of the worker's main process)."""
    Heartbeat.objects.update_or_create(
        name=f"{WORKER_HEARTBEAT}{worker}", defaults={"seen_at": timezone.now()}
    )


# What ``?require=`` may name: parts whose absence makes /healthz answer 503.
OPTIONAL_PARTS = ("worker", "scheduler")


def health_report(*, require: Collection[str] = ()) -> tuple[int, dict[str, Any]]:
    """(HTTP status, report). ``status`` is "error" (503) when the database or the
    broker does not answer; "degraded" when no worker or no scheduler (beat) was
    seen lately, which is still 200 (the web serves and stores events; they wait)
    unless ``require`` names the missing part; otherwise "ok" (200)."""
    db = database_ok()
    broker = broker_ok()
    report: dict[str, Any] = {
        "database": "ok" if db else "error",
        "broker": "ok" if broker else "error",
    }
    missing: set[str] = set()
    if db:
        backlog = events_backlog()
        report["events_waiting"] = backlog["waiting"]
        report["events_failed"] = backlog["failed"]
        now = timezone.now()
        beat = Heartbeat.objects.filter(name="scheduler").first()
        if beat is None:
            report["scheduler"] = "never seen"
        else:
            age = now - beat.seen_at
            report["scheduler"] = "ok" if age < SCHEDULER_STALE_AFTER else "stale"
            report["scheduler_seen_seconds_ago"] = round(age.total_seconds(), 1)
        seen = list(
            Heartbeat.objects.filter(name__startswith=WORKER_HEARTBEAT)
            .order_by("-seen_at")
            .values_list("seen_at", flat=True)
        )
        alive = [at for at in seen if now - at < STALE_AFTER]
        report["workers"] = len(alive)
        report["worker"] = "ok" if alive else "stale" if seen else "never seen"
        if seen:
            report["worker_seen_seconds_ago"] = round((now - seen[0]).total_seconds(), 1)
        missing = {part for part in OPTIONAL_PARTS if report[part] != "ok"}
    if not (db and broker):
        report["status"] = "error"
        return 503, report
    report["status"] = "degraded" if missing else "ok"
    return (503 if missing & set(require) else 200), report


def embedded_broker_purge() -> int:
    """Delete consumed messages from the embedded broker's table (kombu keeps them)."""
    if settings.REDIS_URL or not settings.EMBEDDED_BROKER_PATH.exists():
        return 0
    with sqlite3.connect(settings.EMBEDDED_BROKER_PATH, timeout=10) as db:
        try:
            cursor = db.execute("DELETE FROM kombu_message WHERE visible = 0")
        except sqlite3.OperationalError:
            return 0
        return cursor.rowcount

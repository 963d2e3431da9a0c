"""Health of the database and the broker, for /healthz."""

from __future__ import annotations

import logging
import sqlite3
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from leads.models import Heartbeat
from leads.services.events import events_backlog

logger = logging.getLogger(__name__)


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.exception("database health check failed")
        return False


def broker_ok() -> bool:
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        logger.exception("broker health check failed")
        return False


def health_report() -> tuple[bool, dict[str, Any]]:
    """(healthy, report). Healthy means the database and broker answer; the
    scheduler heartbeat is reported so a stopped beat or worker is visible."""
    db = database_ok()
    broker = broker_ok()
    report: dict[str, Any] = {
        "database": "ok" if db else "error",
        "broker": "ok" if broker else "error",
    }
    if db:
        backlog = events_backlog()
        report["events_waiting"] = backlog["waiting"]
        report["events_failed"] = backlog["failed"]
        beat = Heartbeat.objects.filter(name="scheduler").first()
        if beat is None:
            report["scheduler"] = "never seen"
        else:
            age = timezone.now() - beat.seen_at
            report["scheduler"] = "ok" if age < timedelta(seconds=60) else "stale"
            report["scheduler_seen_seconds_ago"] = round(age.total_seconds(), 1)
    return db and broker, report


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

"""Telling an outage from a failing event, and re-sending an event only once its
message has left the queue."""

from __future__ import annotations

import datetime as dt
import time

import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, ProgrammingError, connection, transaction
from django.utils import timezone

from config.celery import app as celery_app
from leads.models import Event
from leads.outages import database_lost, outage
from leads.services.events import events_sweep
from leads.tasks import events_process_task
from tests.factories import EventFactory


def _caused_by(cause: Exception) -> OperationalError:
    try:
        raise OperationalError(str(cause)) from cause
    except OperationalError as exc:
        return exc


def test_outages_are_lost_connections_not_failing_statements():
    assert database_lost(_caused_by(psycopg.errors.AdminShutdown("terminated")))
    assert database_lost(_caused_by(psycopg.errors.ConnectionFailure("gone")))
    assert database_lost(_caused_by(psycopg.OperationalError("connection refused")))
    assert not database_lost(_caused_by(psycopg.errors.DeadlockDetected("deadlock")))
    assert not database_lost(_caused_by(psycopg.errors.LockNotAvailable("nowait")))
    assert not database_lost(ProgrammingError("no such column"))
    assert not outage(RuntimeError("boom"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_terminate_backend")
def test_a_terminated_session_is_an_outage():
    connection.ensure_connection()
    own = connection.connection.info.backend_pid
    s = connection.settings_dict
    with psycopg.connect(
        host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"], dbname=s["NAME"]
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [own])
    with pytest.raises(OperationalError) as raised, transaction.atomic():
        Event.objects.count()
    assert database_lost(raised.value)


def _purge() -> None:
    celery_app.control.purge()


@pytest.fixture
def broker_without_worker():
    """The configured Redis with no worker consuming: what is sent stays queued."""
    if not settings.REDIS_URL:
        pytest.skip("reads the Redis queue")
    _purge()
    yield
    _purge()


@pytest.mark.integration
@pytest.mark.django_db
def test_an_event_is_sent_again_only_once_its_message_left_the_queue(broker_without_worker):
    now = timezone.now()
    event = EventFactory.create(received_at=now - dt.timedelta(minutes=5))

    # The first sweep sends it; the event notes when, and when to look again.
    assert events_sweep() == 1
    event.refresh_from_db()
    assert event.resends == 1
    assert event.resent_at is not None
    assert event.retry_at is not None
    assert 29 <= (event.retry_at - event.resent_at).total_seconds() <= 30

    # Its time comes, but the message is still queued (no worker took it).
    Event.objects.filter(pk=event.pk).update(retry_at=now - dt.timedelta(seconds=1))
    assert events_sweep() == 0

    # The message is lost (a Redis restart): a sweep a little later sends it
    # again, and the one after that waits twice as long.
    _purge()
    Event.objects.filter(pk=event.pk).update(resent_at=now - dt.timedelta(seconds=15))
    assert events_sweep() == 1
    event.refresh_from_db()
    assert event.resends == 2
    assert 59 <= (event.retry_at - event.resent_at).total_seconds() <= 60


@pytest.mark.integration
@pytest.mark.django_db
def test_during_a_backlog_only_events_older_than_the_queue_are_sent(broker_without_worker):
    now = timezone.now()
    # The oldest message waiting was sent ten minutes ago: the workers are behind.
    events_process_task.apply_async(
        ([0],), headers={"sent_at": str(time.time() - 600)}, queue="ingest"
    )
    behind = EventFactory.create(received_at=now - dt.timedelta(minutes=5))
    lost = EventFactory.create(received_at=now - dt.timedelta(minutes=20))

    assert events_sweep() == 1

    assert Event.objects.filter(resends=1).get().pk == lost.pk
    behind.refresh_from_db()
    assert (behind.resends, behind.retry_at) == (0, None)

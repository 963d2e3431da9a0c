"""What an outage of the database or the broker looks like, and how work is
handed to the broker so that one never fails what is already stored.

The database holds the record of everything (the events table is the outbox);
the broker is only a doorbell. So a message that cannot be sent after a commit
is logged and left to beat's sweeper, and a request that cannot reach the
database or the broker is answered 503 (see ``leads.middleware_outage``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction

logger = logging.getLogger(__name__)

DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
# kombu wraps a failed publish in its OperationalError; the Redis client's own
# errors reach us from the cache and from broker probes.
BROKER_ERRORS: tuple[type[Exception], ...] = (
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
OUTAGE_ERRORS = DATABASE_ERRORS + BROKER_ERRORS


def database_lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached or dropped us (not
    that a statement failed: a deadlock, a bad query)."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate:
        # PostgreSQL: connection exceptions, and the server shutting down or
        # ending our session (pg_terminate_backend). The connection may well be
        # usable again at once, so asking it proves nothing.
        return bool(sqlstate.startswith(("08", "57P")))
    sqlite_error = getattr(cause, "sqlite_errorname", None)
    if sqlite_error:
        return bool(sqlite_error.startswith(SQLITE_UNAVAILABLE))
    # Raised by the client before any server answered: no connection.
    return True


# SQLite's "cannot get at the file now" (locked past the busy timeout, I/O).
SQLITE_UNAVAILABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR")


def outage(exc: BaseException) -> bool:
    """Whether ``exc`` is the database or the broker being out of reach."""
    return isinstance(exc, BROKER_ERRORS) or database_lost(exc)


# A probe of the broker gives up after this long: /healthz and /metrics answer
# promptly while Redis is down (kombu's own retries took 6 s).
BROKER_PROBE_SECONDS = 1


@contextmanager
def broker_probe() -> Iterator[Any]:
    """A broker connection, established, that fails within about
    ``BROKER_PROBE_SECONDS`` when the broker does not answer."""
    from config.celery import app

    options = dict(app.conf.broker_transport_options or {})
    if settings.REDIS_URL:
        # The embedded transport hands its options to SQLAlchemy; Redis takes these.
        options |= {
            "socket_connect_timeout": BROKER_PROBE_SECONDS,
            "socket_timeout": BROKER_PROBE_SECONDS,
        }
    with app.connection_for_read(transport_options=options) as conn:
        conn.ensure_connection(max_retries=0, timeout=BROKER_PROBE_SECONDS)
        yield conn


# After a send failed, this process sends nothing for this long: each try costs
# a request the publisher's retries (0.6 s against a refused connection, seconds
# against one that does not answer), which during an outage turned every stored
# request into a slow one and left the web process few free threads.
BROKER_PAUSE_SECONDS = 5.0
_broker_failed_at: float | None = None


def task_send(task: Task[..., Any], *args: Any) -> bool:
    """Send ``task`` now. With the broker out of reach, log it and return False:
    callers only send work whose record is in the database already, and a sweeper
    sends it again later."""
    global _broker_failed_at
    failed_at = _broker_failed_at
    if failed_at is not None and time.monotonic() - failed_at < BROKER_PAUSE_SECONDS:
        logger.info("broker unreachable a moment ago, %s not sent (%s)", task.name, args[:1])
        return False
    try:
        # The sweeper compares this with events' times to tell whether their
        # message may still be queued.
        task.apply_async(args, headers={"sent_at": str(time.time())})
    except BROKER_ERRORS as exc:
        _broker_failed_at = time.monotonic()
        logger.warning("broker unreachable, %s not sent (%s): %s", task.name, args[:1], exc)
        return False
    _broker_failed_at = None
    return True


def task_send_on_commit(task: Task[..., Any], *args: Any) -> None:
    """``task_send`` once the current transaction commits: the rows the task
    reads are there when it runs, and a broker outage cannot fail a request
    whose data is already committed."""
    transaction.on_commit(lambda: task_send(task, *args))


# Celery options of the tasks that a worker should run again once the database or
# the broker is back, instead of dropping their message: 2, 4, 8 … up to 60 s
# apart (jittered, so workers do not come back all at once), for about ten
# minutes; after that beat's sweeper is the last resort.
OUTAGE_RETRY: dict[str, Any] = {
    "autoretry_for": OUTAGE_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 12,
}

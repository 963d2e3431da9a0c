"""The embedded mode's inbox: events the tracking API receives wait in a SQLite
file of their own until the worker moves them into the database.

SQLite has one writer at a time. With the tracking API inserting into the same
file as the worker, which writes in every event's transaction, a request waited
on the worker's write lock (SQLite's busy handler sleeps up to 100 ms between
tries, and the worker takes the lock again at once): 150 to 250 events a second
were accepted while the worker drained (bench/embedded.py). Here the request
only appends to ``inbox.sqlite3``, whose lock nobody holds for long, and the
worker moves what waits into ``leads_event`` in batches.

Nothing is lost and nothing is done twice: an inbox row is deleted only after
its event is committed in the database, where the (source, idempotency key)
uniqueness turns a second move (after a crash between the two) into nothing.
The broker is a doorbell (``events_inbox_drain``): a request rings it unless a
ring is already on its way that no mover has answered, and beat's sweeper rings
it too while anything waits. One process moves at a time
(an exclusive ``flock`` that dies with its holder); a ring while one moves is
answered by the mover, which looks once more after letting go.

PostgreSQL has no such lock (and ``settings.EVENT_INBOX`` is off there):
``events_receive`` then records the events directly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection

from leads.models import Event
from leads.outages import task_send
from leads.services.events import derived_collected, events_process, events_record

# Each request's events in one transaction; the worker moves this many at once
# (its database transaction, and so ingest's wait on it, stays short).
MOVE_BATCH = 500
# The columns an inbox row carries (the rest are the event's defaults).
_FIELDS = (
    "type",
    "name",
    "properties",
    "context",
    "user_id",
    "anonymous_id",
    "email",
    "source",
    "idempotency_key",
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT); "
    # Whether a ring is on its way that no mover has answered yet.
    "CREATE TABLE IF NOT EXISTS bell (id INTEGER PRIMARY KEY CHECK (id = 1), rung INTEGER); "
    "INSERT OR IGNORE INTO bell VALUES (1, 0);"
)

_local = threading.local()


def inbox_path() -> Path | None:
    """The inbox file beside the database's (the test database's in tests), or
    None when events go to the database directly."""
    if not settings.EVENT_INBOX or connection.vendor != "sqlite":
        return None
    return Path(connection.settings_dict["NAME"]).with_suffix(".inbox.sqlite3")


def _connection(path: Path) -> sqlite3.Connection:
    """This thread's connection to the inbox at ``path`` (and this process's: a
    forked pool child opens its own)."""
    key = (str(path), os.getpid())
    conn: sqlite3.Connection | None = getattr(_local, "connections", {}).get(key)
    if conn is None:
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        _local.connections = {**getattr(_local, "connections", {}), key: conn}
    return conn


def _row(event: Event) -> tuple[str]:
    values: dict[str, Any] = {field: getattr(event, field) for field in _FIELDS}
    values["occurred_at"] = event.occurred_at.isoformat()
    values["received_at"] = event.received_at.isoformat()
    return (json.dumps(values, separators=(",", ":")),)


def _event(text: str) -> Event:
    values = json.loads(text)
    values["occurred_at"] = dt.datetime.fromisoformat(values["occurred_at"])
    values["received_at"] = dt.datetime.fromisoformat(values["received_at"])
    return Event(**values)


def events_receive(*, events: Sequence[Event]) -> None:
    """Accept events from the tracking API: into the inbox in the embedded mode
    (a worker moves and processes them), else ``events_record``. Once this
    returns they are stored, whatever happens to the message that follows."""
    path = inbox_path()
    if path is None:
        events_record(events=events)
        return
    if not events:
        return
    rows = [_row(e) for e in events]
    try:
        conn = _connection(path)
        # IMMEDIATE: the write lock at BEGIN, so a busy inbox makes the request
        # wait there rather than fail at its first insert.
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO inbox (event) VALUES (?)", rows)
            # A ring no mover has answered yet will find these rows too: only
            # the first request after a mover started rings (a message on the
            # embedded broker is a transaction of its own, half a request's time).
            ring = conn.execute("UPDATE bell SET rung = 1 WHERE rung = 0").rowcount == 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.OperationalError as exc:
        # As the database's own: an outage (503, retry later), not a failure.
        raise OperationalError(str(exc)) from exc
    if ring:
        from leads.tasks import events_inbox_drain_task

        if not task_send(events_inbox_drain_task):
            # The broker is out of reach: the next request tries again, and
            # beat's sweeper rings while anything waits.
            with contextlib.suppress(sqlite3.OperationalError):
                conn.execute("UPDATE bell SET rung = 0")


def inbox_waiting() -> int:
    """How many events wait in the inbox (0 without one)."""
    path = inbox_path()
    if path is None or not path.exists():
        return 0
    row = _connection(path).execute("SELECT count(*) FROM inbox").fetchone()
    return int(row[0])


@contextlib.contextmanager
def _mover(path: Path) -> Iterator[bool]:
    """Whether this process is the one moving events out of ``path`` now."""
    with Path(f"{path}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _move(conn: sqlite3.Connection) -> tuple[int, list[int]]:
    """Move the oldest waiting events into the database: how many were moved,
    and the ids of those waiting to be processed there."""
    rows = conn.execute("SELECT id, event FROM inbox ORDER BY id LIMIT ?", [MOVE_BATCH]).fetchall()
    if not rows:
        return 0, []
    # The ids are returned here rather than sent: this worker processes them.
    with derived_collected():
        ids = events_record(events=[_event(text) for _, text in rows])
    # Committed in the database: only now may they leave the inbox.
    conn.execute("DELETE FROM inbox WHERE id <= ?", [rows[-1][0]])
    return len(rows), ids


def events_inbox_drain() -> int:
    """Move what waits in the inbox into the database and process it, batch by
    batch until the inbox is empty; returns how many events were moved. A no-op
    while another process moves (it looks again after it lets go)."""
    path = inbox_path()
    if path is None:
        return 0
    conn = _connection(path)
    moved = 0
    while True:
        with _mover(path) as mine:
            if not mine:
                return moved
            while True:
                count, ids = _move(conn)
                if not count:
                    break
                moved += count
                events_process(event_ids=ids)
            # Events moved by a pass that stopped half way (an outage; its task is
            # retried, and finds the inbox empty) wait in the database: go on with
            # those too, as a small message of ids would.
            events_process(event_ids=[], drain=True)
            # Answered: from here a request rings again. One that stored its
            # events before this without ringing (a ring was on its way) is found
            # by the look below.
            conn.execute("UPDATE bell SET rung = 0")
        # So is a ring that came while this process held the lock, and left.
        if conn.execute("SELECT 1 FROM inbox LIMIT 1").fetchone() is None:
            return moved

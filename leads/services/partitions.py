"""The events table by month on PostgreSQL, and its retention.

Migration 0023 turns ``leads_event`` into a table partitioned by the month of
``occurred_at`` (UTC), one partition per month (``leads_event_p2026_12``) and a
default partition for whatever falls outside them (history from long ago, a
client clock in the future). ``occurred_at`` and not ``received_at``: segment
windows and retention are about when things happened, so a rule "in the last 30
days" reads only the last months' partitions, and a month dropped is a month of
history gone, not a day of imports.

``manage.py events_partitions`` (beat, daily) keeps ``MONTHS_AHEAD`` months
ready ahead, moves rows of the default partition into their month's partition,
and, with ``EVENT_RETENTION_MONTHS`` set, drops partitions that lie entirely
before the window once every one of their events is processed (its effects
are then in the ledger, the memberships and the enrollments). SQLite keeps one
plain table and nothing here runs there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import OperationalError, connection, transaction

from leads.models import Event, EventKey

logger = logging.getLogger(__name__)

TABLE = Event._meta.db_table
KEY_TABLE = EventKey._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
ARCHIVE_PREFIX = f"{TABLE}_archive_"
_MONTH_NAME = re.compile(rf"^{TABLE}_p(\d{{4}})_(\d{{2}})$")
# Months kept ready ahead, so that a beat that stops for weeks does not send
# the new month's events into the default partition.
MONTHS_AHEAD = 3
# Without retention, the default partition's rows older than this stay there
# instead of each getting a partition (one stray event from 1970 is no reason
# for six hundred tables).
HISTORY_MONTHS = 120
# Creating, attaching and dropping a partition lock the whole table for a
# moment; a run that cannot get the lock in this time gives up and the next
# run tries again, instead of queueing every insert behind it.
LOCK_TIMEOUT = "10s"
KEY_DELETE_BATCH = 10_000
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def month_start(moment: datetime, *, months: int = 0) -> datetime:
    """The first instant (UTC) of the month of ``moment``, ``months`` later."""
    moment = moment.astimezone(UTC)
    index = moment.year * 12 + moment.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    return f"{TABLE}_p{start.year:04d}_{start.month:02d}"


def event_retention_cutoff(*, now: datetime, months: int) -> datetime:
    """The start of the oldest month kept: the ``months`` whole months before
    the current one are kept, with the current month."""
    return month_start(now, months=-months)


def event_retention_days(months: int) -> int:
    """The longest window in days that retention of ``months`` always keeps
    whole: the fewest days that many consecutive months can have (365 for 12).
    Segment rules may count back this far and no further."""
    return min(sum(_MONTH_DAYS[(first + i) % 12] for i in range(months)) for first in range(12))


def is_partitioned() -> bool:
    """Whether the events table is partitioned here (PostgreSQL, migrated)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = %s::regclass)",
            [TABLE],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def event_partitions() -> dict[datetime, str]:
    """The month partitions attached now, by the first instant of their month."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    months: dict[datetime, str] = {}
    for name in names:
        match = _MONTH_NAME.match(name)
        if match:
            months[datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)] = name
    return months


# --- references from above ---------------------------------------------------------

# Tables above ``leads`` that point at events without a database constraint
# (flows' enrollments keep the event that triggered them) register here how to
# let go of events before they are dropped. Each gets a subquery (and its
# parameters) that yields the ids of the events about to go.
_releasers: dict[str, Callable[[str, list[Any]], None]] = {}


def event_references_register(*, name: str, release: Callable[[str, list[Any]], None]) -> None:
    """Register ``release(ids_sql, params)``, run before events are dropped: it
    clears its references to the events whose ids ``ids_sql`` selects."""
    _releasers[name] = release


# --- the daily run -----------------------------------------------------------------


@dataclass
class PartitionsReport:
    created: list[str] = field(default_factory=list)
    moved: int = 0
    dropped: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    kept_unprocessed: list[str] = field(default_factory=list)
    keys_deleted: int = 0
    busy: list[str] = field(default_factory=list)


def event_partitions_maintain(
    *,
    now: datetime,
    retention_months: int,
    archive: bool = False,
    ahead: int = MONTHS_AHEAD,
) -> PartitionsReport:
    """Create the months ahead (and the months of rows waiting in the default
    partition), then apply retention: ``retention_months`` 0 keeps everything.

    ``archive``: detach old partitions and rename them ``leads_event_archive_…``
    (out of every query, still on disk, for a dump), instead of dropping them."""
    report = PartitionsReport()
    if not is_partitioned():
        return report
    cutoff = event_retention_cutoff(now=now, months=retention_months) if retention_months else None
    _partitions_create(now=now, cutoff=cutoff, ahead=ahead, report=report)
    if cutoff is not None:
        _partitions_prune(cutoff=cutoff, archive=archive, report=report)
        # The keys of a month kept for its unprocessed events are kept with it.
        kept = [start for start, name in event_partitions().items() if start < cutoff]
        report.keys_deleted = _keys_prune(cutoff=min([cutoff, *kept]))
    return report


def _partitions_create(
    *, now: datetime, cutoff: datetime | None, ahead: int, report: PartitionsReport
) -> None:
    existing = event_partitions()
    wanted = {month_start(now, months=n) for n in range(ahead + 1)}
    oldest = cutoff or month_start(now, months=-HISTORY_MONTHS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') "  # noqa: S608
            f"FROM {DEFAULT_PARTITION} WHERE occurred_at >= %s AND occurred_at < %s",
            [oldest, month_start(now, months=ahead + 1)],
        )
        wanted |= {row[0].replace(tzinfo=UTC) for row in cursor.fetchall()}
    for start in sorted(wanted - set(existing)):
        name = partition_name(start)
        try:
            report.moved += _partition_create(start)
        except OperationalError:
            logger.warning("events_partitions: %s not created, the table was busy", name)
            report.busy.append(name)
            continue
        report.created.append(name)


def _partition_create(start: datetime) -> int:
    """Create the partition of the month starting at ``start``; rows of that
    month waiting in the default partition move into it. Returns how many."""
    name = partition_name(start)
    bounds = [start, month_start(start, months=1)]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        # The default partition must hold no row of a month given a partition
        # of its own: they move in the same transaction, then it is attached.
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608
            f"WHERE occurred_at >= %s AND occurred_at < %s RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved",
            bounds,
        )
        moved: int = cursor.rowcount
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", bounds
        )
    return max(moved, 0)


def _partitions_prune(*, cutoff: datetime, archive: bool, report: PartitionsReport) -> None:
    for start, name in sorted(event_partitions().items()):
        if month_start(start, months=1) > cutoff:
            continue
        if _has_unprocessed(name):
            # Its effects are not all applied yet (or an event failed for good and
            # waits for someone to look): dropping it would lose them.
            logger.warning("events_partitions: %s kept, it holds unprocessed events", name)
            report.kept_unprocessed.append(name)
            continue
        # Before the lock: a month's enrollments can take a while to update, and
        # nothing new points at events that are all processed.
        for release in _releasers.values():
            release(f"SELECT id FROM {name}", [])  # noqa: S608
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
                # Again under the lock: late history may have landed meanwhile.
                if _has_unprocessed(name):
                    report.kept_unprocessed.append(name)
                    continue
                cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
                if archive:
                    archived = ARCHIVE_PREFIX + name.removeprefix(f"{TABLE}_p")
                    cursor.execute(f"ALTER TABLE {name} RENAME TO {archived}")
                    report.archived.append(archived)
                else:
                    cursor.execute(f"DROP TABLE {name}")
                    report.dropped.append(name)
        except OperationalError:
            logger.warning("events_partitions: %s not dropped, the table was busy", name)
            report.busy.append(name)
    # Rows of the default partition from before the window: few (history loaded
    # late, clocks gone wrong), so a plain delete, of the processed ones only.
    _default_prune(cutoff)


def _default_prune(cutoff: datetime) -> None:
    ids_sql = (
        f"SELECT id FROM {DEFAULT_PARTITION} "  # noqa: S608
        "WHERE occurred_at < %s AND processed_at IS NOT NULL"
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT EXISTS ({ids_sql})", [cutoff])
            row = cursor.fetchone()
        if not (row and row[0]):
            return
        for release in _releasers.values():
            release(ids_sql, [cutoff])
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608
                "WHERE occurred_at < %s AND processed_at IS NOT NULL",
                [cutoff],
            )


def _has_unprocessed(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT FROM {name} WHERE processed_at IS NULL)")  # noqa: S608
        row = cursor.fetchone()
    return bool(row and row[0])


def _keys_prune(*, cutoff: datetime) -> int:
    """Forget the keys received before the window, in short batches: a copy of
    an event that old arriving again is recorded as new."""
    deleted = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {KEY_TABLE} WHERE id IN (SELECT id FROM {KEY_TABLE} "  # noqa: S608
                "WHERE received_at < %s LIMIT %s)",
                [cutoff, KEY_DELETE_BATCH],
            )
            count: int = max(cursor.rowcount, 0)
        deleted += count
        if count < KEY_DELETE_BATCH:
            return deleted

"""The event pipeline: record events (the outbox), then process them in a worker.

Recording is the hot path of ingestion: one multi-row insert that skips rows whose
(source, idempotency key) already exists, and one Celery message of ids after
commit. Processing resolves who the event is about (creating or merging leads),
applies it to the lead under a row lock, and marks it processed: consecutive
events of known leads in one transaction, any other event in one of its own.
"""

from __future__ import annotations

import functools
import json
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from core import prepared
from core.commit import callbacks_mark, commit_leaves_system, on_commit_internal
from core.scope import event_scope, event_scope_current, processing_batch
from core.vocabulary import LEAD_ACTIVITY_TYPES
from leads.models import Event, EventKey, Heartbeat, Identity, IdentityKind, Lead
from leads.outages import BROKER_ERRORS, broker_probe, outage, task_send
from leads.services.reactions import lock_probes, reactions

logger = logging.getLogger(__name__)

# A chain of derived events deeper than this is a loop: it is stopped and logged.
DERIVED_DEPTH_LIMIT = 8

MAX_ATTEMPTS = 5
SYSTEM_SOURCE = "system"
# Heartbeat rows of Celery workers are named this plus the worker's name.
WORKER_HEARTBEAT = "worker:"

# While a worker processes an event, the events it derives are collected here and
# processed by the same loop right after, instead of one broker message each.
_derived_sink: ContextVar[list[int] | None] = ContextVar("derived_sink", default=None)


@contextmanager
def derived_collected() -> Iterator[list[int]]:
    """Collect the ids of events recorded inside the block instead of sending a
    message for each; the caller processes them (bulk work such as a replay)."""
    collected: list[int] = []
    token = _derived_sink.set(collected)
    try:
        yield collected
    finally:
        _derived_sink.reset(token)


def _enqueue(ids: list[int]) -> None:
    if not ids:
        return
    sink = _derived_sink.get()
    if sink is not None:
        sink.extend(ids)
        return
    from leads.tasks import events_process_task

    # The rows are the record: a message lost to a broker outage is sent again
    # by the sweeper. Our own workers' doorbell: a commit lost in a crash takes
    # its events with it, so it needs no durable commit (core.commit).
    queued = list(ids)
    on_commit_internal(lambda: task_send(events_process_task, queued))


# Columns of one PostgreSQL multi-row insert, with their types for unnest().
_EVENT_COLUMNS = (
    ("type", "varchar"),
    ("name", "varchar"),
    ("properties", "jsonb"),
    ("context", "jsonb"),
    ("user_id", "varchar"),
    ("anonymous_id", "varchar"),
    ("email", "varchar"),
    ("occurred_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("source", "varchar"),
    ("idempotency_key", "varchar"),
    ("depth", "int2"),
    ("attempts", "int2"),
    ("resends", "int2"),
    ("error", "text"),
    ("lead_id", "int8"),
)


def _pg_insert_sql(columns: Sequence[tuple[str, str]]) -> str:
    """Built from the constants above only; every value travels as a bound parameter.

    The events table is partitioned by month on PostgreSQL, where no unique index
    can span months: each event's (source, idempotency key) is claimed in
    ``leads_eventkey`` first, and only the events whose key was new are inserted,
    in the same statement. The first of two rows with one key in a batch wins, as
    it did with the unique index. Rows go in in the batch's order."""
    names = ", ".join(c for c, _ in columns)
    return (
        f"WITH batch AS (SELECT * FROM unnest({', '.join(f'%b::{t}[]' for _, t in columns)}) "  # noqa: S608
        f"WITH ORDINALITY AS r({names}, n)), "
        "distinct_rows AS (SELECT DISTINCT ON (source, idempotency_key) * FROM batch "
        "ORDER BY source, idempotency_key, n), "
        f"claimed AS (INSERT INTO {EventKey._meta.db_table} (source, idempotency_key, received_at) "
        "SELECT source, idempotency_key, received_at FROM distinct_rows "
        "ON CONFLICT (source, idempotency_key) DO NOTHING RETURNING source, idempotency_key) "
        f"INSERT INTO {Event._meta.db_table} ({names}) "
        f"SELECT {names} FROM distinct_rows JOIN claimed USING (source, idempotency_key) "
        "ORDER BY n RETURNING id"
    )


def _pg_insert_one_sql(columns: Sequence[tuple[str, str]]) -> str:
    """``_pg_insert_sql`` for one event: scalars, where the batch's statement
    binds an array per column. Derived events come one at a time, and dumping
    sixteen arrays of one element was most of the cost of writing one."""
    names = ", ".join(c for c, _ in columns)
    values = ", ".join(f"%s::{t}" for _, t in columns)
    return (
        f"WITH claimed AS (INSERT INTO {EventKey._meta.db_table} "  # noqa: S608
        "(source, idempotency_key, received_at) VALUES (%s, %s, %s) "
        "ON CONFLICT (source, idempotency_key) DO NOTHING RETURNING 1) "
        f"INSERT INTO {Event._meta.db_table} ({names}) SELECT {values} FROM claimed "
        "RETURNING id"
    )


_PG_INSERT = _pg_insert_sql(_EVENT_COLUMNS)
_PG_INSERT_ONE = _pg_insert_one_sql(_EVENT_COLUMNS)
# Events recorded as history only (``Event.processed_at`` set by the caller: no
# reaction hears them); ingestion's statement above stays as it is.
_PG_INSERT_PROCESSED = _pg_insert_sql((*_EVENT_COLUMNS, ("processed_at", "timestamptz")))
_PG_INSERT_ONE_PROCESSED = _pg_insert_one_sql((*_EVENT_COLUMNS, ("processed_at", "timestamptz")))


def derived_event_ctes(*, rows: str, where: str, key: str, properties: str) -> str:
    """Two CTEs, ``derived_key`` and ``derived``, for a statement of another
    app that derives an event from what it writes, so that the event costs no
    round trip of its own (PostgreSQL). For a row of ``rows`` (the statement's
    own CTEs) that passes ``where``, they claim the key ``key`` and insert the
    event with ``properties``, both SQL expressions over those rows; ``derived``
    returns its id. The other values are named parameters: ``derived_type``,
    ``derived_name``, ``derived_lead``, ``derived_depth``,
    ``derived_occurred_at`` and ``derived_received_at``. The caller then hands
    the event, with that id, to ``events_written``."""
    return (
        f"derived_key AS (INSERT INTO {EventKey._meta.db_table} "  # noqa: S608
        f"(source, idempotency_key, received_at) SELECT '{SYSTEM_SOURCE}', {key}, "
        f"%(derived_received_at)s FROM {rows} WHERE {where} "
        "ON CONFLICT (source, idempotency_key) DO NOTHING RETURNING idempotency_key), "
        f"derived AS (INSERT INTO {Event._meta.db_table} "
        f"({', '.join(c for c, _ in _EVENT_COLUMNS)}) "
        "SELECT %(derived_type)s::varchar, %(derived_name)s::varchar, "
        f"{properties}, '{{}}'::jsonb, '', '', '', %(derived_occurred_at)s::timestamptz, "
        f"%(derived_received_at)s::timestamptz, '{SYSTEM_SOURCE}', "
        "derived_key.idempotency_key, %(derived_depth)s::int2, 0, 0, '', "
        f"%(derived_lead)s::int8 FROM derived_key, {rows} RETURNING id)"
    )


def derived_events_insert(select: str) -> str:
    """An ``INSERT … RETURNING id, idempotency_key`` of events derived by a
    statement of another app from the rows it writes (PostgreSQL), in the order
    of ``n``. ``select`` gives each event's ``type``, ``name``, ``properties``,
    ``key`` and ``n``; the other values are the named parameters of
    ``derived_event_ctes``. Each key must name a row that the same statement
    has just written, so it is new by construction and claims nothing in
    ``leads_eventkey``. The caller hands the events to ``events_written``."""
    return (
        f"INSERT INTO {Event._meta.db_table} "  # noqa: S608
        f"({', '.join(c for c, _ in _EVENT_COLUMNS)}) "
        "SELECT d.type::varchar, d.name::varchar, d.properties::jsonb, '{}'::jsonb, '', '', '', "
        "%(derived_occurred_at)s::timestamptz, %(derived_received_at)s::timestamptz, "
        f"'{SYSTEM_SOURCE}', d.key::varchar, %(derived_depth)s::int2, 0, 0, '', "
        f"%(derived_lead)s::int8 FROM ({select}) d ORDER BY d.n RETURNING id, idempotency_key"
    )


def _pg_insert(events: Sequence[Event]) -> list[int]:
    """One insert of all rows, parameters bound on the server in binary.

    Django's bulk_create binds on the client, where psycopg escapes every element
    of every array in Python: over half the time of a 500-event request. This is
    the ingest hot path, so it speaks to psycopg directly (see bench/ingest.py).
    """
    from psycopg import Cursor
    from psycopg.types.json import Jsonb

    columns: list[list[Any]] = [[] for _ in _EVENT_COLUMNS]
    for event in events:
        values = (
            event.type,
            event.name,
            Jsonb(event.properties),
            Jsonb(event.context),
            event.user_id,
            event.anonymous_id,
            event.email,
            event.occurred_at,
            event.received_at,
            event.source,
            event.idempotency_key,
            event.depth,
            event.attempts,
            event.resends,
            event.error,
            event.lead_id,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    statement = _PG_INSERT
    if any(event.processed_at is not None for event in events):
        statement = _PG_INSERT_PROCESSED
        columns.append([event.processed_at for event in events])
    params: list[Any] = columns
    if len(events) == 1:
        (event,) = events
        statement = _PG_INSERT_ONE if statement is _PG_INSERT else _PG_INSERT_ONE_PROCESSED
        params = [
            event.source,
            event.idempotency_key,
            event.received_at,
            *(column[0] for column in columns),
        ]
    connection.ensure_connection()
    # Wrapped as Django wraps its own cursors: a dropped connection is then an
    # OperationalError that callers know as an outage (a retry, a 503), not a
    # failure of the events.
    with connection.wrap_database_errors, Cursor(connection.connection) as cursor:
        cursor.execute(statement, params)
        # Ids come from one sequence in the order rows go in: sorted, they are
        # in the order of the events given.
        return sorted(row[0] for row in cursor.fetchall())


def event_keys_claim(*, events: Sequence[Event]) -> list[Event]:
    """Of ``events`` about to be written as they are (history already
    processed, such as the demo's), those whose (source, idempotency key) is new.
    On PostgreSQL their keys are claimed in ``leads_eventkey``; call it in the
    transaction that inserts them. Elsewhere the unique constraint of the events
    table decides, with ``bulk_create(ignore_conflicts=True)``."""
    if connection.vendor != "postgresql" or not events:
        return list(events)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EventKey._meta.db_table} (source, idempotency_key, received_at) "  # noqa: S608
            "SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::timestamptz[]) "
            "ON CONFLICT (source, idempotency_key) DO NOTHING RETURNING source, idempotency_key",
            [
                [event.source for event in events],
                [event.idempotency_key for event in events],
                [event.received_at for event in events],
            ],
        )
        claimed = set(cursor.fetchall())
    new: list[Event] = []
    for event in events:
        key = (event.source, event.idempotency_key)
        if key in claimed:
            claimed.discard(key)
            new.append(event)
    return new


def events_record(*, events: Sequence[Event]) -> list[int]:
    """Insert events, skipping duplicates of (source, idempotency key), and have a
    worker process them after commit. Returns the ids still waiting to be processed
    among the given keys (a duplicate of a processed event is not returned).

    An event given with ``processed_at`` is history that nothing reacts to (an
    entry into a segment that no flow or hook hears): it is written processed and
    no worker is asked for it."""
    if not events:
        return []
    # No savepoint of its own inside an outer transaction: a failure fails the
    # caller's transaction anyway.
    with transaction.atomic(savepoint=False):
        ids: list[int] = []
        if connection.vendor == "postgresql":
            ids = _pg_insert(events)
        else:
            Event.objects.bulk_create(events, ignore_conflicts=True, batch_size=500)
        inserted = len(ids) == len(events)
        if not inserted:
            # Duplicates (or a backend without RETURNING here): a resent event that
            # is still unprocessed is handed to the worker again. Found through the
            # index of unprocessed events: the outbox is small next to the table.
            by_source: dict[str, list[str]] = {}
            for event in events:
                by_source.setdefault(event.source, []).append(event.idempotency_key)
            ids = []
            for source, keys in by_source.items():
                ids += Event.objects.filter(
                    source=source, idempotency_key__in=keys, processed_at__isnull=True
                ).values_list("id", flat=True)
        scope = event_scope_current() if inserted else None
        if scope is not None and (len(events) == 1 or connection.vendor == "postgresql"):
            # The rows just inserted (PostgreSQL returns a multi-row insert's ids
            # in the order of its rows): processing may use the objects as they are.
            recorded = scope.setdefault("recorded", {})
            for event, pk in zip(events, ids, strict=True):
                event.pk = pk
                recorded[pk] = event
        if inserted and any(event.processed_at is not None for event in events):
            ids = [pk for event, pk in zip(events, ids, strict=True) if event.processed_at is None]
        _enqueue(ids)
    return ids


def events_written(*, events: Sequence[Event]) -> None:
    """Have events that the caller inserted itself (unprocessed, with their pk)
    processed as ``events_record`` has its own: by this worker's loop when one
    is processing, else by a worker after commit."""
    scope = event_scope_current()
    if scope is not None:
        recorded = scope.setdefault("recorded", {})
        for event in events:
            recorded[event.pk] = event
    _enqueue([event.pk for event in events])


def event_derive(
    *,
    lead: Lead,
    type: str,
    key: str,
    name: str = "",
    properties: dict[str, Any] | None = None,
    depth: int = 0,
    occurred_at: datetime | None = None,
) -> None:
    """Record an event Leadflow itself emits about ``lead`` (``lead.created``,
    ``field.changed`` …), keyed so that redoing the cause emits it once.
    ``occurred_at``: when it happened, if not now (a deal won last week; a score
    change happened when its cause did, so that flows see history loaded later as
    old)."""
    now = timezone.now()
    events_record(
        events=[
            Event(
                lead=lead,
                type=type,
                name=name,
                properties=properties or {},
                occurred_at=occurred_at or now,
                received_at=now,
                source=SYSTEM_SOURCE,
                idempotency_key=key,
                depth=depth,
            )
        ]
    )


# A message naming fewer events than this (a single request's) has its worker go
# on with other waiting events, up to DRAIN_LIMIT, before it returns to the
# broker. Large messages (bulk ingestion) are efficient as they are, and two
# workers draining the same outbox only step around each other.
DRAIN_BELOW = 50
DRAIN_LIMIT = 500


def events_process(*, event_ids: Sequence[int], drain: bool = False) -> None:
    """Process events in the order they happened. A failure is recorded on the
    event and left for the sweeper to retry.

    Consecutive events of known leads go through in one transaction (see
    ``_group_process``); any other event, or one of a group that failed, in a
    transaction of its own.

    ``drain``: for a small message, then go on with other events waiting in the
    outbox (not those backing off after a failure), skipping any another worker
    holds. Under a stream of small requests, one message then processes what
    many requests sent, and the messages that follow find their events done."""
    hints: dict[int, _Hint] = {}
    queue = deque(
        _hinted(
            Event.objects.filter(pk__in=event_ids, processed_at__isnull=True).order_by(
                "occurred_at", "id"
            ),
            hints,
        )
    )
    with processing_batch():
        _process_queue(queue, hints, skip_locked=False)
        drained = 0
        drain = drain and len(event_ids) < DRAIN_BELOW
        while drain and drained < DRAIN_LIMIT:
            now = timezone.now()
            waiting = _hinted(
                _waiting(now).order_by("received_at", "id")[: min(100, DRAIN_LIMIT - drained)],
                hints,
            )
            if not waiting:
                break
            drained += len(waiting)
            if not _process_queue(deque(waiting), hints, skip_locked=True):
                # Everything waiting is held by other workers.
                break


# What tells, before an event is locked, whether its lead is known without
# resolution: (lead_id, user_id, email, anonymous_id, type).
_Hint = tuple[int | None, str, str, str, str]


def _hinted(events: QuerySet[Event], hints: dict[int, _Hint]) -> list[int]:
    """The ids of ``events``, each one's hint noted in ``hints``: read in the
    statement that finds them, no round trip of its own."""
    ids = []
    for pk, *hint in events.values_list(
        "id", "lead_id", "user_id", "email", "anonymous_id", "type"
    ):
        ids.append(pk)
        hints[pk] = tuple(hint)  # type: ignore[assignment]
    return ids


def _waiting(now: datetime) -> QuerySet[Event]:
    """Events not processed yet, neither backing off after a failure nor given up."""
    return Event.objects.filter(processed_at__isnull=True, attempts__lt=MAX_ATTEMPTS).filter(
        Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    )


def _process_queue(queue: deque[int], hints: dict[int, _Hint], *, skip_locked: bool) -> int:
    """Process the queued events and what they derive; returns how many this
    worker processed (not skipped)."""
    done = 0
    # Events of a group that failed: each goes alone, so that the one that
    # failed is recorded as failed, alone.
    alone: set[int] = set()
    while queue:
        group = _group_take(queue, hints, alone)
        if len(group) > 1:
            try:
                taken, processed, later = _group_process(group)
            except Exception as exc:
                if outage(exc):
                    raise
                logger.info("a group of %s events rolled back (%s): one at a time", len(group), exc)
                alone.update(group)
                continue
            for _ in range(taken):
                queue.popleft()
            done += processed
            queue.extend(later)
            if taken:
                continue
        event_id = queue.popleft()
        try:
            derived = event_process(event_id=event_id, skip_locked=skip_locked)
        except Exception as exc:
            if outage(exc):
                # Not the event's fault: the task is retried once the database
                # is back, with no failed attempt counted.
                raise
            logger.exception("event %s failed", event_id)
            event_failed(event_id=event_id, error=f"{type(exc).__name__}: {exc}")
            continue
        if derived is not None:
            done += 1
            queue.extend(derived)
    return done


def event_failed(*, event_id: int, error: str) -> None:
    """Count a failed attempt and back off: 30 s, 2 min, 8 min, 32 min, then the
    event is left failed (visible in /healthz) with its error."""
    attempts = (
        Event.objects.filter(pk=event_id).values_list("attempts", flat=True).first() or 0
    ) + 1
    delay = timedelta(seconds=settings.EVENT_SWEEP_AFTER_SECONDS * 4 ** (attempts - 1))
    Event.objects.filter(pk=event_id).update(
        attempts=F("attempts") + 1, error=error[:2000], retry_at=timezone.now() + delay
    )


def event_process(*, event_id: int, skip_locked: bool = False) -> list[int] | None:
    """Apply one event to its lead and mark it processed (a no-op if it already is).

    The events it derives about the same lead (``score.changed``,
    ``segment.entered`` …) are applied in the same transaction, under the same
    lock. Returns the ids of derived events about other leads, committed and
    waiting to be processed; None if the event was already processed, or
    (``skip_locked``) is being processed by another worker.
    """
    derived: list[int] = []
    token = _derived_sink.set(derived)
    try:
        if not _event_process(event_id, derived, skip_locked):
            return None
    finally:
        _derived_sink.reset(token)
    return derived


def _too_deep(event: Event) -> bool:
    if event.depth <= DERIVED_DEPTH_LIMIT:
        return False
    logger.error(
        "event %s (%s) stopped: derived-event chain deeper than %s",
        event.pk,
        event.type,
        DERIVED_DEPTH_LIMIT,
    )
    Event.objects.filter(pk=event.pk).update(
        error=f"Stopped: derived-event chain deeper than {DERIVED_DEPTH_LIMIT}.",
        processed_at=timezone.now(),
    )
    return True


def _react(event: Event, lead: Lead, *, touched: bool = False) -> None:
    """Everything an event does to its locked lead: apply it, then the reactions
    registered with the pipeline, in their order (segments, flows, then outbound
    hooks; see ``leads.services.reactions``). ``touched``: the lock already
    moved the lead's activity and linked the event."""
    if event.lead_id != lead.pk:
        event.lead = lead
        # Saved before anything reads the lead's activity: segment and flow rules
        # that count events must count this one.
        event.save(update_fields=["lead"])
    from leads.services.apply import event_apply  # apply derives events through this module

    event_apply(event=event, lead=lead, touched=touched)
    for reaction in reactions():
        reaction.react(event=event, lead=lead)


def _event_process(event_id: int, derived: list[int], skip_locked: bool) -> bool:
    with event_scope() as scope:
        return _event_process_scoped(event_id, derived, scope, skip_locked)


# The hot path's statements (see core.prepared).
# Unlocked on the embedded default: SQLite has no row locks (the transaction
# holds the database's write lock from its BEGIN). Written out, as ``_lead_by``:
# the ORM took longer to build the query than SQLite to answer it.
_EVENT_READ = (
    f"SELECT {prepared.columns(Event)} FROM {Event._meta.db_table} "  # noqa: S608
    "WHERE id = %s AND processed_at IS NULL"
)
_EVENT_LOCK = _EVENT_READ + " FOR UPDATE"
# Marking the events processed also sets how this transaction commits (see
# core.commit): 'off' when nothing leaves the system, or NULL to keep the
# server's setting (a durable commit). One-row FROM: set once, no round trip of
# its own.
_EVENTS_PROCESSED = (
    f"UPDATE {Event._meta.db_table} SET processed_at = %s "  # noqa: S608
    "FROM (SELECT set_config('synchronous_commit', "
    "coalesce(%s, current_setting('synchronous_commit')), true)) commit_mode "
    "WHERE id = ANY(%s)"
)


@functools.cache
def _lead_lock_sql(match: str) -> str:
    """Locks the lead by updating it, which also moves its activity (greatest()
    ignores a NULL time), links the event, and reads the reactions' lock probes
    (flows: whether the lead has listening waits): one round trip instead of
    five. Built at the first event, after every app registered its reactions."""
    probes = "".join(f", {probe.sql.replace('{lead}', 'lead.id')}" for probe in lock_probes())
    return (
        "WITH lead AS ("  # noqa: S608
        f"UPDATE {Lead._meta.db_table} SET last_activity_at = "
        f"greatest(last_activity_at, %(at)s) WHERE {match} "
        f"RETURNING {prepared.columns(Lead)}), "
        f"linked AS (UPDATE {Event._meta.db_table} e SET lead_id = lead.id FROM lead "
        "WHERE e.id = %(event)s AND e.lead_id IS DISTINCT FROM lead.id) "
        f"SELECT *{probes} FROM lead"
    )


def _event_lock(event_id: int, skip_locked: bool) -> Event | None:
    if not prepared.enabled():
        if not connection.features.has_select_for_update:
            return next(iter(Event.objects.raw(_EVENT_READ, [event_id])), None)
        return (
            Event.objects.select_for_update(skip_locked=skip_locked)
            .filter(pk=event_id, processed_at__isnull=True)
            .first()
        )
    sql = _EVENT_LOCK + (" SKIP LOCKED" if skip_locked else "")
    rows = prepared.fetch(sql, [event_id])
    return prepared.instance(Event, rows[0]) if rows else None


def _lead_lock_touching(event: Event) -> Lead | None:
    """The event's lead locked, its activity moved and the event linked to it,
    when that needs no resolution: the event names its lead, or carries nothing
    but a user id that a lead has. None otherwise (nothing was written)."""
    if not prepared.enabled():
        return None
    at = event.occurred_at if event.type in LEAD_ACTIVITY_TYPES else None

    known = _known_lead(event.lead_id, event.user_id, event.email, event.anonymous_id, event.type)
    key: dict[str, Any]
    if known is None:
        return None
    if known[0] == "id":
        match, key = "id = %(lead)s", {"lead": known[1]}
    elif known[0] == "user_id":
        match, key = "external_id = %(user_id)s", {"user_id": known[1]}
    else:
        # What _by_email finds first (the address is unique); _attach would
        # then have nothing to add.
        match, key = "email = %(email)s", {"email": known[1]}
    rows = prepared.fetch(_lead_lock_sql(match), {"at": at, "event": event.pk, **key})
    if not rows:
        return None
    probes = lock_probes()
    row = rows[0]
    columns, answers = row[: len(row) - len(probes)], row[len(row) - len(probes) :]
    lead = prepared.instance(Lead, columns)
    event.lead = lead
    for probe, answer in zip(probes, answers, strict=True):
        probe.answered(lead.pk, answer)
    return lead


def _event_process_scoped(
    event_id: int, derived: list[int], scope: dict[str, Any], skip_locked: bool
) -> bool:
    # Only a transaction of our own may choose how it commits: inside a caller's
    # (a replay, a test), the caller's commit decides.
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        callbacks = callbacks_mark()
        event = _event_lock(event_id, skip_locked)
        if event is None:
            return False
        if _too_deep(event):
            return True
        processed = _event_run(event, derived, scope)
        _events_mark_processed(processed, outermost=outermost, callbacks=callbacks)
    return True


def _event_run(event: Event, derived: list[int], scope: dict[str, Any]) -> list[int]:
    """Apply a locked event to its lead, then the events it derives about the
    same lead, under the same lock. Returns the ids processed; leaves in
    ``derived`` those of events about other leads."""
    lead = _lead_lock_touching(event)
    touched = lead is not None
    if lead is None:
        lead = lead_resolve(event=event)
    _react(event, lead, touched=touched)
    processed = [event.pk]
    later: list[int] = []
    seen = 0
    while seen < len(derived):
        fresh, seen = derived[seen:], len(derived)
        recorded: dict[int, Event] = scope.get("recorded", {})
        children = [recorded[i] for i in fresh if i in recorded]
        unknown = [i for i in fresh if i not in recorded]
        if unknown:
            children += Event.objects.filter(pk__in=unknown, processed_at__isnull=True)
        for child in sorted(children, key=lambda e: e.pk):
            if child.lead_id != lead.pk:
                later.append(child.pk)
            elif not _too_deep(child):
                _react(child, lead)
                processed.append(child.pk)
    derived[:] = later
    return processed


def _events_mark_processed(processed: list[int], *, outermost: bool, callbacks: int) -> None:
    if prepared.enabled():
        durable = not outermost or commit_leaves_system(since=callbacks)
        commit = None if durable else "off"
        prepared.fetch(_EVENTS_PROCESSED, [timezone.now(), commit, processed])
    else:
        Event.objects.filter(pk__in=processed).update(processed_at=timezone.now())


# --- groups -------------------------------------------------------------------------

# Consecutive events of known leads processed in one transaction, at most: a
# transaction per event spent a third of its round trips on BEGIN, locking the
# event, marking it processed and COMMIT. More would hold the group's leads
# locked for longer.
GROUP_LIMIT = 20

# Both skip what another worker holds: a group never waits for a lock while it
# holds others (a lead it cannot lock ends the group there), so two workers
# cannot deadlock on each other's groups; ordered by id all the same.
_EVENTS_LOCK_MANY = (
    f"SELECT {prepared.columns(Event)} FROM {Event._meta.db_table} "  # noqa: S608
    "WHERE id = ANY(%s) AND processed_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED"
)
_LEADS_LOCK_MANY = (
    f"SELECT id, external_id, email FROM {Lead._meta.db_table} "  # noqa: S608
    "WHERE id = ANY(%s) OR external_id = ANY(%s) OR email = ANY(%s) "
    "ORDER BY id FOR UPDATE SKIP LOCKED"
)


def _known_lead(
    lead_id: int | None, user_id: str, email: str, anonymous_id: str, type: str
) -> tuple[str, Any] | None:
    """How an event finds its lead without resolution: ("id", its lead's id)
    when it names it, ("user_id", …) or ("email", …) when it carries nothing
    but a user id or an email (an ESP's event). None when it needs
    ``lead_resolve`` (an anonymous id, both identifiers, an alias); so does one
    whose identifier no lead has as its own (a new person, a former address
    kept as an identity)."""
    if lead_id:
        return "id", lead_id
    if anonymous_id or type == "alias" or bool(user_id) == bool(email):
        return None
    return ("user_id", user_id) if user_id else ("email", email)


def _group_take(queue: deque[int], hints: dict[int, _Hint], alone: set[int]) -> list[int]:
    """The events at the front of the queue that can go in one transaction: of
    known leads, by their hints, up to GROUP_LIMIT."""
    if not prepared.enabled():
        return []
    group: list[int] = []
    for pk in queue:
        hint = hints.get(pk)
        if len(group) == GROUP_LIMIT or pk in alone or hint is None or not _known_lead(*hint):
            break
        group.append(pk)
    return group


def _group_process(group: list[int]) -> tuple[int, int, list[int]]:
    """Process the longest run from the front of ``group`` that this worker can
    lock at once, events and leads, in one transaction: the events of one lead
    stay in their order, as each event of the run still goes through
    ``_event_run``. Returns how many of the group it took (0: none, the first is
    held elsewhere or needs resolution after all), how many it processed, and the
    ids of derived events about other leads.

    A failure rolls the whole run back; the caller then processes its events one
    transaction each, so the failing one is recorded alone, as before."""
    outermost = not connection.in_atomic_block
    with event_scope() as scope, transaction.atomic():
        callbacks = callbacks_mark()
        locked = {
            row[0]: prepared.instance(Event, row)
            for row in prepared.fetch(_EVENTS_LOCK_MANY, [group])
        }
        # The run ends at an event not locked (processed meanwhile, or held by
        # another worker: it goes alone, waiting for it as ever) or whose lead
        # is not known after all.
        run: list[tuple[Event, tuple[str, Any]]] = []
        for pk in group:
            event = locked.get(pk)
            known = (
                _known_lead(
                    event.lead_id, event.user_id, event.email, event.anonymous_id, event.type
                )
                if event is not None
                else None
            )
            if event is None or known is None:
                break
            run.append((event, known))
        if not run:
            return 0, 0, []
        keys = [known for _, known in run]
        leads = prepared.fetch(
            _LEADS_LOCK_MANY,
            [[value for by, value in keys if by == kind] for kind in ("id", "user_id", "email")],
        )
        held = {("id", pk) for pk, _, _ in leads}
        held |= {("user_id", ext) for _, ext, _ in leads if ext}
        held |= {("email", email) for _, _, email in leads if email}
        # A lead another worker holds (or none with the identifier: a new
        # person) ends the run: the event goes alone after this transaction.
        for index, (_, known) in enumerate(run):
            if known not in held:
                del run[index:]
                break
        if not run:
            return 0, 0, []
        processed: list[int] = []
        later: list[int] = []
        for event, _ in run:
            if _too_deep(event):
                continue
            derived: list[int] = []
            token = _derived_sink.set(derived)
            try:
                processed += _event_run(event, derived, scope)
            finally:
                _derived_sink.reset(token)
            later += derived
        if processed:
            _events_mark_processed(processed, outermost=outermost, callbacks=callbacks)
    return len(run), len(run), later


def _lock(lead_id: int) -> Lead:
    return Lead.objects.select_for_update().get(pk=lead_id)


def _by_identity(kind: str, value: str) -> Lead | None:
    lead_id = (
        Identity.objects.filter(kind=kind, value=value).values_list("lead_id", flat=True).first()
    )
    return _lock(lead_id) if lead_id else None


@functools.cache
def _lead_by_sql(column: str, lock: bool) -> str:
    return (
        f"SELECT {prepared.columns(Lead)} FROM {Lead._meta.db_table} "  # noqa: S608
        f"WHERE {column} = %s LIMIT 1{' FOR UPDATE' if lock else ''}"
    )


def _lead_by(column: str, value: str) -> Lead | None:
    """The lead whose ``column`` (a unique one) is ``value``, locked. Written
    out: on the embedded default each event of a known user is resolved here,
    and the ORM took longer to build the query than SQLite to answer it."""
    sql = _lead_by_sql(column, connection.features.has_select_for_update)
    return next(iter(Lead.objects.raw(sql, [value])), None)


def _by_user_id(user_id: str) -> Lead | None:
    return _lead_by("external_id", user_id) or _by_identity(IdentityKind.USER_ID, user_id)


def _by_email(email: str) -> Lead | None:
    return _lead_by("email", email) or _by_identity(IdentityKind.EMAIL, email)


def identity_add(*, lead: Lead, kind: str, value: str, repoint: bool = False) -> None:
    """Point ``kind:value`` at ``lead``; an identity already pointing elsewhere is
    left alone unless ``repoint``."""
    if repoint:
        moved = Identity.objects.filter(kind=kind, value=value).update(lead=lead)
        if moved:
            return
    with transaction.atomic():
        Identity.objects.bulk_create(
            [Identity(kind=kind, value=value, lead=lead)], ignore_conflicts=True
        )


class _ResolveRace(Exception):
    """Another worker created a lead with one of our identifiers meanwhile."""


def lead_resolve(*, event: Event) -> Lead:
    """The lead an event is about, locked for this transaction.

    Known identifiers (user id, email, also former ones kept as identities) win
    over an anonymous id; an event that carries both links them, merging an
    anonymous lead into the known one. A new identifier creates a lead. Alias
    folds ``previous_id`` into ``user_id``. If another worker creates the same
    person meanwhile, resolution starts over and finds that lead.
    """
    if event.lead_id:
        return _lock(event.lead_id)
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _resolve(event)
        except (_ResolveRace, IntegrityError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _resolve(event: Event) -> Lead:
    from leads.services.leads import lead_merge

    if event.lead_id:
        return _lock(event.lead_id)
    email = event.email
    user_id = event.user_id
    anonymous_id = event.anonymous_id
    if event.type == "alias":
        return _resolve_alias(event, user_id, str(event.properties.get("previous_id") or ""))

    known = _by_user_id(user_id) if user_id else None
    if known is None and email:
        known = _by_email(email)
    if known is not None:
        _attach(known, user_id=user_id, email=email)
        if anonymous_id:
            anonymous = _by_identity(IdentityKind.ANONYMOUS_ID, anonymous_id)
            if anonymous is None:
                identity_add(lead=known, kind=IdentityKind.ANONYMOUS_ID, value=anonymous_id)
            elif anonymous.pk != known.pk:
                if anonymous.is_anonymous:
                    return lead_merge(source=anonymous, target=known, cause=event)
                # The anonymous id belonged to another known person (a shared
                # browser): it now points at whoever identified last.
                identity_add(
                    lead=known, kind=IdentityKind.ANONYMOUS_ID, value=anonymous_id, repoint=True
                )
        return known

    anonymous = _by_identity(IdentityKind.ANONYMOUS_ID, anonymous_id) if anonymous_id else None
    if anonymous is not None:
        conflicting = (user_id and anonymous.external_id) or (email and anonymous.email)
        if not conflicting:
            _attach(anonymous, user_id=user_id, email=email)
            return anonymous
        # Someone else identifies on a browser that belonged to a known person.
        lead = _lead_create_for(event=event, email=email, user_id=user_id)
        identity_add(lead=lead, kind=IdentityKind.ANONYMOUS_ID, value=anonymous_id, repoint=True)
        return lead
    lead = _lead_create_for(event=event, email=email, user_id=user_id)
    if anonymous_id:
        identity_add(lead=lead, kind=IdentityKind.ANONYMOUS_ID, value=anonymous_id)
    return lead


def _attach(lead: Lead, *, user_id: str, email: str) -> None:
    """Give ``lead`` the identifiers it lacks; one it already has differently is
    kept as an extra identity, so later events with it find this lead too."""
    updates = []
    if user_id and lead.external_id != user_id:
        if not lead.external_id:
            lead.external_id = user_id
            updates.append("external_id")
        else:
            identity_add(lead=lead, kind=IdentityKind.USER_ID, value=user_id)
    if email and lead.email != email:
        if not lead.email:
            lead.email = email
            updates.append("email")
        else:
            identity_add(lead=lead, kind=IdentityKind.EMAIL, value=email)
    if updates:
        lead.save(update_fields=[*updates, "updated_at"])


def _resolve_alias(event: Event, user_id: str, previous_id: str) -> Lead:
    from leads.services.leads import lead_merge

    target = _by_user_id(user_id)
    previous = None
    if previous_id:
        previous = _by_user_id(previous_id) or _by_identity(IdentityKind.ANONYMOUS_ID, previous_id)
    if previous is None:
        # Alias before any traffic under the old id: remember the old id, so the
        # events that carry it later find the lead.
        lead = target or _lead_create_for(event=event, email="", user_id=user_id)
        if previous_id:
            identity_add(lead=lead, kind=IdentityKind.USER_ID, value=previous_id)
            identity_add(lead=lead, kind=IdentityKind.ANONYMOUS_ID, value=previous_id)
        return lead
    if target is None:
        if previous.external_id == previous_id:
            previous.external_id = user_id
            previous.save(update_fields=["external_id", "updated_at"])
            identity_add(lead=previous, kind=IdentityKind.USER_ID, value=previous_id)
        else:
            _attach(previous, user_id=user_id, email="")
        return previous
    if target.pk != previous.pk:
        return lead_merge(source=previous, target=target, cause=event)
    return target


def _lead_create_for(*, event: Event, email: str, user_id: str) -> Lead:
    from leads.services.leads import lead_create

    try:
        with transaction.atomic():
            return lead_create(
                fields={"email": email or None, "external_id": user_id or None}, cause=event
            )
    except IntegrityError:
        raise _ResolveRace() from None


# Re-sends of one event are spaced 1, 2, 4 … times EVENT_SWEEP_AFTER_SECONDS, up
# to an hour: a message held by a busy worker is not answered with a flood.
RESEND_SPACING_MAX = timedelta(hours=1)
# An event is recorded and committed this long at most before its message is
# sent: events received this long before the oldest queued message was sent
# have left the queue.
SEND_MARGIN = timedelta(seconds=10)


def events_sweep() -> int:
    """Re-enqueue events whose message is gone (a broker outage, a killed worker).

    An event is re-sent only once its message has left the queue: on Redis the
    oldest queued message tells how far the workers have got (during a backlog,
    the events behind it still have their message), and each re-send of an
    event waits twice as long as the one before, for a message a worker holds
    but has not finished. Returns how many were re-enqueued. Also records the
    scheduler's heartbeat.
    """
    from leads.tasks import events_process_task

    now = timezone.now()
    Heartbeat.objects.update_or_create(name="scheduler", defaults={"seen_at": now})
    Heartbeat.objects.filter(
        name__startswith=WORKER_HEARTBEAT, seen_at__lt=now - timedelta(days=1)
    ).delete()
    cutoff = now - timedelta(seconds=settings.EVENT_SWEEP_AFTER_SECONDS)
    due = _waiting(now).filter(received_at__lt=cutoff)
    try:
        queued_since = ingest_queued_since(now)
    except BROKER_ERRORS as exc:
        logger.warning("sweep skipped, broker unreachable: %s", exc)
        return 0
    if queued_since is not None:
        before = queued_since - SEND_MARGIN
        due = due.filter(
            Q(resent_at__isnull=True, received_at__lt=before) | Q(resent_at__lt=before)
        )
    rows = list(due.order_by("received_at").values_list("id", "resends")[:5000])
    base = timedelta(seconds=settings.EVENT_SWEEP_AFTER_SECONDS)
    sent = 0
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        # Noted before sending: a worker that fails the event at once then sets
        # the longer back-off of a failure.
        by_resends: dict[int, list[int]] = {}
        for pk, resends in chunk:
            by_resends.setdefault(resends, []).append(pk)
        for resends, ids in by_resends.items():
            spacing = min(base * 2 ** min(resends, 16), RESEND_SPACING_MAX)
            Event.objects.filter(pk__in=ids).update(
                resends=F("resends") + 1, resent_at=now, retry_at=now + spacing
            )
        if not task_send(events_process_task, [pk for pk, _ in chunk]):
            # Not sent after all: the next sweep tries again.
            Event.objects.filter(pk__in=[pk for pk, _ in chunk]).update(retry_at=None)
            break
        sent += len(chunk)
    if sent:
        logger.warning("re-enqueued %s unprocessed events", sent)
    return sent


def ingest_queued_since(now: datetime) -> datetime | None:
    """When the oldest message still waiting in the ``ingest`` queue was sent
    (``now`` when none waits); None when the broker cannot tell (the embedded
    one, or a message without our ``sent_at`` header)."""
    from config.celery import app

    if app.conf.task_always_eager:
        return None
    with broker_probe() as conn:
        if conn.transport.driver_type != "redis":
            return None
        channel: Any = conn.default_channel
        # kombu pushes on the left and workers pop on the right.
        raw = channel.client.lindex("ingest", -1)
    if raw is None:
        return now
    try:
        sent_at = json.loads(raw)["headers"]["sent_at"]
        return datetime.fromtimestamp(float(sent_at), tz=UTC)
    except (ValueError, KeyError, TypeError):
        return None


def events_backlog() -> dict[str, int]:
    """Events waiting to be processed, and events that failed for good."""
    # One pass over the partial index of unprocessed events.
    backlog = Event.objects.filter(processed_at__isnull=True).aggregate(
        waiting=Count("id", filter=Q(attempts__lt=MAX_ATTEMPTS)),
        failed=Count("id", filter=Q(attempts__gte=MAX_ATTEMPTS)),
    )
    # The embedded mode's inbox holds events not moved into the table yet (the
    # inbox records through this module: imported here).
    from leads.services.inbox import inbox_waiting

    backlog["waiting"] += inbox_waiting()
    return backlog

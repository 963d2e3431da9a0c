"""Flows under load on PostgreSQL and Redis with one real Celery worker:
throughput against a raw-SQL loop, latency at a fixed offered rate, and
wake-up claiming with a million scheduled.

A scratch database gets ``--leads`` leads (a user id each, no segments) and a
published flow "app event ``bench.ping`` → adjust score +1 (engagement)" that
re-enters every time. The grade and MQL thresholds are set out of reach, so
every event makes exactly the same writes (no ``grade.changed``, no stage move).
One run does three things:

1. Throughput. A backlog of ``--events`` ``track bench.ping`` events, each
   naming a random lead by user id, goes through ``events_record`` in batches
   of ``--batch`` (what the REST and Segment endpoints call: one insert and one
   Celery message of ids per batch, here while no worker runs). Then ONE
   Celery worker process starts (``celery -A config worker`` on the app's four
   queues, prefork, ``--concurrency`` children) and the rate is events divided
   by the time from the first ``processed_at`` to the last. Every event must be
   processed without error, with one enrollment, one ledger row and one
   processed ``score.changed`` event each, every lead's score must equal its
   events, and ``scoring_mismatches()`` must be empty.
   The raw baseline, run after phase 2 once the worker has stopped, processes
   a fresh backlog of the same events (same leads, same order) from as many
   processes as the worker has children, pulling the same batches, in a
   psycopg loop of one transaction per event that writes what the app writes,
   each row once in its final state: lock the event and the lead (by user id),
   insert the enrollment (completed), the two step runs (trigger, and the score
   step with its output), the ledger row (``step:<id>`` key), add the point to
   the lead's score and its engagement score (upsert) and move
   ``last_activity_at``, insert the ``score.changed`` event already processed,
   and mark the event processed with its lead: ten statements between BEGIN and
   COMMIT, with psycopg's defaults (parameters bound on the server, statements
   prepared after five uses). It leaves out what the app does besides: reading
   the subscriptions, scoring settings and category, the segment check, the
   wait-step listeners, savepoints, and processing the derived event as an
   event of its own. Its rate is measured like the app's.
2. Latency. With the worker still running, gunicorn (2 workers of 4 threads, as
   ``manage.py runstack``) serves ``POST /api/v1/events/`` and client threads
   offer one event per request at ``--rate`` per second for
   ``--latency-seconds``, on a fixed schedule (open loop: a slow answer does not
   delay the next request). Latency is from the moment the 202 answer reached
   the client to the event's ``processed_at``, which the worker writes in the
   transaction of the ledger row and the score, just before it commits; both
   clocks are this host's.
3. Wake-up claiming, with the worker stopped. ``--wakeups`` enrollments waiting
   on a wait step of another flow, one step run and one wake-up each, are
   written with ``INSERT … SELECT`` and vacuumed. ``flows.engine.wakeups_claim``
   (batches of 500, ``FOR UPDATE SKIP LOCKED``) is then timed call by call: with
   every wake-up due, until ``--claim`` are claimed; and with all of them due in
   the future but ``--due``, until those are claimed, then ``--empty-claims``
   calls that find nothing, alone and with ``wakeups_release_stale`` (beat's
   whole tick). The calls dispatch their ``wakeups_fire`` messages to Redis as
   in production, and that time is counted; the messages are counted and
   deleted between calls, outside the clock, so nothing fires.

No beat runs: its sweeper would re-enqueue events of the backlog older than 30 s.

    .venv/bin/python bench/flows.py                  # print the results
    .venv/bin/python bench/flows.py --record         # and append them to bench/RESULTS.md
    .venv/bin/python bench/flows.py --leads 200 --events 2000 --latency-seconds 10 \\
        --wakeups 50000 --claim 20000                # a quick run
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import psycopg
import redis
import requests
from machine import machine
from psycopg import conninfo as pg_conninfo
from psycopg.types.json import Jsonb
from stack import (
    HOST,
    RESULTS,
    ROOT,
    Gunicorn,
    Process,
    app_env,
    broker_connect,
    database_ensure,
    django_setup,
    free_port,
    manage,
    postgres_settings,
    record,
    vacuum_analyze,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadflow_bench_flows"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
INGEST_QUEUE = "ingest"
FLOWS_QUEUE = "flows"
SOURCE = "bench"
EVENT_NAME = "bench.ping"
WAIT_EVENT_NAME = "bench.wait"
CATEGORY = "engagement"
REASON = "bench.ping"
FLOW_PREFIX = "bench: "
# wakeups_claim's default batch, which beat's task uses.
CLAIM_BATCH = 500
GOAL_RATIO = 0.3
GOAL_P95_MS = 1000.0
# Beyond any score the run can reach; IntegerField's range ends at 2**31 - 1.
OUT_OF_REACH = 2_000_000_000
# The tables one measurement writes; emptied before each.
RUN_TABLES = (
    "leads_event",
    "leads_eventkey",
    "flows_enrollment",
    "flows_steprun",
    "flows_wakeup",
    "flows_delivery",
    "scoring_scorechange",
    "scoring_leadscore",
)


def user_id(index: int) -> str:
    return f"bench-{index:06d}"


def lead_plan(*, events: int, leads: int, seed: int) -> list[int]:
    """Which lead (by index) each event is about; the same for every phase."""
    rng = random.Random(seed)
    return [rng.randrange(leads) for _ in range(events)]


def percentile(values: Sequence[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


# --- the worker -----------------------------------------------------------------


class Worker(Process):
    name = "celery worker"

    def __init__(self, *, env: dict[str, str], concurrency: int):
        # Imported once Django is set up: the Celery app reads the settings.
        from config.celery import QUEUES

        super().__init__(
            command=[
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--queues",
                ",".join(QUEUES),
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--hostname",
                "bench-flows@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=env,
        )


# --- data -------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """Ids the phases need, read once after the flows are published."""

    flow: int
    version: int
    wait_flow: int
    wait_version: int
    category: int
    api_key: str


def graph(*nodes: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """A chain of (id, type, config) nodes, each wired to the next through "next"."""
    return {
        "nodes": [
            {"id": i, "type": t, "config": c, "position": {"x": 0, "y": 100 * n}}
            for n, (i, t, c) in enumerate(nodes)
        ],
        "edges": [
            {"id": f"{a[0]}-{b[0]}", "source": a[0], "sourceHandle": "next", "target": b[0]}
            for a, b in itertools.pairwise(nodes)
        ],
    }


def setup(conninfo: str, *, leads: int) -> Setup:
    """Empty the app's tables, then create the leads, both flows and a key."""
    from flows.lifecycle import flow_create, flow_publish
    from flows.models import Reentry
    from leads.models import ApiScope, Lead
    from leads.services.api_keys import api_key_create
    from scoring.models import ScoreCategory
    from scoring.services import scoring_settings_update

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE leads_lead, leads_event, leads_segment, leads_apikey, flows_flow, "
            f"{', '.join(RUN_TABLES)} RESTART IDENTITY CASCADE"
        )
    Lead.objects.bulk_create(
        [Lead(email=f"{user_id(n)}@example.com", external_id=user_id(n)) for n in range(leads)],
        batch_size=2000,
    )
    scoring_settings_update(
        warm_threshold=OUT_OF_REACH - 1, hot_threshold=OUT_OF_REACH, mql_threshold=OUT_OF_REACH
    )
    score = (
        "score",
        "score.adjust",
        {"points": 1, "category": CATEGORY, "reason": REASON},
    )
    flow = flow_create(
        name=FLOW_PREFIX + "ping adds a point",
        reentry=Reentry.ALWAYS,
        graph=graph(("trigger", "app.event", {"event": EVENT_NAME}), score),
    )
    version = flow_publish(flow=flow)
    wait_flow = flow_create(
        name=FLOW_PREFIX + "wait three days, then a point",
        reentry=Reentry.ALWAYS,
        graph=graph(
            ("trigger", "app.event", {"event": WAIT_EVENT_NAME}),
            ("wait", "wait", {"amount": 3, "unit": "days"}),
            score,
        ),
    )
    wait_version = flow_publish(flow=wait_flow)
    _, key = api_key_create(name="bench", scope=ApiScope.INGEST)
    return Setup(
        flow=flow.pk,
        version=version.pk,
        wait_flow=wait_flow.pk,
        wait_version=wait_version.pk,
        category=ScoreCategory.objects.get(key=CATEGORY).pk,
        api_key=key,
    )


def runs_reset(conninfo: str) -> None:
    """Empty what a measurement writes and zero the leads' scores."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(RUN_TABLES)} RESTART IDENTITY CASCADE")
        conn.execute("UPDATE leads_lead SET score = 0, grade = 'cold', last_activity_at = NULL")
        conn.execute("VACUUM (ANALYZE) leads_lead")
        # Dirty pages of the previous phase are flushed now, not during the next.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def ping_events(plan: Sequence[int]) -> list[Any]:
    from django.utils import timezone

    from leads.models import Event

    now = timezone.now()
    return [
        Event(
            type="track",
            name=EVENT_NAME,
            properties={"n": n},
            user_id=user_id(lead),
            occurred_at=now,
            received_at=now,
            source=SOURCE,
            idempotency_key=uuid.uuid4().hex,
        )
        for n, lead in enumerate(plan)
    ]


def backlog_record(plan: Sequence[int], *, batch: int, enqueue: bool) -> list[list[int]]:
    """Write the events through ``events_record``, a batch at a time; with
    ``enqueue`` each batch also sends its message, as a request would."""
    from leads.services.events import derived_collected, events_record

    events = ping_events(plan)
    batches = []
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        if enqueue:
            batches.append(events_record(events=chunk))
        else:
            with derived_collected():
                batches.append(events_record(events=chunk))
    return batches


def statements_per_event(*, leads: int, sample: int, seed: int) -> tuple[float, float]:
    """SQL statements the worker's code runs per event, its derived ``score.changed``
    included, as Django logs them in-process: (all, of which SAVEPOINT or RELEASE).
    The derived event's own insert goes through psycopg directly and is not logged."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from leads.services.events import events_process

    def run(n: int) -> list[dict[str, Any]]:
        plan = lead_plan(events=n, leads=leads, seed=seed)
        (ids,) = backlog_record(plan, batch=n, enqueue=False)
        with CaptureQueriesContext(connection) as captured:
            events_process(event_ids=ids)
        return list(captured.captured_queries)

    run(5)
    queries = run(sample)
    savepoints = [q for q in queries if "SAVEPOINT" in q["sql"].upper()]
    return len(queries) / sample, len(savepoints) / sample


def verify(conninfo: str, *, expected: Counter[int], inbound: int) -> list[str]:
    """Everything processed, once: one enrollment, one ledger row and one processed
    ``score.changed`` per event, and every lead's score (total and category) equal
    to its events."""
    from scoring.services import scoring_mismatches

    errors: list[str] = []
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE processed_at IS NULL), "
            "count(*) FILTER (WHERE error <> ''), "
            "count(*) FILTER (WHERE type = 'track'), "
            "count(*) FILTER (WHERE type = 'score.changed'), "
            "count(*) FILTER (WHERE type NOT IN ('track', 'score.changed')) FROM leads_event"
        ).fetchone()
        assert row is not None
        unprocessed, failed, tracks, derived, others = row
        enrollments = conn.execute(
            "SELECT count(*) FROM flows_enrollment WHERE flow_id = "
            "(SELECT id FROM flows_flow WHERE name = %s) AND status = 'completed'",
            [FLOW_PREFIX + "ping adds a point"],
        ).fetchone()
        ledger = conn.execute(
            "SELECT count(*), coalesce(sum(delta), 0) FROM scoring_scorechange"
        ).fetchone()
        scores = conn.execute(
            "SELECT l.external_id, l.score, coalesce(s.score, 0) FROM leads_lead l "
            "LEFT JOIN scoring_leadscore s ON s.lead_id = l.id"
        ).fetchall()
    assert enrollments is not None
    assert ledger is not None
    if unprocessed:
        errors.append(f"{unprocessed} events unprocessed")
    if failed:
        errors.append(f"{failed} events with an error")
    for what, count in (
        ("track events", tracks),
        ("score.changed events", derived),
        ("completed enrollments", enrollments[0]),
        ("ledger rows", ledger[0]),
        ("ledger points", ledger[1]),
    ):
        if count != inbound:
            errors.append(f"{count} {what}, {inbound} expected")
    if others:
        errors.append(f"{others} events of other types (grade.changed, field.changed …)")
    wrong = [
        (external_id, score, category)
        for external_id, score, category in scores
        if not score == category == expected[int(external_id.removeprefix("bench-"))]
    ]
    if wrong:
        errors.append(f"{len(wrong)} leads with a wrong score, e.g. {wrong[:3]}")
    mismatches = scoring_mismatches()
    if mismatches:
        errors.append(f"scoring_mismatches(): {len(mismatches)}, e.g. {mismatches[:3]}")
    return errors


def processing_span(conninfo: str) -> float:
    """Seconds from the first event processed to the last, derived ones included."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM max(processed_at) - min(processed_at)) FROM leads_event"
        ).fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


def wait_processed(conninfo: str, *, timeout: float, worker: Worker | None, what: str) -> None:
    """Until no event waits; stops early if one fails (no beat retries it here)."""
    deadline = time.monotonic() + timeout
    shown = time.monotonic()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE attempts > 0) FROM leads_event "
                "WHERE processed_at IS NULL"
            ).fetchone()
            assert row is not None
            waiting, failed = row
            if failed:
                detail = worker.output() if worker else ""
                raise SystemExit(f"{what}: {failed} events failed\n{detail}")
            if not waiting:
                return
            if worker is not None and not worker.alive():
                raise SystemExit(f"{what}: the worker exited\n{worker.output()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{what}: {waiting} events still waiting after {timeout:.0f} s")
            if time.monotonic() - shown > 10:
                print(f"  {waiting:,} events waiting…", flush=True)
                shown = time.monotonic()
            time.sleep(0.5)


# --- phase 1: throughput ------------------------------------------------------------


@dataclass
class Throughput:
    events: int
    seconds: float
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def app_throughput(
    conninfo: str,
    *,
    plan: Sequence[int],
    batch: int,
    env: dict[str, str],
    concurrency: int,
    broker: redis.Redis,
) -> tuple[Throughput, Worker]:
    """The backlog is queued first, then the worker starts; it is returned running."""
    runs_reset(conninfo)
    broker.flushdb()
    print(f"recording {len(plan):,} events in batches of {batch}…", flush=True)
    batches = backlog_record(plan, batch=batch, enqueue=True)
    errors = []
    queued = broker.llen(INGEST_QUEUE)
    if queued != len(batches):
        errors.append(f"{queued} task messages queued, {len(batches)} expected")
    print(f"starting one worker, concurrency {concurrency}…", flush=True)
    worker = Worker(env=env, concurrency=concurrency)
    try:
        wait_processed(conninfo, timeout=120 + len(plan) / 10, worker=worker, what="app throughput")
    except BaseException:
        worker.stop()
        raise
    seconds = processing_span(conninfo)
    errors += verify(conninfo, expected=Counter(plan), inbound=len(plan))
    return Throughput(events=len(plan), seconds=seconds, errors=errors), worker


@dataclass(frozen=True)
class RawPlan:
    conninfo: str
    flow: int
    version: int
    category: int
    steprun_sequence: str
    scorechange_sequence: str


def raw_process(conn: psycopg.Connection[Any], plan: RawPlan, event_id: int) -> None:
    """One event, in one transaction, by hand."""
    with conn.transaction():
        row = conn.execute(
            "SELECT user_id, occurred_at FROM leads_event "
            "WHERE id = %s AND processed_at IS NULL FOR UPDATE",
            [event_id],
        ).fetchone()
        if row is None:
            return
        external_id, occurred_at = row
        lead = conn.execute(
            "SELECT id, score FROM leads_lead WHERE external_id = %s FOR UPDATE", [external_id]
        ).fetchone()
        assert lead is not None
        lead_id, score = lead
        enrollment = conn.execute(
            "INSERT INTO flows_enrollment (flow_id, version_id, lead_id, trigger_event_id, "
            "trigger_node, status, created_at, finished_at) VALUES (%s, %s, %s, %s, 'trigger', "
            "'completed', clock_timestamp(), clock_timestamp()) RETURNING id",
            [plan.flow, plan.version, lead_id, event_id],
        ).fetchone()
        ids = conn.execute(
            "SELECT nextval(%s::regclass), nextval(%s::regclass)",
            [plan.steprun_sequence, plan.scorechange_sequence],
        ).fetchone()
        assert enrollment is not None
        assert ids is not None
        step_id, change_id = ids
        conn.execute(
            "INSERT INTO flows_steprun (id, enrollment_id, node_id, node_type, visit, status, "
            "attempts, output, error, started_at, finished_at) VALUES "
            "(DEFAULT, %s, 'trigger', 'app.event', 0, 'completed', 1, %s, '', "
            "clock_timestamp(), clock_timestamp()), "
            "(%s, %s, 'score', 'score.adjust', 0, 'completed', 1, %s, '', "
            "clock_timestamp(), clock_timestamp())",
            [
                enrollment[0],
                Jsonb({"event": event_id}),
                step_id,
                enrollment[0],
                Jsonb({"score_change": change_id, "handles": ["next"]}),
            ],
        )
        conn.execute(
            "INSERT INTO scoring_scorechange (id, lead_id, delta, category_id, reason, source, "
            "source_key, created_at) VALUES (%s, %s, 1, %s, %s, 'flow', %s, clock_timestamp())",
            [change_id, lead_id, plan.category, REASON, f"step:{step_id}"],
        )
        conn.execute(
            "UPDATE leads_lead SET score = score + 1, "
            "last_activity_at = greatest(last_activity_at, %s) WHERE id = %s",
            [occurred_at, lead_id],
        )
        category = conn.execute(
            "INSERT INTO scoring_leadscore (lead_id, category_id, score) VALUES (%s, %s, 1) "
            "ON CONFLICT (lead_id, category_id) "
            "DO UPDATE SET score = scoring_leadscore.score + 1 RETURNING score",
            [lead_id, plan.category],
        ).fetchone()
        assert category is not None
        properties = {
            "delta": 1,
            "from": score,
            "to": score + 1,
            "category": CATEGORY,
            "category_from": category[0] - 1,
            "category_to": category[0],
            "reason": REASON,
        }
        conn.execute(
            "INSERT INTO leads_event (type, name, properties, context, user_id, anonymous_id, "
            "email, occurred_at, received_at, source, idempotency_key, depth, attempts, error, "
            "lead_id, processed_at) VALUES ('score.changed', %s, %s, '{}', '', '', '', "
            "clock_timestamp(), clock_timestamp(), 'system', %s, 1, 0, '', %s, clock_timestamp())",
            [CATEGORY, Jsonb(properties), f"score.changed:{change_id}", lead_id],
        )
        conn.execute(
            "UPDATE leads_event SET lead_id = %s, processed_at = clock_timestamp() WHERE id = %s",
            [lead_id, event_id],
        )


def raw_worker(plan: RawPlan, batches: Any, ready: Any) -> None:
    """One process of the raw loop: batches of event ids until a None."""
    with psycopg.connect(plan.conninfo, autocommit=True) as conn:
        ready.wait()
        while (batch := batches.get()) is not None:
            for event_id in batch:
                raw_process(conn, plan, event_id)


def raw_throughput(
    conninfo: str, *, plan: Sequence[int], batch: int, processes: int, setup_ids: Setup
) -> Throughput:
    runs_reset(conninfo)
    print(f"recording {len(plan):,} events for the raw loop…", flush=True)
    batches = backlog_record(plan, batch=batch, enqueue=False)
    with psycopg.connect(conninfo) as conn:
        sequences = conn.execute(
            "SELECT pg_get_serial_sequence('flows_steprun', 'id'), "
            "pg_get_serial_sequence('scoring_scorechange', 'id')"
        ).fetchone()
    assert sequences is not None
    raw_plan = RawPlan(
        conninfo=conninfo,
        flow=setup_ids.flow,
        version=setup_ids.version,
        category=setup_ids.category,
        steprun_sequence=sequences[0],
        scorechange_sequence=sequences[1],
    )
    # Spawned, not forked: the children share nothing with this process's
    # Django connection, Redis client or threads.
    context = multiprocessing.get_context("spawn")
    queue: Any = context.Queue()
    for ids in batches:
        queue.put(ids)
    for _ in range(processes):
        queue.put(None)
    ready: Any = context.Barrier(processes + 1)
    children = [
        context.Process(target=raw_worker, args=(raw_plan, queue, ready)) for _ in range(processes)
    ]
    print(f"raw loop, {processes} processes…", flush=True)
    for child in children:
        child.start()
    ready.wait(timeout=60)
    for child in children:
        child.join()
    errors = [f"raw process exited with {c.exitcode}" for c in children if c.exitcode]
    seconds = processing_span(conninfo)
    errors += verify(conninfo, expected=Counter(plan), inbound=len(plan))
    return Throughput(events=len(plan), seconds=seconds, errors=errors)


# --- phase 2: latency ------------------------------------------------------------


@dataclass
class Latency:
    rate: float
    seconds: float
    offered: int
    achieved: float = 0.0
    # Events over the time from the first sent to the last processed: below the
    # offered rate, the worker fell behind and latency grew through the run.
    processed_rate: float = 0.0
    http_ms: list[float] = field(default_factory=list)
    visible_ms: list[float] = field(default_factory=list)
    # Events per lead sent in this phase, the warm-up included.
    leads_hit: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def offer(
    *, port: int, key: str, plan: Sequence[int], rate: float, clients: int
) -> tuple[list[tuple[float, float, int]], list[str]]:
    """Send one event per request on a fixed schedule from ``clients`` threads;
    returns (sent, accepted, event id) per event, wall-clock seconds."""
    url = f"http://{HOST}:{port}/api/v1/events/"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    bodies = [
        json.dumps(
            {"type": "track", "name": EVENT_NAME, "user_id": user_id(lead), "properties": {"n": n}}
        ).encode()
        for n, lead in enumerate(plan)
    ]
    results: list[tuple[float, float, int]] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_index = 0
    started = time.perf_counter() + 0.2

    def client() -> None:
        nonlocal next_index
        session = requests.Session()
        try:
            while True:
                with lock:
                    index = next_index
                    next_index += 1
                if index >= len(bodies):
                    return
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                sent = time.time()
                try:
                    response = session.post(url, data=bodies[index], headers=headers, timeout=30)
                except requests.RequestException as exc:
                    with lock:
                        errors.append(f"event {index}: {exc}"[:300])
                    continue
                accepted = time.time()
                if response.status_code != 202:
                    with lock:
                        errors.append(f"event {index}: HTTP {response.status_code}")
                    continue
                with lock:
                    results.append((sent, accepted, int(response.json()["ids"][0])))
        finally:
            session.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def latency_phase(
    conninfo: str,
    *,
    env: dict[str, str],
    worker: Worker,
    setup_ids: Setup,
    plan: Sequence[int],
    rate: float,
    seconds: float,
    clients: int,
    leads: int,
    seed: int,
) -> Latency:
    result = Latency(rate=rate, seconds=seconds, offered=len(plan))
    port = free_port()
    server = Gunicorn(env=env, port=port, threads=4)
    try:
        server.wait_healthy()
        # Both gunicorn workers import their code and connect before the clock runs.
        warm = lead_plan(events=4 * clients, leads=leads, seed=seed + 1)
        _, errors = offer(port=port, key=setup_ids.api_key, plan=warm, rate=50.0, clients=clients)
        if errors:
            raise SystemExit("warm-up failed: " + "; ".join(errors[:5]))
        result.leads_hit.update(warm)
        wait_processed(conninfo, timeout=60, worker=worker, what="latency warm-up")
        print(f"offering {rate:g} events/s for {seconds:g} s…", flush=True)
        sent, result.errors = offer(
            port=port, key=setup_ids.api_key, plan=plan, rate=rate, clients=clients
        )
        result.leads_hit.update(plan)
        wait_processed(conninfo, timeout=120 + len(plan) / 10, worker=worker, what="latency")
    finally:
        server.stop()
    if len(sent) > 1:
        first = min(s for s, _, _ in sent)
        last = max(s for s, _, _ in sent)
        result.achieved = (len(sent) - 1) / (last - first) if last > first else 0.0
    with psycopg.connect(conninfo) as conn:
        processed: dict[int, Any] = dict(
            conn.execute(
                "SELECT id, extract(epoch FROM processed_at) FROM leads_event WHERE id = ANY(%s)",
                [[event_id for _, _, event_id in sent]],
            ).fetchall()
        )
    for start, accepted, event_id in sent:
        result.http_ms.append((accepted - start) * 1000)
        result.visible_ms.append((float(processed[event_id]) - accepted) * 1000)
    if sent:
        span = float(max(processed.values())) - min(start for start, _, _ in sent)
        result.processed_rate = len(sent) / span if span > 0 else 0.0
    return result


# --- phase 3: wake-ups ------------------------------------------------------------


@dataclass
class ClaimRun:
    label: str
    scheduled: int
    due: int
    claimed: int = 0
    calls_ms: list[float] = field(default_factory=list)
    dispatch_seconds: float = 0.0
    empty_ms: list[float] = field(default_factory=list)
    tick_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(self.calls_ms) / 1000

    @property
    def rate(self) -> float:
        return self.claimed / self.seconds if self.seconds else 0.0


def waits_generate(conninfo: str, *, setup_ids: Setup, count: int) -> float:
    """``count`` enrollments of the wait flow, spread over the leads, each with its
    waiting step run; returns seconds taken."""
    began = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        now = dt.datetime.now(dt.UTC)
        conn.execute(
            "INSERT INTO flows_enrollment (flow_id, version_id, lead_id, trigger_event_id, "
            "trigger_node, status, created_at, finished_at) "
            "SELECT %(flow)s, %(version)s, leads.ids[1 + mod(g, leads.n)], NULL, 'trigger', "
            "'waiting', %(now)s - make_interval(secs => mod(g, 86400)), NULL "
            "FROM generate_series(0, %(count)s - 1) AS g, "
            "(SELECT array_agg(id ORDER BY id) AS ids, count(*)::int AS n FROM leads_lead) "
            "AS leads",
            {
                "flow": setup_ids.wait_flow,
                "version": setup_ids.wait_version,
                "now": now,
                "count": count,
            },
        )
        conn.execute(
            "INSERT INTO flows_steprun (enrollment_id, node_id, node_type, visit, status, "
            "attempts, output, error, started_at, finished_at) "
            "SELECT id, 'wait', 'wait', 0, 'waiting', 1, '{}', '', created_at, created_at "
            "FROM flows_enrollment WHERE flow_id = %s ORDER BY id",
            [setup_ids.wait_flow],
        )
    vacuum_analyze(conninfo, ("flows_enrollment", "flows_steprun"))
    return time.perf_counter() - began


def wakeups_generate(conninfo: str, *, setup_ids: Setup, due: int | None) -> tuple[float, int]:
    """One wake-up per waiting step: all due within the last hour (``due`` None), or
    all due in 1 hour to 30 days but ``due`` of them, spread over the table, due
    within the last minute. Returns (seconds, wake-ups due now)."""
    began = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        conn.execute("TRUNCATE flows_wakeup RESTART IDENTITY")
        conn.execute("SELECT setseed(0.5)")
        scheduled = conn.execute(
            "SELECT count(*) FROM flows_steprun s JOIN flows_enrollment e "
            "ON e.id = s.enrollment_id WHERE e.flow_id = %s",
            [setup_ids.wait_flow],
        ).fetchone()
        assert scheduled is not None
        stride = max(1, scheduled[0] // due) if due else 1
        now = dt.datetime.now(dt.UTC)
        conn.execute(
            "INSERT INTO flows_wakeup (step_id, due_at, claimed_at) "
            "SELECT id, CASE WHEN %(all_due)s OR mod(n, %(stride)s) = 0 "
            "THEN %(now)s - make_interval(secs => random() * %(past)s) "
            "ELSE %(now)s + make_interval(secs => 3600 + random() * 30 * 86400) END, NULL "
            "FROM (SELECT s.id, row_number() OVER (ORDER BY s.id) - 1 AS n "
            "FROM flows_steprun s JOIN flows_enrollment e ON e.id = s.enrollment_id "
            "WHERE e.flow_id = %(flow)s) AS steps ORDER BY id",
            {
                "all_due": due is None,
                "stride": stride,
                "now": now,
                "past": 3600 if due is None else 60,
                "flow": setup_ids.wait_flow,
            },
        )
        now_due = conn.execute(
            "SELECT count(*) FROM flows_wakeup WHERE due_at <= %s", [now]
        ).fetchone()
    assert now_due is not None
    vacuum_analyze(conninfo, ("flows_wakeup",))
    return time.perf_counter() - began, int(now_due[0])


@contextlib.contextmanager
def dispatch_timed(run: ClaimRun) -> Iterator[None]:
    """Count the time sending ``wakeups_fire_task`` takes inside the claim calls
    (``task_send`` sends it with ``apply_async``)."""
    from flows.tasks import wakeups_fire_task

    original = wakeups_fire_task.apply_async

    def apply_async(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            run.dispatch_seconds += time.perf_counter() - began

    with mock.patch.object(wakeups_fire_task, "apply_async", apply_async):
        yield


def claim_calls(run: ClaimRun, *, target: int, broker: redis.Redis) -> None:
    """Claim until ``target`` are claimed or nothing is due."""
    from flows.engine import FIRE_CHUNK, wakeups_claim

    with dispatch_timed(run):
        while run.claimed < target:
            began = time.perf_counter()
            ids = wakeups_claim()
            elapsed = time.perf_counter() - began
            queued = broker.llen(FLOWS_QUEUE)
            broker.delete(FLOWS_QUEUE)
            if queued != -(-len(ids) // FIRE_CHUNK):
                run.errors.append(f"{queued} wakeups_fire messages for {len(ids)} claimed")
            if not ids:
                break
            run.calls_ms.append(elapsed * 1000)
            run.claimed += len(ids)


def empty_calls(run: ClaimRun, *, calls: int) -> None:
    """Claims that find nothing due, alone and as beat's tick runs them."""
    from flows.engine import wakeups_claim, wakeups_release_stale

    for _ in range(calls):
        began = time.perf_counter()
        ids = wakeups_claim()
        run.empty_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        released = wakeups_release_stale()
        ids += wakeups_claim()
        run.tick_ms.append((time.perf_counter() - began) * 1000)
        if ids or released:
            run.errors.append(f"an empty claim claimed {len(ids)} and released {released}")


def claim_plan() -> list[str]:
    """The plan of ``wakeups_claim``'s query as it stands (EXPLAIN, costs off)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from flows.engine import wakeups_due

    with transaction.atomic():
        # The same queryset as wakeups_claim's.
        query = (
            wakeups_due(timezone.now())
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("id", flat=True)[:CLAIM_BATCH]
        )
        statement, params = query.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (COSTS OFF) " + statement, params)
            lines = [str(row[0]) for row in cursor.fetchall()]
        transaction.set_rollback(True)
    return lines


def claimed_count(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM flows_wakeup WHERE claimed_at IS NOT NULL")
        found = row.fetchone()
    return int(found[0]) if found else 0


@dataclass
class WakeupResult:
    runs: list[ClaimRun]
    generate_seconds: float
    # The claim's plan with every wake-up due.
    plan: list[str]
    # Seconds between two runs of beat's wakeups_claim task, if a plain number.
    beat_interval: float | None


def beat_claim_interval() -> float | None:
    from config.celery import app

    schedule = app.conf.beat_schedule.get("wakeups-claim", {}).get("schedule")
    return float(schedule) if isinstance(schedule, int | float) else None


def wakeups_phase(
    conninfo: str,
    *,
    setup_ids: Setup,
    broker: redis.Redis,
    wakeups: int,
    claim: int,
    due: int,
    empty: int,
) -> WakeupResult:
    runs_reset(conninfo)
    broker.flushdb()
    print(f"writing {wakeups:,} waiting enrollments and step runs…", flush=True)
    generated = waits_generate(conninfo, setup_ids=setup_ids, count=wakeups)

    print(f"writing {wakeups:,} wake-ups, all due…", flush=True)
    seconds, now_due = wakeups_generate(conninfo, setup_ids=setup_ids, due=None)
    generated += seconds
    all_due = ClaimRun(label="all due", scheduled=wakeups, due=now_due)
    print(f"claiming {min(claim, now_due):,}…", flush=True)
    claim_calls(all_due, target=claim, broker=broker)
    plan = claim_plan()
    stored = claimed_count(conninfo)
    if stored != all_due.claimed:
        all_due.errors.append(f"{stored} wake-ups marked claimed, {all_due.claimed} returned")
    print(f"  {all_due.claimed:,} claimed at {all_due.rate:,.0f}/s", flush=True)

    print(f"writing {wakeups:,} wake-ups, {due:,} due…", flush=True)
    seconds, now_due = wakeups_generate(conninfo, setup_ids=setup_ids, due=due)
    generated += seconds
    few_due = ClaimRun(label="few due", scheduled=wakeups, due=now_due)
    claim_calls(few_due, target=wakeups, broker=broker)
    if few_due.claimed != now_due:
        few_due.errors.append(f"{few_due.claimed} claimed, {now_due} due")
    empty_calls(few_due, calls=empty)
    stored = claimed_count(conninfo)
    if stored != few_due.claimed:
        few_due.errors.append(f"{stored} wake-ups marked claimed, {few_due.claimed} returned")
    print(
        f"  {few_due.claimed:,} claimed at {few_due.rate:,.0f}/s; an empty claim "
        f"{statistics.median(few_due.empty_ms):.1f} ms",
        flush=True,
    )
    broker.flushdb()
    return WakeupResult(
        runs=[all_due, few_due],
        generate_seconds=generated,
        plan=plan,
        beat_interval=beat_claim_interval(),
    )


# --- report -------------------------------------------------------------------------


def throughput_table(app: Throughput, raw: Throughput, concurrency: int) -> str:
    return "\n".join(
        [
            "| phase | events | seconds | events/s |",
            "|---|---:|---:|---:|",
            f"| app: one Celery worker, concurrency {concurrency} | {app.events:,} "
            f"| {app.seconds:.2f} | {app.rate:,.0f} |",
            f"| raw: psycopg loop, {concurrency} processes | {raw.events:,} "
            f"| {raw.seconds:.2f} | {raw.rate:,.0f} |",
            f"| ratio app / raw | | | {app.rate / raw.rate:.2f} (goal ≥ {GOAL_RATIO}) |",
        ]
    )


def latency_table(latency: Latency) -> str:
    v, h = latency.visible_ms, latency.http_ms
    return "\n".join(
        [
            "| offered events/s | achieved events/s | processed events/s | events "
            "| HTTP p50 ms | HTTP p95 ms | accepted → score visible p50 ms | p95 ms | p99 ms "
            "| max ms |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {latency.rate:g} | {latency.achieved:.1f} | {latency.processed_rate:.1f} "
            f"| {len(v):,} "
            f"| {percentile(h, 50):.1f} | {percentile(h, 95):.1f} | {percentile(v, 50):,.0f} "
            f"| {percentile(v, 95):,.0f} | {percentile(v, 99):,.0f} | {max(v):,.0f} |",
        ]
    )


def wakeups_table(result: WakeupResult) -> str:
    lines = [
        "| scheduled | due | claimed | calls | seconds | claims/s | call median ms "
        "| call p95 ms | dispatch share | empty claim median ms | beat tick median ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result.runs:
        share = run.dispatch_seconds / run.seconds if run.seconds else 0.0
        empty = f"{statistics.median(run.empty_ms):.1f}" if run.empty_ms else "-"
        tick = f"{statistics.median(run.tick_ms):.1f}" if run.tick_ms else "-"
        lines.append(
            f"| {run.scheduled:,} | {run.due:,} | {run.claimed:,} | {len(run.calls_ms):,} "
            f"| {run.seconds:.2f} | {run.rate:,.0f} | {statistics.median(run.calls_ms):.1f} "
            f"| {percentile(run.calls_ms, 95):.1f} | {share:.0%} | {empty} | {tick} |"
        )
    return "\n".join(lines)


def findings(app: Throughput, raw: Throughput, latency: Latency, wakeups: WakeupResult) -> str:
    """What the tables say against the goals, in sentences."""
    ratio = app.rate / raw.rate
    p95 = percentile(latency.visible_ms, 95)
    all_due, few_due = wakeups.runs
    from flows.engine import CLAIM_BUDGET_SECONDS

    interval = wakeups.beat_interval
    beat_share = min(1.0, CLAIM_BUDGET_SECONDS / interval) if interval else 0.0
    beat_rate = all_due.rate * beat_share
    return " ".join(
        sentence
        for sentence in [
            f"One worker processed {app.rate:,.0f} events/s through the flow, "
            f"{ratio:.2f} of the raw loop's {raw.rate:,.0f}/s: "
            + (
                f"the goal of at least {GOAL_RATIO} is met."
                if ratio >= GOAL_RATIO
                else f"short of the goal of {GOAL_RATIO}."
            ),
            f"At {latency.achieved:.1f} events/s offered over HTTP ({latency.rate:g} asked), "
            f"an event's point was visible {percentile(latency.visible_ms, 50):,.0f} ms after "
            f"it was accepted at the median and {p95:,.0f} ms at p95: "
            + (
                f"within the goal of p95 < {GOAL_P95_MS / 1000:g} s."
                if p95 < GOAL_P95_MS
                else f"over the goal of p95 < {GOAL_P95_MS / 1000:g} s."
            ),
            (
                f"The worker processed {latency.processed_rate:.1f} events/s meanwhile, fewer "
                "than were offered, so its queue grew through the run and the latency with it."
                if latency.processed_rate < 0.95 * latency.achieved
                else ""
            ),
            f"With {all_due.scheduled:,} wake-ups due, `wakeups_claim` claimed "
            f"{all_due.claimed:,} at {all_due.rate:,.0f} a second in batches of {CLAIM_BATCH} "
            f"({all_due.dispatch_seconds / all_due.seconds:.0%} of it sending the "
            f"`wakeups_fire` messages); with {few_due.scheduled:,} scheduled and "
            f"{few_due.due:,} due, it claimed them at {few_due.rate:,.0f} a second and a "
            f"claim that found nothing took {statistics.median(few_due.empty_ms):.1f} ms "
            f"({statistics.median(few_due.tick_ms):.1f} ms for beat's whole tick, "
            "`wakeups_release_stale` included).",
            (
                f"Beat's task claims batch after batch for up to {CLAIM_BUDGET_SECONDS:g} s "
                f"of every {wakeups.beat_interval:g} s: about {beat_rate:,.0f} wake-ups a "
                f"second at the rate above, so {all_due.scheduled:,} due at once take "
                f"{all_due.scheduled / beat_rate / 60:,.1f} min to claim."
                if beat_rate
                else ""
            ),
        ]
        if sentence
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Flow throughput with one Celery worker against a raw-SQL loop, latency from "
            "accepted to score visible at a fixed rate, and wake-up claiming at scale "
            "(PostgreSQL + Redis)."
        )
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="scratch database; created if missing, migrated, and its leads, events, "
        "flows and scores replaced (default: %(default)s)",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="scratch Redis database for the broker, flushed (default: %(default)s)",
    )
    parser.add_argument("--leads", type=int, default=1_000, help="leads (default: %(default)s)")
    parser.add_argument(
        "--events",
        type=int,
        default=20_000,
        help="events of the throughput backlog, each phase (default: %(default)s)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=500,
        help="events per events_record call and per task message (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=os.cpu_count() or 1,
        help="worker children, and raw-loop processes (default: the cores, %(default)s)",
    )
    parser.add_argument(
        "--rate", type=float, default=100.0, help="events offered per second (default: %(default)s)"
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=30.0,
        help="how long the events are offered (default: %(default)s)",
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=8,
        help="HTTP client threads sharing the schedule (default: %(default)s)",
    )
    parser.add_argument(
        "--wakeups",
        type=int,
        default=1_000_000,
        help="wake-ups scheduled (default: %(default)s)",
    )
    parser.add_argument(
        "--claim",
        type=int,
        default=100_000,
        help="wake-ups to claim when all are due (default: %(default)s)",
    )
    parser.add_argument(
        "--due",
        type=int,
        default=1_000,
        help="wake-ups due when the rest are in the future (default: %(default)s)",
    )
    parser.add_argument(
        "--empty-claims",
        type=int,
        default=20,
        help="claims timed when nothing is due (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the leads' choice (default: %(default)s)"
    )
    parser.add_argument(
        "--record", action="store_true", help="append the result to bench/RESULTS.md"
    )
    args = parser.parse_args(argv)
    for name in ("leads", "events", "batch", "concurrency", "clients", "wakeups", "claim", "due"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.due > args.wakeups:
        parser.error("--due must be at most --wakeups")
    if args.rate <= 0 or args.latency_seconds <= 0:
        parser.error("--rate and --latency-seconds must be positive")
    if args.empty_claims < 1:
        parser.error("--empty-claims must be at least 1")
    return args


def section(
    args: argparse.Namespace,
    *,
    conninfo: str,
    body: str,
    statements: tuple[float, float],
    generate_seconds: float,
    wall: float,
    loads: dict[str, float],
) -> str:
    info = machine()
    pg = postgres_settings(
        conninfo, ("server_version", "shared_buffers", "synchronous_commit", "max_connections")
    )
    now = dt.datetime.now().astimezone()
    return (
        f"## flows: {now:%Y-%m-%d %H:%M %Z}\n\n"
        '`bench/flows.py`: a published flow "app event `bench.ping` → adjust score +1" '
        "(re-entry every time, no segments, grade and MQL thresholds out of reach). "
        "Throughput: a backlog written through `events_record` (batches of "
        f"{args.batch}, one task message each) before ONE Celery worker starts (prefork, "
        f"concurrency {args.concurrency}, the app's four queues, no beat); events per "
        "second from the first `processed_at` to the last. The raw loop processes the same "
        f"events from {args.concurrency} psycopg processes, one transaction each: lock the "
        "event and the lead, insert the enrollment, the two step runs, the ledger row and "
        "the `score.changed` event (already processed), update the lead's score and "
        "activity, upsert its category score, mark the event processed: twelve statements "
        "with BEGIN and COMMIT (psycopg's defaults: bound on the server, prepared after "
        f"five uses). The worker's code runs {statements[0]:.0f} per event as Django logs "
        "them (its hot path's statements prepared, as `core.prepared` sends "
        "them), the BEGIN and COMMIT of its one transaction (the event and its derived "
        f"`score.changed`) and {statements[1]:.0f} SAVEPOINT or RELEASE included, plus the "
        "derived event's insert, which `_pg_insert` sends on psycopg directly. "
        "Latency: `POST /api/v1/events/` (gunicorn, 2 workers of 4 threads, ingest key, one "
        f"event per request) from {args.clients} client threads on a fixed schedule, with "
        "the same worker; from the client receiving the 202 to the event's `processed_at` "
        "(written just before the commit of the ledger row and the score). Wake-ups: "
        "waiting enrollments of a wait flow with a step run and a wake-up each, "
        "`flows.engine.wakeups_claim` timed call by call, its `wakeups_fire` messages sent "
        "to Redis and counted (deleted between calls, never run).\n\n"
        f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; "
        f"Python {info['python']}, PostgreSQL {pg['server_version'].split()[0]} "
        f"(shared_buffers {pg['shared_buffers']}, synchronous_commit "
        f"{pg['synchronous_commit']}), Redis; client, gunicorn, worker and PostgreSQL on "
        "the same host; load average (1 min) "
        + ", ".join(f"{value:.2f} {moment}" for moment, value in loads.items())
        + "\n"
        f"- parameters: --leads {args.leads} --events {args.events} --batch {args.batch} "
        f"--concurrency {args.concurrency} --rate {args.rate:g} --latency-seconds "
        f"{args.latency_seconds:g} --clients {args.clients} --wakeups {args.wakeups} "
        f"--claim {args.claim} --due {args.due} --empty-claims {args.empty_claims} "
        f"--seed {args.seed}\n"
        f"- wake-up data written in {generate_seconds:.0f} s; whole run {wall / 60:.1f} min\n\n"
        f"{body}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    # Other work on a small machine shows in every number: keep the evidence.
    loads = {"at the start": os.getloadavg()[0]}
    conninfo = pg_conninfo.make_conninfo(args.database_url)
    database_ensure(conninfo)
    broker = broker_connect(args.redis_url)
    broker.flushdb()
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as data_dir:
        env = app_env(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=args.database_url,
            REDIS_URL=args.redis_url,
            LEADFLOW_DATA_DIR=data_dir,
            # No log line per statement.
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        print("migrating…", flush=True)
        manage(env, "migrate", "--noinput")
        django_setup(env)
        setup_ids = setup(conninfo, leads=args.leads)
        statements = statements_per_event(leads=args.leads, sample=20, seed=args.seed + 2)
        print(
            f"the worker's code: {statements[0]:.0f} statements per event "
            f"({statements[1]:.0f} SAVEPOINT or RELEASE)",
            flush=True,
        )
        plan = lead_plan(events=args.events, leads=args.leads, seed=args.seed)
        app, worker = app_throughput(
            conninfo,
            plan=plan,
            batch=args.batch,
            env=env,
            concurrency=args.concurrency,
            broker=broker,
        )
        print(f"app: {app.rate:,.0f} events/s ({app.seconds:.2f} s)", flush=True)
        loads["before the latency phase"] = os.getloadavg()[0]
        try:
            latency_plan = lead_plan(
                events=int(args.rate * args.latency_seconds), leads=args.leads, seed=args.seed + 3
            )
            latency = latency_phase(
                conninfo,
                env=env,
                worker=worker,
                setup_ids=setup_ids,
                plan=latency_plan,
                rate=args.rate,
                seconds=args.latency_seconds,
                clients=args.clients,
                leads=args.leads,
                seed=args.seed,
            )
        finally:
            worker.stop()
        latency.errors += verify(
            conninfo,
            expected=Counter(plan) + latency.leads_hit,
            inbound=len(plan) + latency.leads_hit.total(),
        )
        print(
            f"latency: p50 {percentile(latency.visible_ms, 50):.0f} ms, "
            f"p95 {percentile(latency.visible_ms, 95):.0f} ms at {latency.achieved:.1f}/s",
            flush=True,
        )
        loads["before the raw loop"] = os.getloadavg()[0]
        raw = raw_throughput(
            conninfo,
            plan=plan,
            batch=args.batch,
            processes=args.concurrency,
            setup_ids=setup_ids,
        )
        print(f"raw: {raw.rate:,.0f} events/s ({raw.seconds:.2f} s)", flush=True)
        loads["before the wake-ups"] = os.getloadavg()[0]
        wakeups = wakeups_phase(
            conninfo,
            setup_ids=setup_ids,
            broker=broker,
            wakeups=args.wakeups,
            claim=args.claim,
            due=args.due,
            empty=args.empty_claims,
        )
    broker.flushdb()
    wall = time.perf_counter() - began
    loads["at the end"] = os.getloadavg()[0]

    errors = [
        *(f"app: {e}" for e in app.errors),
        *(f"latency: {e}" for e in latency.errors),
        *(f"raw: {e}" for e in raw.errors),
        *(f"wake-ups ({r.label}): {e}" for r in wakeups.runs for e in r.errors),
    ]
    body = (
        f"{throughput_table(app, raw, args.concurrency)}\n\n{latency_table(latency)}\n\n"
        f"{wakeups_table(wakeups)}\n\n{findings(app, raw, latency, wakeups)}\n\n"
        f"The claim's plan with {wakeups.runs[0].scheduled:,} wake-ups due, after the "
        "claims above (EXPLAIN, costs off):\n\n```\n" + "\n".join(wakeups.plan) + "\n```\n"
    )
    text = section(
        args,
        conninfo=conninfo,
        body=body,
        statements=statements,
        generate_seconds=wakeups.generate_seconds,
        wall=wall,
        loads=loads,
    )
    print("\n" + text)
    if errors:
        print(f"\n{len(errors)} errors:", *errors[:20], sep="\n  ", file=sys.stderr)
        return 1
    if args.record:
        record(text)
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

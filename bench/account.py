"""A realistic account under load on PostgreSQL and Redis: dozens of flows and
hundreds of dynamic segments, with real Celery workers.

Each configuration (flows and segments) is built from scratch on a scratch
database:

- ``--leads`` generated leads (10,000; 100,000 with ``--large``): job titles,
  companies of various sizes, countries, stages, tags, the source their first
  page view or import gave them (one in ten none yet), and a few weeks of
  processed history each (app events, pages, email deliveries and opens), so
  that activity rules in windows have something to count;
- published flows of the kinds real accounts have: the demo's six (fit from
  the job title and company size, email engagement, negative signals, app
  activity, online behaviour, hot lead → notify sales), then, in turn, scoring
  on an app event, on a page visited, on an email click of a campaign,
  "entered a segment → notify sales", a wait, and a condition on the lead;
- dynamic segments of the kinds real accounts have, in turn: title contains a
  word, company size at least N, country, a tag, score at least N, points in a
  category, a grade, "did X at least N times in 30 days", pages visited in a
  window, email opened lately, and segment-in-segment (member of an earlier
  segment and a field rule). Every segment is filled as its first recompute
  fills it (its members, without the events of their entries) before the
  clock runs.

``--demo`` measures the demo's account instead: its six flows and its five
segments (``pages/management/commands/load_demo.py``) on the same leads.

Before the clock runs, the account gets a recent past: ``--past`` inbound
events (1,000) processed in-process, then the tables they wrote analyzed, as a
live account's autovacuum keeps them, and a checkpoint. Without it the flows'
tables are empty after a build, and each worker plans its statements once on
the statistics of empty tables.

Inbound events name a random lead by user id (a few a new user id, which
creates a lead): app events (``track``), pages, email opens and clicks
(what an ESP webhook records) and ``identify`` calls that change a job title or
a company size. They are built as ``/v1/batch`` builds them
(``segment_message_to_event``, ``email_event_build``) and written through
``events_record`` in batches of 100, one task message each, while no worker
runs. Then ``--workers`` Celery worker processes start (prefork,
``--concurrency`` children each, the app's four queues, no beat), and the rate
is inbound events over the time from the first ``processed_at`` to the last
(derived events included). Reported with it: derived events per inbound event,
and SQL statements per inbound event (its derived events included) as Django
logs them in-process over a sample processed before the clock runs.

``--latency-seconds`` > 0 adds, with the workers still running, gunicorn
(2 workers of 4 threads) serving ``/v1/track`` and ``/v1/page``, offered one
event per request at ``--rate`` per second on a fixed schedule; latency is from
the 202 reaching the client to the event's ``processed_at``, written in the
transaction of its score change.

Every run is checked: every event processed without error, the ledger equal to
the scores (``scoring_mismatches()``), and every segment's members equal to
what a full recompute would give (``_differences`` empty).

    .venv/bin/python bench/account.py --segments 5,50,200,500          # flat in segments
    .venv/bin/python bench/account.py --flows 10,50 --segments 50      # flat in flows
    .venv/bin/python bench/account.py --demo                           # the demo's account
    .venv/bin/python bench/account.py --demo --workers 1,2             # more workers
    .venv/bin/python bench/account.py ... --record                     # append to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import io
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
import requests
from machine import machine
from psycopg import conninfo as pg_conninfo
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
    manage,
    postgres_settings,
    record,
    vacuum_analyze,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadflow_bench_account"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
INGEST_QUEUE = "ingest"
BATCH = 100
# History reaches this far back, and every window of a segment further: no
# event leaves a window during a run, so the check against a full recompute
# holds without beat's refresh of segments relative to now.
HISTORY_DAYS = 20

TITLES = [
    "CEO",
    "Founder",
    "VP Marketing",
    "Head of Growth",
    "Director of Sales",
    "Marketing Manager",
    "Software Engineer",
    "Product Manager",
    "Student",
    "Analyst",
    "CTO",
    "Account Executive",
    "Designer",
    "Consultant",
    "Operations Lead",
]
TITLE_WORDS = ["CEO", "VP", "Head", "Director", "Manager", "Engineer", "Founder", "Analyst"]
COUNTRIES = ["Germany", "France", "United States", "United Kingdom", "Spain", "Netherlands"]
TAGS = ["newsletter", "webinar", "trial", "partner", "event-2026", "beta", "churn-risk"]
STAGES = [("subscriber", 50), ("lead", 35), ("mql", 8), ("sql", 4), ("customer", 3)]
APP_EVENTS = ["Logged in", "Used a feature", "Invited a teammate", "Signed up for trial"]
EXTRA_EVENTS = [f"Action {n}" for n in range(10)]
PAGES = ["/pricing", "/docs/quickstart", "/features", "/blog/lead-scoring", "/integrations"]
CAMPAIGNS = [f"Campaign {n}" for n in range(6)]
# Where the leads came from, as their first page view or their import set it
# (one in ten has none yet: its first page view sets it during the run).
SOURCES = ["organic", "direct", "paid", "referral", "direct", "social", "email", "organic"]
SOURCES += ["import", ""]


def user_id(index: int) -> str:
    return f"acct-{index:06d}"


def percentile(values: Sequence[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


class Worker(Process):
    name = "celery worker"

    def __init__(self, *, env: dict[str, str], concurrency: int, index: int):
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
                "WARNING",
                "--hostname",
                f"bench-account-{index}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=env,
        )


# --- the account ------------------------------------------------------------------


def leads_create(conninfo: str, *, leads: int, rng: random.Random) -> None:
    """The leads, their tags and a few weeks of processed history, by COPY."""
    now = dt.datetime.now(dt.UTC)
    stages = [s for s, _ in STAGES]
    weights = [w for _, w in STAGES]
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        rows = io.StringIO()
        for n in range(leads):
            created = now - dt.timedelta(days=rng.uniform(1, 120))
            size = rng.choice(["\\N", str(rng.choice([3, 12, 30, 80, 250, 1200]))])
            values = [
                f"{user_id(n)}@example.com",
                user_id(n),
                f"First{n}",
                f"Last{n}",
                "",
                rng.choice(TITLES),
                f"Company {n % 3000}",
                size,
                "",
                rng.choice(COUNTRIES),
                "",
                rng.choices(stages, weights)[0],
                "f",
                "0",
                "cold",
                SOURCES[n % len(SOURCES)],
                "",
                "{}",
                "{}",
                created.isoformat(),
                created.isoformat(),
                (created + dt.timedelta(days=1)).isoformat(),
            ]
            rows.write("\t".join(values) + "\n")
        with cur.copy(
            "COPY leads_lead (email, external_id, first_name, last_name, phone, job_title, "
            "company_name, company_size, industry, country, city, stage, unsubscribed, score, "
            "grade, source, source_detail, custom_fields, raw_traits, created_at, updated_at, "
            "last_activity_at) FROM STDIN"
        ) as copy:
            copy.write(rows.getvalue())
        cur.execute("INSERT INTO leads_tag (name) SELECT unnest(%s::text[])", [TAGS])
        cur.execute(
            "INSERT INTO leads_lead_tags (lead_id, tag_id) SELECT l.id, t.id FROM leads_lead l "
            "JOIN leads_tag t ON (l.id * 7 + t.id * 13) % 5 = 0"
        )
        ids = [r[0] for r in cur.execute("SELECT id FROM leads_lead ORDER BY id").fetchall()]
        history = io.StringIO()
        for lead_id in ids:
            for k in range(rng.randint(0, 8)):
                at = now - dt.timedelta(days=rng.uniform(0.1, HISTORY_DAYS))
                kind = rng.random()
                if kind < 0.35:
                    type_, name, props = "track", rng.choice(APP_EVENTS + EXTRA_EVENTS), {}
                elif kind < 0.7:
                    type_, name, props = (
                        "page",
                        "",
                        {"url": "https://example.com" + rng.choice(PAGES)},
                    )
                elif kind < 0.85:
                    type_, name, props = "email.delivered", rng.choice(CAMPAIGNS), {}
                else:
                    type_, name, props = "email.opened", rng.choice(CAMPAIGNS), {}
                values = [
                    str(lead_id),
                    type_,
                    name,
                    json.dumps(props),
                    "{}",
                    at.isoformat(),
                    at.isoformat(),
                    at.isoformat(),
                    "history",
                    f"h-{lead_id}-{k}",
                    "",
                    "",
                    "",
                    "",
                    "0",
                    "0",
                ]
                history.write("\t".join(values) + "\n")
        with cur.copy(
            "COPY leads_event (lead_id, type, name, properties, context, occurred_at, "
            "received_at, processed_at, source, idempotency_key, user_id, anonymous_id, "
            "email, error, attempts, depth) FROM STDIN"
        ) as copy:
            copy.write(history.getvalue())
        conn.commit()


def segment_trees(count: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """``count`` segments, their kinds in turn; segment rules name an earlier
    segment by its place (replaced by its id when made)."""
    kinds = [
        lambda n: {"field": "job_title", "op": "contains", "value": TITLE_WORDS[n % 8]},
        lambda n: {
            "all": [
                {"activity": "track", "name": rng.choice(APP_EVENTS + EXTRA_EVENTS)},
                {"field": "score", "op": "gte", "value": 1 + n % 7},
            ]
        },
        lambda n: {"field": "score", "op": "gte", "value": 5 + (n * 3) % 60},
        lambda n: {
            "activity": "track",
            "name": rng.choice(APP_EVENTS + EXTRA_EVENTS),
            "within_days": 30,
            "count": {"op": "gte", "value": 2 + n % 3},
        },
        lambda n: {"segment": "earlier", "op": "in"},
        lambda n: {"field": "company_size", "op": "gte", "value": [10, 25, 50, 100, 500][n % 5]},
        lambda n: {"field": "tags", "op": "has", "value": TAGS[n % len(TAGS)]},
        lambda n: {"field": "score.engagement", "op": "gte", "value": 3 + n % 20},
        lambda n: {
            "field": ["grade", "fit_grade", "engagement_grade"][n % 3],
            "op": "is",
            "value": ["hot", "A", "1"][n % 3],
        },
        lambda n: {
            "activity": "page",
            "where": {"url": {"op": "contains", "value": rng.choice(PAGES)}},
            "within_days": 30,
            "count": {"op": "gte", "value": 1 + n % 2},
        },
        lambda n: {"activity": "email.opened", "within_days": 21 + n % 30},
        lambda n: {"field": "country", "op": "is", "value": COUNTRIES[n % len(COUNTRIES)]},
        lambda n: {
            "all": [
                {"field": "stage", "op": "in", "value": ["lead", "mql"]},
                {"activity": "email.opened", "within_days": 30, "count": {"op": "eq", "value": 0}},
            ]
        },
    ]
    trees = []
    for n in range(count):
        tree = kinds[n % len(kinds)](n)
        trees.append((f"Segment {n:03d}", {"all": [tree]} if "all" not in tree else tree))
    return trees


def segments_create(count: int, *, demo: bool, rng: random.Random) -> list[int]:
    from leads.models import Segment
    from segments.services import segment_create

    made: list[Segment] = []
    if demo:
        from pages.management.commands.load_demo import DEMO_SEGMENTS

        for name, description, tree in DEMO_SEGMENTS:
            made.append(segment_create(name=name, description=description, conditions=tree))
    else:
        for name, tree in segment_trees(count, rng):
            rules = tree["all"]
            if rules and rules[0].get("segment") == "earlier":
                # Member of an earlier segment, and from one of the countries.
                earlier = made[rng.randrange(len(made))].pk if made else None
                rules = (
                    [
                        {"segment": earlier, "op": "in"},
                        {"field": "country", "op": "is_not", "value": rng.choice(COUNTRIES)},
                    ]
                    if earlier
                    else [{"field": "country", "op": "is", "value": COUNTRIES[0]}]
                )
            made.append(segment_create(name=name, conditions={"all": rules}))
    for segment in made:
        members_fill(segment)
    return [s.pk for s in made]


def members_fill(segment: Any) -> None:
    """What the segment's first recompute does, in one statement: its members
    as open stays. The entries' events are left out; they would be the
    account's past, processed long ago, and writing them took most of the time
    of building an account of hundreds of segments."""
    from django.db import connection
    from django.db.models import Count, OuterRef, Subquery
    from django.db.models.functions import Coalesce
    from django.utils import timezone

    from leads.models import Lead, Segment, SegmentMembership
    from segments.conditions import compile_tree

    wanted = Lead.objects.filter(compile_tree(segment.conditions)).values("id").order_by()
    sql, params = wanted.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO leads_segmentmembership (segment_id, lead_id, entered_at, source) "
            f"SELECT %s, w.id, %s, 'condition' FROM ({sql}) w",
            [segment.pk, timezone.now(), *params],
        )
    stays = (
        SegmentMembership.objects.filter(segment_id=OuterRef("pk"), left_at__isnull=True)
        .order_by()
        .values("segment_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    Segment.objects.filter(pk=segment.pk).update(
        member_count=Coalesce(Subquery(stays), 0), last_refreshed_at=timezone.now()
    )


def flows_create(count: int, *, segment_ids: Sequence[int], rng: random.Random) -> int:
    """The demo's six flows, then generated ones of each kind in turn."""
    from flows.lifecycle import flow_create, flow_publish
    from flows.models import Reentry
    from flows.templates_catalog import Canvas, flow_create_from_template
    from pages.management.commands.load_demo import _demo_flows

    made = 0
    for template in _demo_flows()[:count]:
        flow_publish(flow=flow_create_from_template(template=template))
        made += 1
    n = 0
    while made < count:
        canvas = Canvas()
        kind = n % 6
        score = {"points": 1 + n % 5, "category": "engagement", "reason": f"Flow {n}"}
        if kind == 0:
            trigger = canvas.node("t", "app.event", {"event": EXTRA_EVENTS[n % 10]}, row=0)
            canvas.edge(trigger, canvas.node("s", "score.adjust", score, row=1))
        elif kind == 1:
            url = {"op": "contains", "value": PAGES[n % len(PAGES)]}
            trigger = canvas.node("t", "page.visited", {"url": url}, row=0)
            canvas.edge(trigger, canvas.node("s", "score.adjust", score, row=1))
        elif kind == 2:
            config: dict[str, Any] = {
                "activity": "clicked",
                "campaign": CAMPAIGNS[n % len(CAMPAIGNS)],
            }
            trigger = canvas.node("t", "email.activity", config, row=0)
            canvas.edge(trigger, canvas.node("s", "score.adjust", score, row=1))
        elif kind == 3 and segment_ids:
            config = {"segment": segment_ids[n % len(segment_ids)]}
            trigger = canvas.node("t", "segment.entered", config, row=0)
            notify = {"title": "Follow up with {lead}", "priority": "normal"}
            canvas.edge(trigger, canvas.node("s", "sales.notify", notify, row=1))
        elif kind == 4:
            trigger = canvas.node("t", "app.event", {"event": EXTRA_EVENTS[(n + 3) % 10]}, row=0)
            wait = canvas.node("w", "wait", {"amount": 3, "unit": "days"}, row=1)
            canvas.edge(trigger, wait)
            canvas.edge(wait, canvas.node("s", "score.adjust", score, row=2))
        else:
            trigger = canvas.node("t", "app.event", {"event": EXTRA_EVENTS[(n + 6) % 10]}, row=0)
            rule = {"all": [{"field": "job_title", "op": "contains", "value": TITLE_WORDS[n % 8]}]}
            check = canvas.node("c", "condition", {"conditions": rule}, row=1)
            canvas.edge(trigger, check)
            canvas.edge(
                check, canvas.node("s", "score.adjust", {**score, "category": "fit"}, row=2), "yes"
            )
            canvas.edge(check, canvas.node("x", "exit", {}, row=2, column=1), "no")
        flow = flow_create(name=f"Flow {n:03d}", reentry=Reentry.ALWAYS, graph=canvas.graph())
        flow_publish(flow=flow)
        made += 1
        n += 1
    return made


def account_build(
    conninfo: str, *, leads: int, flows: int, segments: int, demo: bool, seed: int
) -> list[int]:
    rng = random.Random(seed)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE leads_lead, leads_event, leads_eventkey, leads_segment, leads_tag, "
            "leads_apikey, flows_flow RESTART IDENTITY CASCADE"
        )
    leads_create(conninfo, leads=leads, rng=rng)
    vacuum_analyze(conninfo, ["leads_lead", "leads_event", "leads_lead_tags"])
    segment_ids = segments_create(segments, demo=demo, rng=rng)
    flows_create(6 if demo else flows, segment_ids=segment_ids, rng=rng)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # The entries of the first recompute are the account's past: processed.
        conn.execute("UPDATE leads_event SET processed_at = now() WHERE processed_at IS NULL")
    # Statistics as a live account's autovacuum keeps them: the flows' tables
    # too, or the planner takes fifty flows for one and reads every open
    # enrollment of each for a lead's waits (3 ms instead of 0.6).
    vacuum_analyze(
        conninfo,
        [
            "leads_segmentmembership",
            "leads_event",
            "flows_flow",
            "flows_flowversion",
            "flows_triggersubscription",
            "flows_enrollment",
            "flows_steprun",
        ],
    )
    return segment_ids


# --- inbound events ---------------------------------------------------------------


def inbound_messages(*, count: int, leads: int, seed: int, tag: str) -> list[dict[str, Any]]:
    """Segment messages (and email activity) naming random leads; 2 % a new user."""
    rng = random.Random(seed)
    messages = []
    for n in range(count):
        kind = rng.random()
        who = user_id(rng.randrange(leads)) if rng.random() > 0.02 else f"new-{tag}-{n}"
        base = {"userId": who, "messageId": f"{tag}-{n}-{uuid.uuid4().hex[:8]}"}
        if kind < 0.45:
            event = rng.choice(APP_EVENTS * 2 + EXTRA_EVENTS)
            messages.append({**base, "type": "track", "event": event, "properties": {"n": n}})
        elif kind < 0.75:
            url = "https://example.com" + rng.choice(PAGES)
            messages.append({**base, "type": "page", "properties": {"url": url}})
        elif kind < 0.9:
            activity = rng.choice(["opened", "opened", "clicked"])
            messages.append(
                {**base, "type": f"email.{activity}", "campaign": rng.choice(CAMPAIGNS)}
            )
        else:
            traits: dict[str, Any] = (
                {"job_title": rng.choice(TITLES)}
                if rng.random() < 0.5
                else {"company_size": rng.choice([5, 20, 60, 300])}
            )
            messages.append({**base, "type": "identify", "traits": traits})
    return messages


def to_event(message: dict[str, Any]) -> Any:
    from django.utils import timezone

    from leads.services.email_events import email_event_build
    from leads.services.ingest import segment_message_to_event

    if message["type"].startswith("email."):
        who = message["userId"]
        return email_event_build(
            type_=message["type"].removeprefix("email."),
            email=f"{who}@example.com",
            provider="bench",
            event_id=message["messageId"],
            occurred_at=None,
            campaign=message["campaign"],
        )
    return segment_message_to_event(message, type_=None, received_at=timezone.now(), sent_at=None)


def backlog_record(messages: Sequence[dict[str, Any]], *, enqueue: bool) -> list[int]:
    from leads.services.events import derived_collected, events_record

    ids: list[int] = []
    for start in range(0, len(messages), BATCH):
        events = [to_event(m) for m in messages[start : start + BATCH]]
        if enqueue:
            ids += events_record(events=events)
        else:
            with derived_collected():
                ids += events_record(events=events)
    return ids


# The tables processing writes: a live account's autovacuum keeps their
# statistics; after a build they describe empty tables.
PROCESSING_TABLES = [
    "leads_lead",
    "leads_event",
    "leads_eventkey",
    "leads_segmentmembership",
    "leads_task",
    "flows_enrollment",
    "flows_steprun",
    "flows_wakeup",
    "scoring_leadscore",
    "scoring_scorechange",
]


def past_process(conninfo: str, messages: Sequence[dict[str, Any]]) -> None:
    """Give the account a recent past before the clock runs: ``messages``
    processed in this process, then the tables they wrote analyzed and the
    server checkpointed. Built from scratch, the flows' tables are empty, and
    the workers planned each statement once on the statistics of empty tables
    (a live account's tables are analyzed as they grow, and an ANALYZE makes
    every session plan again): with 50 flows that cost a third of the
    throughput of a first run. The checkpoint spares the run the build's
    dirty pages."""
    from django.db import connection

    from leads.services.events import events_process

    ids = backlog_record(messages, enqueue=False)
    for start in range(0, len(ids), BATCH):
        events_process(event_ids=ids[start : start + BATCH])
    connection.close()
    vacuum_analyze(conninfo, PROCESSING_TABLES)
    with (
        psycopg.connect(conninfo, autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CHECKPOINT")


def statements_per_event(messages: Sequence[dict[str, Any]]) -> float:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from leads.services.events import events_process

    ids = backlog_record(messages, enqueue=False)
    with CaptureQueriesContext(connection) as captured:
        events_process(event_ids=ids)
    return len(captured.captured_queries) / len(messages)


# --- measuring ------------------------------------------------------------------------


def wait_processed(conninfo: str, *, timeout: float, workers: Sequence[Worker]) -> None:
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
                detail = "\n".join(w.output() for w in workers)
                raise SystemExit(f"{failed} events failed\n{detail}")
            if not waiting:
                return
            for worker in workers:
                if not worker.alive():
                    raise SystemExit(f"a worker exited\n{worker.output()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{waiting} events still waiting after {timeout:.0f} s")
            if time.monotonic() - shown > 15:
                print(f"  {waiting:,} events waiting…", flush=True)
                shown = time.monotonic()
            time.sleep(0.25)


def verify(conninfo: str) -> list[str]:
    from leads.models import Segment, SegmentKind
    from scoring.services import scoring_mismatches
    from segments.services import _differences

    errors = []
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE processed_at IS NULL), "
            "count(*) FILTER (WHERE error <> '') FROM leads_event"
        ).fetchone()
    assert row is not None
    if row[0]:
        errors.append(f"{row[0]} events unprocessed")
    if row[1]:
        errors.append(f"{row[1]} events with an error")
    mismatches = scoring_mismatches()
    if mismatches:
        errors.append(f"scoring_mismatches(): {len(mismatches)}, e.g. {mismatches[:3]}")
    for segment in Segment.objects.filter(kind=SegmentKind.DYNAMIC).order_by("pk"):
        joiners, leavers = _differences(segment)
        if joiners or leavers:
            errors.append(
                f"segment {segment.name!r}: {len(joiners)} leads missing, {len(leavers)} too many"
            )
    return errors


@dataclass
class Run:
    label: str
    flows: int
    segments: int
    workers: int
    inbound: int = 0
    seconds: float = 0.0
    derived: int = 0
    statements: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    offered: float = 0.0
    achieved: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inbound / self.seconds if self.seconds else 0.0


def offer(
    *, port: int, key: str, messages: Sequence[dict[str, Any]], rate: float, clients: int
) -> tuple[list[tuple[str, float]], list[str]]:
    """One message per request on a fixed schedule; (messageId, accepted at) each."""
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    results: list[tuple[str, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_index = 0
    started = time.perf_counter() + 0.2

    def client() -> None:
        nonlocal next_index
        with requests.Session() as session:
            while True:
                with lock:
                    index = next_index
                    next_index += 1
                if index >= len(messages):
                    return
                message = messages[index]
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                url = f"http://{HOST}:{port}/v1/{message['type']}"
                try:
                    response = session.post(
                        url, data=json.dumps(message), headers=headers, timeout=30
                    )
                except requests.RequestException as exc:
                    with lock:
                        errors.append(f"{index}: {exc}"[:300])
                    continue
                accepted = time.time()
                with lock:
                    if response.status_code >= 300:
                        errors.append(f"{index}: HTTP {response.status_code}")
                    else:
                        results.append((message["messageId"], accepted))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def latency_phase(
    conninfo: str,
    run: Run,
    *,
    env: dict[str, str],
    workers: Sequence[Worker],
    args: argparse.Namespace,
) -> None:
    from leads.models import ApiScope
    from leads.services.api_keys import api_key_create

    _, key = api_key_create(name="bench", scope=ApiScope.INGEST)
    server = Gunicorn(env=env, port=args.port, threads=4)
    try:
        server.wait_healthy()
        warm = [
            m
            for m in inbound_messages(count=200, leads=args.leads, seed=args.seed + 7, tag="w")
            if not m["type"].startswith("email.")
        ][:16]
        offer(port=args.port, key=key, messages=warm, rate=20, clients=args.clients)
        wait_processed(conninfo, timeout=120, workers=workers)
        count = int(args.rate * args.latency_seconds * 1.3)
        messages = [
            m
            for m in inbound_messages(count=count, leads=args.leads, seed=args.seed + 8, tag="l")
            if not m["type"].startswith("email.")
        ][: int(args.rate * args.latency_seconds)]
        print(f"  offering {args.rate:g} events/s for {args.latency_seconds:g} s…", flush=True)
        sent, errors = offer(
            port=args.port, key=key, messages=messages, rate=args.rate, clients=args.clients
        )
        run.errors += errors[:5]
        wait_processed(conninfo, timeout=600, workers=workers)
    finally:
        server.stop()
    with psycopg.connect(conninfo) as conn:
        processed: dict[str, Any] = dict(
            conn.execute(
                "SELECT idempotency_key, extract(epoch FROM processed_at) FROM leads_event "
                "WHERE source = 'segment' AND idempotency_key = ANY(%s)",
                [[m for m, _ in sent]],
            ).fetchall()
        )
    visible = [(float(processed[m]) - at) * 1000 for m, at in sent if m in processed]
    run.offered = args.rate
    if len(sent) > 1:
        times = sorted(at for _, at in sent)
        run.achieved = (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else 0.0
    run.p50_ms = percentile(visible, 50)
    run.p95_ms = percentile(visible, 95)


def measure(
    conninfo: str,
    *,
    args: argparse.Namespace,
    env: dict[str, str],
    broker: redis.Redis,
    flows: int,
    segments: int,
    workers_counts: Sequence[int],
) -> list[Run]:
    label = "demo" if args.demo else f"{flows} flows, {segments} segments"
    print(f"building the account: {label}, {args.leads:,} leads…", flush=True)
    started = time.perf_counter()
    account_build(
        conninfo, leads=args.leads, flows=flows, segments=segments, demo=args.demo, seed=args.seed
    )
    broker.flushdb()
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    statements = statements_per_event(
        inbound_messages(count=40, leads=args.leads, seed=args.seed + 1, tag="s")
    )
    if args.past:
        past_process(
            conninfo,
            inbound_messages(count=args.past, leads=args.leads, seed=args.seed + 2, tag="p"),
        )
    runs = []
    for round_, workers_count in enumerate(workers_counts):
        run = Run(
            label=label,
            flows=6 if args.demo else flows,
            segments=5 if args.demo else segments,
            workers=workers_count,
            statements=statements,
        )
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) FROM leads_event").fetchone()
        first_id = int(row[0]) if row else 0
        messages = inbound_messages(
            count=args.events, leads=args.leads, seed=args.seed + 10 + round_, tag=f"b{round_}"
        )
        backlog_record(messages, enqueue=True)
        print(f"  {len(messages):,} events queued; {workers_count} worker(s)…", flush=True)
        workers = [
            Worker(env=env, concurrency=args.concurrency, index=i) for i in range(workers_count)
        ]
        try:
            wait_processed(conninfo, timeout=120 + len(messages), workers=workers)
            with psycopg.connect(conninfo) as conn:
                row = conn.execute(
                    "SELECT extract(epoch FROM max(processed_at) - min(processed_at)), "
                    "count(*) FILTER (WHERE source = 'system'), "
                    "count(*) FILTER (WHERE source <> 'system') FROM leads_event WHERE id > %s",
                    [first_id],
                ).fetchone()
            assert row is not None
            run.seconds, run.derived, run.inbound = float(row[0] or 0), int(row[1]), int(row[2])
            print(
                f"  {run.rate:,.1f} inbound events/s ({run.seconds:.1f} s), "
                f"{run.derived / max(run.inbound, 1):.2f} derived each",
                flush=True,
            )
            if args.latency_seconds > 0 and round_ == 0:
                latency_phase(conninfo, run, env=env, workers=workers, args=args)
                print(f"  p95 accepted → score visible {run.p95_ms:,.0f} ms", flush=True)
        finally:
            for worker in workers:
                worker.stop()
        run.errors += verify(conninfo)
        runs.append(run)
    return runs


# --- the record ---------------------------------------------------------------------


def table(runs: Sequence[Run]) -> str:
    base = runs[0]
    lines = [
        "| account | workers | inbound events | seconds | inbound events/s | ratio to first "
        "| derived per inbound | statements per inbound | p95 accepted → score visible |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        latency = (
            f"{run.p95_ms:,.0f} ms (p50 {run.p50_ms:,.0f}) at {run.achieved:.0f}/s offered"
            if run.p95_ms is not None
            else "-"
        )
        lines.append(
            f"| {run.label} | {run.workers} | {run.inbound:,} | {run.seconds:.1f} | "
            f"{run.rate:,.1f} | {run.rate / base.rate if base.rate else 0:.2f} | "
            f"{run.derived / max(run.inbound, 1):.2f} | {run.statements:.0f} | {latency} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Throughput of a realistic account (many flows and segments) with real workers."
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--large", action="store_true", help="100,000 leads")
    parser.add_argument("--flows", default="10", help="comma-separated flow counts (default 10)")
    parser.add_argument("--segments", default="5,50,200,500", help="comma-separated segment counts")
    parser.add_argument("--demo", action="store_true", help="the demo's flows and segments")
    parser.add_argument("--events", type=int, default=2_000, help="inbound events per run")
    parser.add_argument(
        "--past",
        type=int,
        default=1_000,
        help="events processed before the clock runs, the tables they write then analyzed",
    )
    parser.add_argument("--workers", default="1", help="comma-separated worker counts (default 1)")
    parser.add_argument("--concurrency", type=int, default=1, help="children per worker")
    parser.add_argument("--rate", type=float, default=20.0, help="events/s offered for latency")
    parser.add_argument("--latency-seconds", type=float, default=0.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--port", type=int, default=8104)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--note", default="", help="a sentence for the record")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    if args.large:
        args.leads = 100_000
    args.flow_counts = [int(x) for x in args.flows.split(",")]
    args.segment_counts = [int(x) for x in args.segments.split(",")]
    args.worker_counts = [int(x) for x in args.workers.split(",")]
    if args.demo:
        args.flow_counts, args.segment_counts = [6], [5]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    loads = {"at the start": os.getloadavg()[0]}
    conninfo = pg_conninfo.make_conninfo(args.database_url)
    database_ensure(conninfo)
    broker = broker_connect(args.redis_url)
    broker.flushdb()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as data_dir:
        env = app_env(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=args.database_url,
            REDIS_URL=args.redis_url,
            LEADFLOW_DATA_DIR=data_dir,
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        print("migrating…", flush=True)
        manage(env, "migrate", "--noinput")
        django_setup(env)
        for flows in args.flow_counts:
            for segments in args.segment_counts:
                runs += measure(
                    conninfo,
                    args=args,
                    env=env,
                    broker=broker,
                    flows=flows,
                    segments=segments,
                    workers_counts=args.worker_counts,
                )
    broker.flushdb()
    loads["at the end"] = os.getloadavg()[0]
    info = machine()
    pg = postgres_settings(conninfo, ("server_version", "shared_buffers", "synchronous_commit"))
    now = dt.datetime.now().astimezone()
    text = (
        f"## account: {now:%Y-%m-%d %H:%M %Z}\n\n"
        "`bench/account.py`: generated accounts (see its docstring: leads with a few "
        "weeks of history; the demo's flows then generated ones; dynamic segments of "
        "fields, tags, scores and grades, activity counts in windows, segment-in-segment). "
        f"{args.events:,} inbound events per run (app events, pages, email opens and clicks, "
        "identify calls; 2 % new users) queued through `events_record` in batches of "
        f"{BATCH}, then Celery worker processes of concurrency {args.concurrency} start; "
        "events/s from the first `processed_at` to the last. Statements per inbound event "
        "as Django logs them in-process (40 events, their derived ones included). Every "
        "run checked: all processed without error, ledger = scores, every segment equal "
        "to a full recompute." + (f" {args.note}" if args.note else "") + "\n\n"
        f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; "
        f"Python {info['python']}, PostgreSQL {pg['server_version'].split()[0]} "
        f"(shared_buffers {pg['shared_buffers']}, synchronous_commit "
        f"{pg['synchronous_commit']}), Redis, all on one host, shared with other work and "
        "busy: compare ratios within this run; load average (1 min) "
        + ", ".join(f"{v:.2f} {k}" for k, v in loads.items())
        + "\n"
        f"- parameters: --leads {args.leads} "
        + ("--demo" if args.demo else f"--flows {args.flows} --segments {args.segments}")
        + f" --events {args.events} --workers {args.workers} "
        f"--concurrency {args.concurrency} --rate {args.rate:g} --latency-seconds "
        f"{args.latency_seconds:g} --seed {args.seed}; whole run "
        f"{(time.perf_counter() - began) / 60:.1f} min\n\n"
        f"{table(runs)}\n"
    )
    print("\n" + text)
    errors = [f"{r.label} ({r.workers} workers): {e}" for r in runs for e in r.errors]
    if errors:
        print(f"\n{len(errors)} errors:", *errors[:20], sep="\n  ", file=sys.stderr)
        return 1
    if args.record:
        record(text)
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

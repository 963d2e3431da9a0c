"""Server time of the web app's heaviest pages on a large PostgreSQL database.

A scratch database is filled with set-based SQL (``INSERT … SELECT … FROM
generate_series``, every "random" value a hash of the row number and the seed,
so a seed always makes the same data): leads with owners, stages, scores and
tags; events over 180 days (page views, product and email events, and the
``score.changed``, ``grade.changed`` and ``field.changed`` events the app
derives); score changes and category scores, notes, tasks, static segments with
memberships, flows with enrollments, and notifications. One lead has 10,000
events, 10,000 score changes and 10,000 notes of its own.

The pages are then requested in-process through Django's test ``Client`` (the
whole request: middleware, session, views, templates), logged in as a marketer
or a sales rep, after a warm-up, in rounds that take every page once, so noise
on the shared machine falls on all of them alike. Each page's queries are
counted on one extra request, with the slowest query's time.

    .venv/bin/python bench/pages.py                  # 100,000 leads, 5,000,000 events
    .venv/bin/python bench/pages.py --record         # the same, recorded in RESULTS.md
    .venv/bin/python bench/pages.py --leads 10000 --events 200000 --runs 10

A database already holding the data of the same parameters and seed is reused
(the generation is skipped); ``--regenerate`` forces a new one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from machine import machine
from psycopg import conninfo as pg_conninfo
from psycopg import sql
from segmentation import defer_indexes
from stack import (
    RESULTS,
    ROOT,
    app_migrated,
    database_ensure,
    django_setup,
    postgres_settings,
    record,
    vacuum_analyze,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadflow_bench_pages"
GOAL_P95_MS = 150.0
# Bump when the generated data changes, so an older database is not reused.
DATA_VERSION = 2
META_TABLE = "bench_pages_meta"
BIG_LEAD = 1
BIG_ROWS = 10_000
REPS = 10
SEGMENTS = ("Pricing visitors", "Webinar 2026", "Trial users", "Enterprise", "Newsletter")
FLOWS = ("Welcome", "Nurture", "Pricing follow-up", "Trial onboarding", "Re-engage", "Hot lead")
TAGS = (
    "newsletter", "webinar-2026", "trial", "partner", "event:saastr", "beta", "enterprise",
    "agency", "churn-risk", "vip", "referral", "podcast", "ebook:scoring", "imported:crm",
)  # fmt: skip
LOADED_TABLES = (
    "leads_lead",
    "leads_event",
    "scoring_scorechange",
    "scoring_leadscore",
    "leads_note",
    "leads_task",
    "leads_segmentmembership",
    "flows_enrollment",
    "flows_steprun",
    "leads_lead_tags",
    "leads_notification",
)

# A uniform number in [0, 1) for row ``i`` and purpose ``k``: a hash, not random(),
# so the data does not depend on plan order or parallel workers.
RANDOM_FUNCTION = """
CREATE FUNCTION pg_temp.rnd(i bigint, k integer, seed bigint) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT (hashint8extended(i * 97 + k, seed) & 9007199254740991)::float8 / 9007199254740992.0 $$
"""

FIRST_NAMES = [
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Mia", "Lucas",
    "Chloé", "Mateo", "Zoë", "Søren", "Aisha", "Hiroshi", "Priya", "José", "Fatima", "Ingrid",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Johnson", "García", "Müller", "Rossi", "Nguyen", "Kowalski", "O'Brien",
    "Dubois", "Tanaka", "Patel", "Silva", "Andersson", "Kim", "Okafor", "Novak", "Schmidt",
]  # fmt: skip
COMPANIES = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Tyrell", "Wonka",
    "Aperture", "Nordlicht", "Bluebird", "Kestrel", "Northwind", "Contoso", "Fabrikam",
]  # fmt: skip
TITLES = [
    "CEO", "VP Marketing", "Head of Growth", "Marketing Manager", "Product Manager",
    "Software Engineer", "Data Analyst", "Account Executive", "Consultant", "",
]  # fmt: skip
REASONS = [
    "Visited pricing", "Opened an email", "Clicked an email", "Booked a call",
    "Signed up for trial", "Decision maker", "Company size fit", "No activity for 30 days",
]  # fmt: skip
PAGES = ["/", "/pricing", "/features", "/features/lead-scoring", "/blog/from-mql-to-sql", "/docs"]
TRACKS = ["Logged in", "Created project", "Created flow", "Invited teammate", "Booked a call"]


def _array(values: Sequence[str]) -> sql.Composable:
    return sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(map(sql.Literal, values)))


def _pick(values: Sequence[str], r: str) -> sql.Composable:
    """SQL picking one of ``values`` by the uniform number expression ``r``."""
    return sql.SQL("({})[1 + floor({} * {})::int]").format(
        _array(values), sql.SQL(r), sql.Literal(len(values))
    )


# --- generation -------------------------------------------------------------------


@dataclass
class Generated:
    anchor: dt.datetime
    seconds: float
    reused: bool
    counts: dict[str, int]


def _users() -> dict[str, Any]:
    """The bench's users (made through Django, in their role groups)."""
    from django.contrib.auth.models import Group, User

    def user(name: str, role: str) -> User:
        account, _ = User.objects.get_or_create(
            username=name, defaults={"email": f"{name}@bench.example"}
        )
        account.groups.set([Group.objects.get_or_create(name=role)[0]])
        return account

    return {
        "admin": user("bench-admin", "admin"),
        "marketer": user("bench-marketer", "marketer"),
        "reps": [user(f"bench-sales-{n:02d}", "sales") for n in range(1, REPS + 1)],
    }


def existing(conninfo: str, params: dict[str, Any]) -> dt.datetime | None:
    """The anchor of data made earlier with the same parameters, or None."""
    with psycopg.connect(conninfo) as conn:
        found = conn.execute("SELECT to_regclass(%s)", [META_TABLE]).fetchone()
        if not found or found[0] is None:
            return None
        row = conn.execute(
            sql.SQL("SELECT params, anchor FROM {}").format(sql.Identifier(META_TABLE))
        ).fetchone()
        if row is None or row[0] != params:
            return None
        leads = conn.execute("SELECT count(*) FROM leads_lead").fetchone()
        if not leads or leads[0] != params["leads"]:
            return None
        return row[1]


def generate(
    conninfo: str, *, leads: int, events: int, seed: int, users: dict[str, Any]
) -> Generated:
    anchor = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    rep_ids = [u.pk for u in users["reps"]]
    marketer_id = users["marketer"].pk
    began = time.perf_counter()
    n = sql.Literal(leads)
    seed_ = sql.Literal(seed)
    at = sql.Literal(anchor)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '512MB'")
        cur.execute(RANDOM_FUNCTION)
        cur.execute(
            "TRUNCATE leads_lead, leads_segment, flows_flow, leads_tag, leads_notification "
            "RESTART IDENTITY CASCADE"
        )
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(META_TABLE)))
        restore = defer_indexes(cur, LOADED_TABLES)
        categories: dict[str, int] = dict(
            cur.execute("SELECT key, id FROM scoring_scorecategory").fetchall()
        )
        fit, engagement = categories["fit"], categories["engagement"]

        def step(label: str, statement: sql.Composed) -> None:
            t = time.perf_counter()
            cur.execute(statement)
            print(f"  {label}: {cur.rowcount:,} rows, {time.perf_counter() - t:.0f} s", flush=True)

        # Leads: six in ten have one of the reps as owner; scores skewed low (about
        # one in six is hot); created over a year.
        score = sql.SQL("floor(100 * pg_temp.rnd(i, 1, {s}) ^ 4)::int").format(s=seed_)
        step(
            "leads",
            sql.SQL(
                """
                INSERT INTO leads_lead (id, email, external_id, first_name, last_name, phone,
                  job_title, company_name, company_size, industry, country, city, stage,
                  unsubscribed, custom_fields, raw_traits, created_at, updated_at,
                  last_activity_at, owner_id, grade, score, mql_at, source, source_detail)
                SELECT i, 'lead' || i || '@bench.example', NULL, {first}, {last}, '',
                  {title}, {company} || ' ' || (i % 97), (10 + i % 5000), 'Software', 'Germany',
                  'Berlin',
                  CASE WHEN s >= 50 THEN (ARRAY['mql','sql','customer'])[1 + i % 3]
                       ELSE (ARRAY['subscriber','subscriber','lead','disqualified'])[1 + i % 4]
                  END,
                  false, '{{}}', '{{}}', c, c, {at} - pg_temp.rnd(i, 4, {s}) * interval '90 days',
                  CASE WHEN pg_temp.rnd(i, 5, {s}) < 0.6
                       THEN ({reps})[1 + floor(pg_temp.rnd(i, 6, {s}) * {nreps})::int] END,
                  CASE WHEN s >= 50 THEN 'hot' WHEN s >= 20 THEN 'warm' ELSE 'cold' END, s,
                  CASE WHEN s >= 50 THEN c + ({at} - c) * pg_temp.rnd(i, 11, {s}) END, '', ''
                FROM (SELECT i, {score} AS s,
                        {at} - ({n} - i + pg_temp.rnd(i, 3, {s})) / {n} * interval '365 days'
                          AS c
                      FROM generate_series(1, {n}) AS i) AS g
                """
            ).format(
                first=_pick(FIRST_NAMES, f"pg_temp.rnd(i, 7, {seed})"),
                last=_pick(LAST_NAMES, f"pg_temp.rnd(i, 8, {seed})"),
                title=_pick(TITLES, f"pg_temp.rnd(i, 9, {seed})"),
                company=_pick(COMPANIES, f"pg_temp.rnd(i, 10, {seed})"),
                reps=sql.SQL("ARRAY[{}]").format(sql.SQL(", ").join(map(sql.Literal, rep_ids))),
                nreps=sql.Literal(len(rep_ids)),
                score=score,
                at=at,
                s=seed_,
                n=n,
            ),
        )
        cur.execute(
            "UPDATE leads_lead SET first_name = 'Busy', last_name = 'Lead', score = 300, "
            "grade = 'hot', stage = 'sql', owner_id = %s WHERE id = %s",
            [rep_ids[0], BIG_LEAD],
        )

        # Events: the big lead's 10,000, then the rest over the other leads, the
        # low ids busier (an 80/20-like skew), over 180 days.
        lead_of = sql.SQL(
            "CASE WHEN i <= {big} THEN {lead} "
            "ELSE 2 + floor(({n} - 1) * pg_temp.rnd(i, 20, {s}) ^ 2)::bigint END"
        ).format(big=sql.Literal(BIG_ROWS), lead=sql.Literal(BIG_LEAD), n=n, s=seed_)
        step(
            "events",
            sql.SQL(
                """
                INSERT INTO leads_event (lead_id, type, name, properties, context, user_id,
                  anonymous_id, email, occurred_at, received_at, source, idempotency_key,
                  processed_at, error, attempts, depth)
                SELECT lead_id, type,
                  CASE type WHEN 'page' THEN '' WHEN 'track' THEN {track}
                    WHEN 'score.changed' THEN 'engagement' WHEN 'grade.changed' THEN grade
                    WHEN 'field.changed' THEN 'stage' ELSE 'Newsletter' END,
                  CASE type
                    WHEN 'page' THEN jsonb_build_object('path', {page})
                    WHEN 'score.changed' THEN jsonb_build_object('delta', d, 'from', f,
                      'to', f + d, 'category', 'engagement', 'reason', 'Visited pricing')
                    WHEN 'grade.changed' THEN jsonb_build_object('from', 'warm', 'to', grade,
                      'score', 50)
                    WHEN 'field.changed' THEN jsonb_build_object('field', 'stage',
                      'from', 'lead', 'to', 'mql')
                    ELSE '{{}}'::jsonb END,
                  '{{}}', '', '', '', t, t, 'bench', 'bench:' || i, t, '', 1, 0
                FROM (
                  SELECT i, {lead_of} AS lead_id,
                    CASE WHEN r < 0.50 THEN 'page' WHEN r < 0.70 THEN 'track'
                         WHEN r < 0.85 THEN 'email.opened' WHEN r < 0.90 THEN 'email.clicked'
                         WHEN r < 0.97 THEN 'score.changed' WHEN r < 0.985 THEN 'grade.changed'
                         ELSE 'field.changed' END AS type,
                    (ARRAY['warm','hot','cold'])[1 + i % 3] AS grade,
                    floor(pg_temp.rnd(i, 22, {s}) * 60)::int AS f,
                    1 + floor(pg_temp.rnd(i, 23, {s}) * 20)::int AS d,
                    {at} - pg_temp.rnd(i, 24, {s}) * interval '180 days' AS t
                  FROM (SELECT i, pg_temp.rnd(i, 21, {s}) AS r
                        FROM generate_series(1, {e}) AS i) AS g
                ) AS x
                ORDER BY t
                """
            ).format(
                track=_pick(TRACKS, f"pg_temp.rnd(i, 25, {seed})"),
                page=_pick(PAGES, f"pg_temp.rnd(i, 26, {seed})"),
                lead_of=lead_of,
                at=at,
                s=seed_,
                e=sql.Literal(events),
            ),
        )

        # Score changes: the big lead's 10,000 and 30 a lead on average for the rest.
        changes = max(leads * 3, BIG_ROWS * 2)
        step(
            "score changes",
            sql.SQL(
                """
                INSERT INTO scoring_scorechange (lead_id, delta, category_id, reason,
                  source, source_key, created_by_id, created_at, occurred_at)
                SELECT *, t FROM (SELECT {lead_of},
                  CASE WHEN pg_temp.rnd(i, 31, {s}) < 0.15
                       THEN -1 - floor(pg_temp.rnd(i, 32, {s}) * 40)::int
                       ELSE 1 + floor(pg_temp.rnd(i, 32, {s}) ^ 3 * 60)::int END,
                  CASE WHEN i % 4 = 0 THEN {fit} ELSE {engagement} END, {reason},
                  CASE WHEN i % 5 = 0 THEN 'manual' ELSE 'flow' END,
                  CASE WHEN i % 5 = 0 THEN 'manual:bench-' || i
                       ELSE 'step:' || (1000000000 + i) END,
                  CASE WHEN i % 5 = 0 THEN {marketer} END,
                  {at} - pg_temp.rnd(i, 33, {s}) * interval '180 days' AS t
                FROM generate_series(1, {c}) AS i) AS g
                ORDER BY t
                """
            ).format(
                lead_of=lead_of,
                reason=_pick(REASONS, f"pg_temp.rnd(i, 34, {seed})"),
                fit=sql.Literal(fit),
                engagement=sql.Literal(engagement),
                marketer=sql.Literal(marketer_id),
                at=at,
                s=seed_,
                c=sql.Literal(changes),
            ),
        )
        step(
            "category scores",
            sql.SQL(
                "INSERT INTO scoring_leadscore (lead_id, category_id, score) "
                "SELECT id, {engagement}, score FROM leads_lead"
            ).format(engagement=sql.Literal(engagement)),
        )
        step(
            "notes",
            sql.SQL(
                """
                INSERT INTO leads_note (lead_id, author_id, body, created_at)
                SELECT {lead_of}, ({reps})[1 + i % {nreps}],
                  'Call ' || i || ': talked about pricing and the next steps.',
                  {at} - pg_temp.rnd(i, 41, {s}) * interval '365 days' AS t
                FROM generate_series(1, {c}) AS i
                ORDER BY t
                """
            ).format(
                lead_of=lead_of,
                reps=sql.SQL("ARRAY[{}]").format(sql.SQL(", ").join(map(sql.Literal, rep_ids))),
                nreps=sql.Literal(len(rep_ids)),
                at=at,
                s=seed_,
                c=sql.Literal(BIG_ROWS + leads // 2),
            ),
        )
        # Tasks: a third of the leads have one, for their owner (or the first rep);
        # seven in ten done, the open ones due within two weeks either side.
        step(
            "tasks",
            sql.SQL(
                """
                INSERT INTO leads_task (lead_id, assignee_id, title, due_at, priority, status,
                  source_key, created_at, completed_at, closed_reason)
                SELECT l.id, coalesce(l.owner_id, {rep}), 'Follow up with lead ' || l.id,
                  {at} + (pg_temp.rnd(l.id, 51, {s}) - 0.5) * interval '28 days', 'normal',
                  CASE WHEN pg_temp.rnd(l.id, 52, {s}) < 0.7 THEN 'done' ELSE 'open' END,
                  NULL, {at} - interval '30 days', NULL, ''
                FROM leads_lead AS l WHERE l.id % 3 = 0 OR l.id = {big}
                """
            ).format(rep=sql.Literal(rep_ids[0]), at=at, s=seed_, big=sql.Literal(BIG_LEAD)),
        )
        cur.execute(
            sql.SQL(
                "INSERT INTO leads_segment (name, description, kind, conditions, time_relative, "
                "member_count, created_at, updated_at) "
                "SELECT name, '', 'static', '{{}}', false, 0, {at}, {at} "
                "FROM unnest({names}) AS name"
            ).format(at=at, names=_array(SEGMENTS))
        )
        # Memberships: segment k holds about one lead in 2k+3, plus a closed
        # earlier stay for some.
        step(
            "memberships",
            sql.SQL(
                """
                INSERT INTO leads_segmentmembership (segment_id, lead_id, entered_at, left_at,
                  source)
                SELECT s.id, l.id, {at} - interval '60 days', stay.left_at, 'manual'
                FROM leads_segment AS s
                JOIN leads_lead AS l
                  ON pg_temp.rnd(l.id, 60 + s.id::int, {seed}) < 1.0 / (2 * s.id + 1)
                CROSS JOIN LATERAL
                  (VALUES (NULL::timestamptz), ({at} - interval '90 days')) AS stay(left_at)
                WHERE stay.left_at IS NULL OR l.id % 5 = 0
                """
            ).format(at=at, seed=seed_),
        )
        cur.execute(
            "UPDATE leads_segment AS s SET member_count = (SELECT count(*) FROM "
            "leads_segmentmembership AS m WHERE m.segment_id = s.id AND m.left_at IS NULL)"
        )
        cur.execute(
            sql.SQL(
                "INSERT INTO leads_tag (name) SELECT unnest({tags}); "
                "INSERT INTO leads_lead_tags (lead_id, tag_id) "
                "SELECT l.id, t.id FROM leads_lead AS l JOIN leads_tag AS t "
                "ON pg_temp.rnd(l.id, 80 + t.id::int, {s}) < 0.1 OR l.id = {big}"
            ).format(tags=_array(TAGS), s=seed_, big=sql.Literal(BIG_LEAD))
        )
        graph = json.dumps({"nodes": [], "edges": []})
        cur.execute(
            sql.SQL(
                "INSERT INTO flows_flow (name, description, status, reentry, draft, "
                "draft_revision, created_at, updated_at, created_by_id) "
                "SELECT name, '', 'active', 'always', {graph}, 0, {at}, {at}, {m} "
                "FROM unnest({names}) AS name; "
                "INSERT INTO flows_flowversion (flow_id, number, graph, created_at) "
                "SELECT id, 1, {graph}, {at} FROM flows_flow; "
                "UPDATE flows_flow AS f SET published_id = v.id FROM flows_flowversion AS v "
                "WHERE v.flow_id = f.id"
            ).format(
                graph=sql.Literal(graph), at=at, m=sql.Literal(marketer_id), names=_array(FLOWS)
            )
        )
        # Enrollments: two a lead on average over 180 days, the first flows busier;
        # the big lead's 200 with two step runs each.
        step(
            "enrollments",
            sql.SQL(
                """
                INSERT INTO flows_enrollment (flow_id, version_id, lead_id, trigger_node, status,
                  created_at, finished_at)
                SELECT v.flow_id, v.id, x.lead_id, 't1', 'completed', x.t, x.t
                FROM (
                  SELECT CASE WHEN i <= 200 THEN {big}
                              ELSE 2 + floor(({n} - 1) * pg_temp.rnd(i, 91, {s}))::bigint END
                           AS lead_id,
                         1 + floor(pg_temp.rnd(i, 92, {s}) ^ 2 * {flows})::int AS k,
                         {at} - pg_temp.rnd(i, 93, {s}) * interval '180 days' AS t
                  FROM generate_series(1, {c}) AS i) AS x
                JOIN flows_flowversion AS v
                  ON v.flow_id = (SELECT min(id) FROM flows_flow) + x.k - 1
                ORDER BY x.t
                """
            ).format(
                big=sql.Literal(BIG_LEAD),
                n=n,
                s=seed_,
                flows=sql.Literal(len(FLOWS)),
                at=at,
                c=sql.Literal(leads * 2),
            ),
        )
        # The big lead's flow score changes point at real step runs, as the
        # engine's ``step:<id>`` keys do: one trigger step and 40 score steps per
        # enrollment (the others' keys point at no step, as after a flow's deletion).
        step(
            "step runs",
            sql.SQL(
                """
                INSERT INTO flows_steprun (enrollment_id, node_id, node_type, visit, status,
                  attempts, output, error, started_at, finished_at)
                SELECT e.id, node.id, node.type, visit, 'completed', 1, '{{}}', '',
                  e.created_at, e.created_at
                FROM flows_enrollment AS e
                CROSS JOIN (VALUES ('t1', 'trigger.event', 1), ('n1', 'score.adjust', 40))
                  AS node(id, type, visits)
                CROSS JOIN LATERAL generate_series(0, node.visits - 1) AS visit
                WHERE e.lead_id = {big}
                """
            ).format(big=sql.Literal(BIG_LEAD)),
        )
        step(
            "the big lead's flow score changes keyed by their steps",
            sql.SQL(
                """
                UPDATE scoring_scorechange AS c SET source_key = 'step:' || s.id
                FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM scoring_scorechange
                      WHERE lead_id = {big} AND source = 'flow') AS c2
                JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM flows_steprun
                      WHERE node_id = 'n1') AS s ON s.n = c2.n
                WHERE c.id = c2.id
                """
            ).format(big=sql.Literal(BIG_LEAD)),
        )
        cur.execute(
            sql.SQL(
                "INSERT INTO leads_notification (user_id, lead_id, message, source_key, "
                "created_at, read_at) "
                "SELECT ({reps})[1 + i % {nreps}], 1 + i, 'Lead ' || (1 + i) || ' turned hot', "
                "NULL, {at}, CASE WHEN i % 4 = 0 THEN NULL ELSE {at} END "
                "FROM generate_series(1, 2000) AS i"
            ).format(
                reps=sql.SQL("ARRAY[{}]").format(sql.SQL(", ").join(map(sql.Literal, rep_ids))),
                nreps=sql.Literal(len(rep_ids)),
                at=at,
            )
        )
        t = time.perf_counter()
        for statement in restore:
            cur.execute(statement)
        for table in (*LOADED_TABLES, "leads_segment", "leads_tag", "flows_flow"):
            cur.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({t}, 'id'), "
                    "(SELECT coalesce(max(id), 0) + 1 FROM {i}), false)"
                ).format(t=sql.Literal(table), i=sql.Identifier(table))
            )
        print(f"  indexes and constraints: {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    vacuum_analyze(conninfo, (*LOADED_TABLES, "leads_segment", "leads_tag"))
    print(f"  VACUUM ANALYZE: {time.perf_counter() - t:.0f} s", flush=True)
    return Generated(
        anchor=anchor, seconds=time.perf_counter() - began, reused=False, counts=counts(conninfo)
    )


def meta_write(conninfo: str, params: dict[str, Any], anchor: dt.datetime) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (params jsonb NOT NULL, anchor timestamptz NOT NULL)").format(
                sql.Identifier(META_TABLE)
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(sql.Identifier(META_TABLE)),
            [json.dumps(params), anchor],
        )


def counts(conninfo: str) -> dict[str, int]:
    tables = {
        "leads": "leads_lead",
        "events": "leads_event",
        "score changes": "scoring_scorechange",
        "notes": "leads_note",
        "tasks": "leads_task",
        "memberships": "leads_segmentmembership",
        "enrollments": "flows_enrollment",
    }
    with psycopg.connect(conninfo) as conn:
        return {
            label: conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()[0]  # type: ignore[index]
            for label, table in tables.items()
        }


# --- measurement ------------------------------------------------------------------


@dataclass
class Page:
    key: str
    label: str
    url: str
    user: Any


@dataclass
class PageResult:
    page: Page
    ms: list[float]
    queries: int
    sql_ms: float
    slowest_query_ms: float
    slowest_query: str
    bytes: int

    def quantile(self, q: float) -> float:
        ordered = sorted(self.ms)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index]


def pages_to_measure(users: dict[str, Any]) -> list[Page]:
    from leads.models import Segment

    pricing = Segment.objects.get(name=SEGMENTS[0]).pk
    marketer, rep = users["marketer"], users["reps"][0]
    return [
        Page("list", "leads list, default sort (marketer)", "/leads/", marketer),
        Page("list-sales", "leads list, default sort (sales rep)", "/leads/", rep),
        Page(
            "filtered",
            "leads list: hot, stage MQL, search “nordlicht” (marketer)",
            "/leads/?grade=hot&stage=mql&q=nordlicht",
            marketer,
        ),
        Page(
            "segment",
            f"leads list: segment “{SEGMENTS[0]}”, warm (marketer)",
            f"/leads/?segment={pricing}&grade=warm",
            marketer,
        ),
        Page(
            "profile",
            f"profile of the lead with {BIG_ROWS:,} events",
            f"/leads/{BIG_LEAD}/",
            marketer,
        ),
        Page("dashboard", "dashboard (marketer: the team)", "/", marketer),
        Page("dashboard-sales", "dashboard (sales rep)", "/", rep),
    ]


def measure(pages: Sequence[Page], *, runs: int, warmup: int) -> list[PageResult]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    clients = {}
    for page in pages:
        client = Client()
        client.force_login(page.user)
        clients[page.key] = client

    def get(page: Page) -> Any:
        response = clients[page.key].get(page.url)
        if response.status_code != 200:
            raise SystemExit(f"{page.url} answered {response.status_code}")
        return response

    for _ in range(warmup):
        for page in pages:
            get(page)
    timings: dict[str, list[float]] = {page.key: [] for page in pages}
    for _ in range(runs):
        for page in pages:
            began = time.perf_counter()
            get(page)
            timings[page.key].append((time.perf_counter() - began) * 1000)
    results = []
    for page in pages:
        with CaptureQueriesContext(connection) as captured:
            response = get(page)
        slowest = max(captured.captured_queries, key=lambda q: float(q["time"]))
        results.append(
            PageResult(
                page=page,
                ms=timings[page.key],
                queries=len(captured.captured_queries),
                sql_ms=sum(float(q["time"]) for q in captured.captured_queries) * 1000,
                slowest_query_ms=float(slowest["time"]) * 1000,
                slowest_query=slowest["sql"],
                bytes=len(response.content),
            )
        )
    return results


def explain(conninfo: str, query: str) -> str:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {query}").fetchall()
        conn.rollback()
    return "\n".join(row[0] for row in rows)


def table(results: Sequence[PageResult]) -> str:
    lines = [
        "| page | p50 ms | p95 ms | max ms | queries | SQL ms | slowest query ms | KB "
        "| p95 < 150 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in results:
        p95 = r.quantile(0.95)
        lines.append(
            f"| {r.page.label} | {statistics.median(r.ms):.0f} | {p95:.0f} | {max(r.ms):.0f} "
            f"| {r.queries} | {r.sql_ms:.0f} | {r.slowest_query_ms:.0f} | {r.bytes / 1024:.0f} "
            f"| {'yes' if p95 < GOAL_P95_MS else '**no**'} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="scratch database; created if missing, migrated, its data replaced unless "
        "it already holds this run's (default: %(default)s)",
    )
    parser.add_argument("--leads", type=int, default=100_000, help="(default: %(default)s)")
    parser.add_argument("--events", type=int, default=5_000_000, help="(default: %(default)s)")
    parser.add_argument(
        "--runs", type=int, default=40, help="timed requests a page (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed requests a page first (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=1, help="data seed (default: %(default)s)")
    parser.add_argument(
        "--regenerate", action="store_true", help="make the data again even if it is there"
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="EXPLAIN ANALYZE the slowest query of every page, not only of pages over the goal",
    )
    parser.add_argument(
        "--record", action="store_true", help="append the result to bench/RESULTS.md"
    )
    parser.add_argument("--note", default="", help="a paragraph to record after the table")
    args = parser.parse_args(argv)
    if args.leads < BIG_ROWS or args.events < 2 * BIG_ROWS:
        parser.error(f"--leads must be at least {BIG_ROWS} and --events at least {2 * BIG_ROWS}")
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    return args


def section(
    args: argparse.Namespace,
    *,
    conninfo: str,
    generated: Generated,
    results: Sequence[PageResult],
    load: tuple[float, float],
    wall: float,
    notes: str,
) -> str:
    info = machine()
    pg = postgres_settings(conninfo, ("server_version", "shared_buffers", "work_mem"))
    now = dt.datetime.now().astimezone()
    data = ", ".join(f"{n:,} {label}" for label, n in generated.counts.items())
    made = (
        f"reused; generated with its clock at {generated.anchor:%Y-%m-%d %H:%M} UTC"
        if generated.reused
        else f"made in {generated.seconds:.0f} s"
    )
    missed = [r for r in results if r.quantile(0.95) >= GOAL_P95_MS]
    verdict = (
        f"Every page's p95 is under the {GOAL_P95_MS:.0f} ms goal."
        if not missed
        else "Over the goal: " + ", ".join(r.page.label for r in missed) + "."
    )
    return (
        f"## pages: {now:%Y-%m-%d %H:%M %Z}\n\n"
        "`bench/pages.py`: server time of the heaviest pages, requested in-process "
        "through Django's test `Client` (middleware, session, views and templates; "
        "`DEBUG` off), logged in, after a warm-up, in rounds that take every page once; "
        "queries counted and timed on one extra request (SQL ms: their sum, as the "
        "client saw it).\n\n"
        f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; Python "
        f"{info['python']}, PostgreSQL {pg['server_version'].split()[0]} (shared_buffers "
        f"{pg['shared_buffers']}, work_mem {pg['work_mem']}); client and PostgreSQL on "
        f"the same host; load average (1 min) {load[0]:.2f} at the start, "
        f"{load[1]:.2f} at the end\n"
        f"- parameters: --leads {args.leads} --events {args.events} --runs {args.runs} "
        f"--warmup {args.warmup} --seed {args.seed}\n"
        f"- data ({made}): {data}; lead {BIG_LEAD} has {BIG_ROWS:,} events, "
        f"{BIG_ROWS:,} score changes and {BIG_ROWS:,} notes\n"
        f"- whole run {wall / 60:.1f} min\n\n"
        f"{table(results)}\n\n{verdict} {notes}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    load_start = os.getloadavg()[0]
    conninfo = pg_conninfo.make_conninfo(args.database_url)
    database_ensure(conninfo)
    params = {
        "version": DATA_VERSION,
        "leads": args.leads,
        "events": args.events,
        "seed": args.seed,
    }
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as data_dir:
        env = app_migrated(database_url=args.database_url, data_dir=data_dir)
        django_setup(env)
        users = _users()
        anchor = None if args.regenerate else existing(conninfo, params)
        if anchor is not None:
            print(f"reusing the data made {anchor:%Y-%m-%d %H:%M} UTC", flush=True)
            generated = Generated(anchor=anchor, seconds=0, reused=True, counts=counts(conninfo))
        else:
            print(f"generating {args.leads:,} leads and {args.events:,} events…", flush=True)
            generated = generate(
                conninfo, leads=args.leads, events=args.events, seed=args.seed, users=users
            )
            meta_write(conninfo, params, generated.anchor)
            print(f"generated in {generated.seconds:.0f} s", flush=True)
        pages = pages_to_measure(users)
        print(f"measuring {len(pages)} pages, {args.runs} runs each…", flush=True)
        results = measure(pages, runs=args.runs, warmup=args.warmup)
    wall = time.perf_counter() - began
    print("\n" + table(results))
    for r in results:
        if args.explain or r.quantile(0.95) >= GOAL_P95_MS:
            print(f"\n{r.page.label}: slowest query {r.slowest_query_ms:.1f} ms\n{r.slowest_query}")
            print(explain(conninfo, r.slowest_query))
    if args.record:
        notes = args.note
        record(
            section(
                args,
                conninfo=conninfo,
                generated=generated,
                results=results,
                load=(load_start, os.getloadavg()[0]),
                wall=wall,
                notes=notes,
            )
        )
        print(f"\nrecorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

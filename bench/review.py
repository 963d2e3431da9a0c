"""Server time of the scoring review page (``/scoring/``) on a large PostgreSQL
database.

A scratch database is filled with set-based SQL (every "random" value a hash of
the row number and the seed): leads over the last 365 days with job titles,
company sizes, industries, countries, sources, scores, grades and ratings;
lifecycle dates (MQL, opportunity, customer) correlated with title, size and
score; won and lost opportunities; page views, app and email events.

The page is requested in-process through Django's test ``Client`` (middleware,
session, view, template; ``DEBUG`` off) as a marketer, three ways:

- **cached**: the report and the suggestions come from the cache (how the page
  is read between changes; both are cached, see ``pages/selectors/review.py``);
- **report uncached**: the report's SQL runs on every request, the suggestions
  are cached;
- **cold**: both computed on every request (the first view after a change).

    .venv/bin/python bench/review.py                       # 1,000,000 leads
    .venv/bin/python bench/review.py --leads 100000 --record
    REVIEW_LEADS=200000 .venv/bin/python bench/review.py   # the environment shrinks it too

A database already holding the data of the same parameters and seed is reused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from machine import machine
from psycopg import conninfo as pg_conninfo
from psycopg import sql
from psycopg.types.json import Jsonb
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

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadflow_bench_review"
GOAL_P95_MS = 500.0
DATA_VERSION = 1
META_TABLE = "bench_review_meta"

RANDOM_FUNCTION = """
CREATE FUNCTION pg_temp.rnd(i bigint, k integer, seed bigint) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT (hashint8extended(i * 97 + k, seed) & 9007199254740991)::float8 / 9007199254740992.0 $$
"""
TITLES = [
    "CEO", "VP Marketing", "Head of Growth", "Marketing Manager", "Product Manager",
    "Software Engineer", "Data Analyst", "Student", "Freelance Designer", "Founder",
]  # fmt: skip
# How much each title adds to the odds of converting (log-odds), in TITLES' order.
TITLE_WEIGHT = [1.2, 1.0, 0.9, 0.6, 0.3, -0.6, -0.3, -2.0, -1.0, 1.1]
INDUSTRIES = ["Software", "Retail", "Manufacturing", "Finance", "Health", "Education", ""]
COUNTRIES = ["Germany", "Austria", "Switzerland", "France", "United States", "United Kingdom"]
SOURCES = ["organic", "paid", "event", "import", "referral", "direct"]
PAGES = ["/", "/pricing", "/features", "/blog/from-mql-to-sql", "/docs", "/demo"]
TRACKS = ["Logged in", "Created project", "Invited teammate"]


def _array(values: Sequence[Any], kind: str = "text") -> sql.Composable:
    return sql.SQL("ARRAY[{}]::{}[]").format(
        sql.SQL(", ").join(map(sql.Literal, values)), sql.SQL(kind)
    )


def _pick(values: Sequence[Any], r: str, kind: str = "text") -> sql.Composable:
    return sql.SQL("({})[1 + floor({} * {})::int]").format(
        _array(values, kind), sql.SQL(r), sql.Literal(len(values))
    )


def generate(conninfo: str, *, leads: int, events: int, seed: int) -> tuple[dt.datetime, float]:
    anchor = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    began = time.perf_counter()
    n, s, at = sql.Literal(leads), sql.Literal(seed), sql.Literal(anchor)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '512MB'")
        cur.execute(RANDOM_FUNCTION)
        cur.execute("TRUNCATE leads_lead, flows_flow RESTART IDENTITY CASCADE")
        cur.execute("TRUNCATE scoring_reviewlogentry")
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(META_TABLE)))

        def step(label: str, statement: sql.Composed | sql.SQL) -> None:
            t = time.perf_counter()
            cur.execute(statement)
            print(f"  {label}: {time.perf_counter() - t:.0f} s", flush=True)

        # A hidden "propensity" per lead: title + size + pricing views, so outcomes
        # correlate with what the model can see.
        step(
            "leads",
            sql.SQL(
                "INSERT INTO leads_lead (email, first_name, last_name, phone, job_title, "
                "company_name, company_size, industry, country, city, stage, unsubscribed, "
                "score, grade, fit_grade, engagement_grade, source, source_detail, "
                "custom_fields, raw_traits, created_at, updated_at) "
                "SELECT 'lead' || i || '@bench.example', '', '', '', {title}, 'Company ' || "
                "(i % 5000), (10 + floor(pg_temp.rnd(i, 2, {s}) * 2000))::int, {industry}, "
                "{country}, '', 'lead', false, (floor(pg_temp.rnd(i, 3, {s}) * 140) - 20)::int, "
                "'cold', {fit}, {engagement}, {source}, '', '{{}}', '{{}}', "
                "{at} - (pg_temp.rnd(i, 4, {s}) * interval '365 days'), {at} "
                "FROM generate_series(1, {n}) AS i"
            ).format(
                title=_pick(TITLES, f"pg_temp.rnd(i, 1, {seed})"),
                industry=_pick(INDUSTRIES, f"pg_temp.rnd(i, 5, {seed})"),
                country=_pick(COUNTRIES, f"pg_temp.rnd(i, 6, {seed})"),
                fit=_pick(["A", "B", "C", "D"], f"pg_temp.rnd(i, 7, {seed})"),
                engagement=_pick(["1", "2", "3", "4"], f"pg_temp.rnd(i, 8, {seed})"),
                source=_pick(SOURCES, f"pg_temp.rnd(i, 9, {seed})"),
                s=s,
                n=n,
                at=at,
            ),
        )
        step(
            "grades",
            sql.SQL(
                "UPDATE leads_lead SET grade = CASE WHEN score >= 50 THEN 'hot' "
                "WHEN score >= 20 THEN 'warm' ELSE 'cold' END"
            ),
        )
        # Log-odds: title weight, mid-size companies, score; MQL for a share, then
        # opportunity and customer among MQLs.
        weight = sql.SQL("({})[array_position({}, job_title)]").format(
            _array(TITLE_WEIGHT, "float8"), _array(TITLES)
        )
        step(
            "lifecycle",
            sql.SQL(
                "WITH p AS (SELECT id, created_at, 1 / (1 + exp(-(-2.5 + {w} + "
                "CASE WHEN company_size BETWEEN 50 AND 1000 THEN 0.7 ELSE 0 END + score / 60.0))) "
                "AS odds FROM leads_lead) "
                "UPDATE leads_lead l SET "
                "mql_at = CASE WHEN pg_temp.rnd(l.id, 10, {s}) < p.odds * 1.5 "
                "THEN p.created_at + pg_temp.rnd(l.id, 11, {s}) * interval '20 days' END, "
                "opportunity_at = CASE WHEN pg_temp.rnd(l.id, 10, {s}) < p.odds * 0.5 "
                "THEN p.created_at + interval '20 days' + pg_temp.rnd(l.id, 12, {s}) "
                "* interval '20 days' END, "
                "customer_at = CASE WHEN pg_temp.rnd(l.id, 10, {s}) < p.odds * 0.2 "
                "THEN p.created_at + interval '40 days' + pg_temp.rnd(l.id, 13, {s}) "
                "* interval '40 days' END "
                "FROM p WHERE p.id = l.id"
            ).format(w=weight, s=s),
        )
        step(
            "future dates cleared",
            sql.SQL(
                "UPDATE leads_lead SET mql_at = CASE WHEN mql_at > {at} THEN NULL ELSE mql_at END, "
                "opportunity_at = CASE WHEN opportunity_at > {at} THEN NULL ELSE opportunity_at "
                "END, customer_at = CASE WHEN customer_at > {at} THEN NULL ELSE customer_at END, "
                "qualified_score = CASE WHEN opportunity_at IS NOT NULL OR customer_at IS NOT NULL "
                "THEN score END, stage = CASE WHEN customer_at IS NOT NULL THEN 'customer' "
                "WHEN opportunity_at IS NOT NULL THEN 'opportunity' "
                "WHEN mql_at IS NOT NULL THEN 'mql' ELSE 'lead' END "
                "WHERE mql_at IS NOT NULL OR opportunity_at IS NOT NULL OR customer_at IS NOT NULL"
            ).format(at=at),
        )
        step(
            "opportunities",
            sql.SQL(
                "INSERT INTO leads_opportunity (lead_id, name, value, currency, status, "
                "opened_at, closed_at, lost_reason) "
                "SELECT id, '', (1000 + floor(pg_temp.rnd(id, 14, {s}) * 20000))::numeric, "
                "CASE WHEN pg_temp.rnd(id, 15, {s}) < 0.9 THEN 'EUR' ELSE 'USD' END, "
                "CASE WHEN customer_at IS NOT NULL THEN 'won' ELSE 'lost' END, "
                "opportunity_at, COALESCE(customer_at, opportunity_at + interval '30 days'), '' "
                "FROM leads_lead WHERE opportunity_at IS NOT NULL"
            ).format(s=s),
        )
        # Events: page views (converted leads view pricing more), app and email events.
        step(
            "events",
            sql.SQL(
                "INSERT INTO leads_event (lead_id, type, name, properties, context, user_id, "
                "anonymous_id, email, occurred_at, received_at, source, idempotency_key, "
                "processed_at, error, attempts, resends, depth) "
                "SELECT l, t, CASE WHEN t = 'track' THEN {track} ELSE '' END, "
                "CASE WHEN t = 'page' THEN jsonb_build_object('url', 'https://www.example.com' "
                "|| CASE WHEN pg_temp.rnd(i, 22, {s}) < 0.25 + 0.3 * (l % 3 = 0)::int "
                "THEN '/pricing' ELSE {page} END) ELSE '{{}}'::jsonb END, '{{}}', '', '', '', "
                "{at} - pg_temp.rnd(i, 23, {s}) * interval '365 days', {at}, 'bench', "
                "'e' || i, {at}, '', 1, 0, 0 "
                "FROM (SELECT i, 1 + floor(pg_temp.rnd(i, 20, {s}) * {n})::bigint AS l, "
                "{type} AS t FROM generate_series(1, {events}) AS i) AS e"
            ).format(
                track=_pick(TRACKS, f"pg_temp.rnd(i, 21, {seed})"),
                page=_pick(PAGES, f"pg_temp.rnd(i, 24, {seed})"),
                type=_pick(
                    ["page", "page", "page", "track", "email.opened", "email.clicked"],
                    f"pg_temp.rnd(i, 25, {seed})",
                ),
                s=s,
                n=n,
                at=at,
                events=sql.Literal(events),
            ),
        )
        conn.commit()
    vacuum_analyze(conninfo, ["leads_lead", "leads_event", "leads_opportunity"])
    return anchor, time.perf_counter() - began


def existing(conninfo: str, params: dict[str, Any]) -> dt.datetime | None:
    with psycopg.connect(conninfo) as conn:
        found = conn.execute("SELECT to_regclass(%s)", [META_TABLE]).fetchone()
        if not found or found[0] is None:
            return None
        row = conn.execute(
            sql.SQL("SELECT params, anchor FROM {}").format(sql.Identifier(META_TABLE))
        ).fetchone()
        return row[1] if row and row[0] == params else None


def meta_write(conninfo: str, params: dict[str, Any], anchor: dt.datetime) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (params jsonb, anchor timestamptz)").format(
                sql.Identifier(META_TABLE)
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(sql.Identifier(META_TABLE)),
            [Jsonb(params), anchor],
        )


def measure(runs: int, warmup: int) -> dict[str, list[float]]:
    from django.contrib.auth.models import Group, User
    from django.core.cache import cache
    from django.test import Client

    marketer, _ = User.objects.get_or_create(username="bench-marketer")
    marketer.groups.set([Group.objects.get_or_create(name="marketer")[0]])
    client = Client()
    client.force_login(marketer)

    def get() -> None:
        response = client.get("/scoring/")
        if response.status_code != 200:
            raise SystemExit(f"/scoring/ answered {response.status_code}")

    def clear_report() -> None:
        for key in list(cache._cache.keys()):  # type: ignore[attr-defined]
            if ":scoring-review:report:" in key:
                cache._cache.pop(key, None)  # type: ignore[attr-defined]
                cache._expire_info.pop(key, None)  # type: ignore[attr-defined]

    ways: dict[str, Callable[[], None]] = {
        "cold": cache.clear,
        "report uncached": clear_report,
        "cached": lambda: None,
    }
    timings: dict[str, list[float]] = {}
    for label, before in ways.items():
        cache.clear()
        for _ in range(warmup):
            get()
        timings[label] = []
        count = max(3, runs // 5) if label == "cold" else runs
        for _ in range(count):
            before()
            began = time.perf_counter()
            get()
            timings[label].append((time.perf_counter() - began) * 1000)
        print(f"  {label}: p50 {statistics.median(timings[label]):.0f} ms", flush=True)
    return timings


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def table(timings: dict[str, list[float]]) -> str:
    lines = [
        "| /scoring/ | requests | p50 ms | p95 ms | max ms | p95 < 500 ms |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for label, ms in timings.items():
        p95 = quantile(ms, 0.95)
        lines.append(
            f"| {label} | {len(ms)} | {statistics.median(ms):.0f} | {p95:.0f} | {max(ms):.0f} "
            f"| {'yes' if p95 < GOAL_P95_MS else '**no**'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--leads", type=int, default=int(os.environ.get("REVIEW_LEADS", 1_000_000)))
    parser.add_argument(
        "--events", type=int, default=0, help="(default: 2 per lead, REVIEW_EVENTS)"
    )
    parser.add_argument("--runs", type=int, default=int(os.environ.get("REVIEW_RUNS", 20)))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    events = args.events or int(os.environ.get("REVIEW_EVENTS", 2 * args.leads))
    began = time.perf_counter()
    load_start = os.getloadavg()[0]
    conninfo = pg_conninfo.make_conninfo(args.database_url)
    database_ensure(conninfo)
    params = {"version": DATA_VERSION, "leads": args.leads, "events": events, "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as data_dir:
        env = app_migrated(database_url=args.database_url, data_dir=data_dir)
        django_setup(env)
        anchor = None if args.regenerate else existing(conninfo, params)
        made = "reused"
        if anchor is None:
            print(f"generating {args.leads:,} leads and {events:,} events…", flush=True)
            anchor, seconds = generate(conninfo, leads=args.leads, events=events, seed=args.seed)
            meta_write(conninfo, params, anchor)
            made = f"made in {seconds:.0f} s"
        with psycopg.connect(conninfo) as conn:
            row = conn.execute(
                "SELECT count(*), count(mql_at), count(opportunity_at), count(customer_at) "
                "FROM leads_lead"
            ).fetchone()
        assert row is not None
        print("measuring…", flush=True)
        timings = measure(args.runs, args.warmup)
    wall = time.perf_counter() - began
    print("\n" + table(timings))
    if args.record:
        info = machine()
        pg = postgres_settings(conninfo, ("server_version", "shared_buffers", "work_mem"))
        now = dt.datetime.now().astimezone()
        p95 = {label: quantile(ms, 0.95) for label, ms in timings.items()}
        record(
            f"## review: {now:%Y-%m-%d %H:%M %Z}\n\n"
            "`bench/review.py`: server time of the scoring review page (`/scoring/`, the "
            "last full month, as a marketer) through Django's test `Client` (`DEBUG` off, "
            "local-memory cache): cold (report and suggestions computed), with the report "
            "computed and the suggestions cached, and with both cached.\n\n"
            f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; Python "
            f"{info['python']}, PostgreSQL {pg['server_version'].split()[0]} (shared_buffers "
            f"{pg['shared_buffers']}, work_mem {pg['work_mem']}); load average (1 min) "
            f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end\n"
            f"- parameters: --leads {args.leads} --events {events} --runs {args.runs} "
            f"--seed {args.seed}\n"
            f"- data ({made}): {row[0]:,} leads ({row[1]:,} MQL, {row[2]:,} opportunities, "
            f"{row[3]:,} customers), {events:,} events\n"
            f"- whole run {wall / 60:.1f} min\n\n"
            f"{table(timings)}\n\n"
            f"Cached p95 {p95['cached']:.0f} ms, report computed {p95['report uncached']:.0f} ms, "
            f"cold {p95['cold']:.0f} ms (goal p95 < {GOAL_P95_MS:.0f} ms). {args.note}\n"
        )
        print(f"\nrecorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Score decay at scale on PostgreSQL: ``scoring.decay.scores_decay`` against one
raw SQL statement doing the same update, in the same run.

A scratch database gets ``--leads`` leads (``BENCH_SCORING_LEADS`` shrinks the
default of 1,000,000), each with 10 to 100 engagement points from one ledger row
and its last activity 45 days before the run's clock, so with engagement
decaying 10 % per 30 days without activity every lead has exactly one period
due. The grade thresholds are set out of reach, so no lead changes grade and
both sides write the same rows: one DECAY ledger row per lead, its engagement
points and its total lowered.

1. App: ``scores_decay(now=…)`` in this process, as beat's task runs it: chunks
   of 10,000 leads, each locked (``FOR UPDATE``), decayed by one
   ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`` that also moves the
   points, and regraded (``grades_recompute`` on the chunk's leads).
2. Steady: the same call again, with nothing left due (what every hourly beat
   run costs until the next period ends).
3. Raw: after the decay rows are deleted and the points restored (and VACUUM
   ANALYZE, as before the app's run), one statement writes the same rows and
   moves the same points for every lead at once: no chunks, no locks, no
   lookup of the periods already written, no regrade.

Each phase is checked: a decay row per lead, the same sum of scores, and every
lead's total equal to its ledger.

    .venv/bin/python bench/scoring.py                  # print the results
    .venv/bin/python bench/scoring.py --record         # and append them to bench/RESULTS.md
    BENCH_SCORING_LEADS=20000 .venv/bin/python bench/scoring.py   # a quick run
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Sequence

import psycopg
from machine import machine
from psycopg import conninfo as pg_conninfo
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

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadflow_bench_scoring"
GOAL_RATIO = 2.0
PERIOD_DAYS = 30
PERCENT = 10
# The run's clock; every lead was last active 45 days before it.
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
TABLES = ("leads_lead", "scoring_leadscore", "scoring_scorechange")


def generate(conninfo: str, leads: int) -> float:
    """``leads`` leads with 10 to 100 engagement points each, from one ledger row."""
    began = time.perf_counter()
    active = NOW - dt.timedelta(days=45)
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "TRUNCATE leads_lead, scoring_scorechange, scoring_leadscore, leads_event, "
            "leads_eventkey RESTART IDENTITY CASCADE"
        )
        conn.execute(
            "UPDATE scoring_scoringsettings SET warm_threshold = 2000000000, "
            "hot_threshold = 2000000001, mql_threshold = 2000000001, total_cap = NULL"
        )
        conn.execute(
            "UPDATE scoring_scorecategory SET decay_mode = 'percent', decay_days = %s, "
            "decay_percent = %s, cap = NULL WHERE key = 'engagement'",
            (PERIOD_DAYS, PERCENT),
        )
        conn.execute(
            "UPDATE scoring_scorecategory SET decay_mode = 'none' WHERE key <> 'engagement'"
        )
        conn.execute(
            "INSERT INTO leads_lead (email, external_id, first_name, last_name, phone, "
            "job_title, company_name, industry, country, city, stage, unsubscribed, "
            "custom_fields, raw_traits, created_at, updated_at, last_activity_at, grade, "
            "score, engagement_grade, fit_grade, source, source_detail) "
            "SELECT 'bench' || i || '@example.com', 'bench-' || i, '', '', '', '', '', '', "
            "'', '', 'lead', false, '{}', '{}', %(active)s, %(active)s, %(active)s, 'cold', "
            "10 + i %% 91, '4', 'D', '', '' FROM generate_series(1, %(leads)s) i",
            {"leads": leads, "active": active},
        )
        engagement = conn.execute(
            "SELECT id FROM scoring_scorecategory WHERE key = 'engagement'"
        ).fetchone()
        assert engagement is not None
        conn.execute(
            "INSERT INTO scoring_scorechange (lead_id, delta, capped, category_id, reason, "
            "source, source_key, created_at, occurred_at) "
            "SELECT id, score, 0, %(category)s, 'bench', 'flow', 'bench:' || id, "
            "%(active)s, %(active)s FROM leads_lead",
            {"category": engagement[0], "active": active},
        )
        conn.execute(
            "INSERT INTO scoring_leadscore (lead_id, category_id, score) "
            "SELECT id, %s, score FROM leads_lead",
            (engagement[0],),
        )
    vacuum_analyze(conninfo, TABLES)
    return time.perf_counter() - began


def reset(conninfo: str) -> None:
    """Undo a decay run: its rows deleted, every lead's points as generated."""
    with psycopg.connect(conninfo) as conn:
        conn.execute("DELETE FROM scoring_scorechange WHERE source = 'decay'")
        conn.execute("UPDATE scoring_leadscore SET score = 10 + lead_id % 91")
        conn.execute("UPDATE leads_lead SET score = 10 + id % 91")
    vacuum_analyze(conninfo, TABLES)


RAW = """
WITH due AS (
    SELECT s.lead_id, s.score,
        CAST(FLOOR(EXTRACT(EPOCH FROM COALESCE(l.last_activity_at, l.created_at))) AS bigint)
            AS anchor
    FROM scoring_leadscore s JOIN leads_lead l ON l.id = s.lead_id
    WHERE s.category_id = %(category)s AND s.score > 0
        AND COALESCE(l.last_activity_at, l.created_at) <= %(cutoff)s
),
ins AS (
    INSERT INTO scoring_scorechange (lead_id, delta, capped, category_id, reason, source,
        source_key, created_by_id, created_at, occurred_at, offsets_id)
    SELECT lead_id, -LEAST(score, GREATEST(1, (score * %(percent)s + 50) / 100)), 0,
        %(category)s, 'no activity for 30 days', 'decay',
        'decay:' || %(category)s || ':' || lead_id || ':' || anchor || ':30d:1', NULL,
        %(now)s, to_timestamp(anchor + %(period)s), NULL
    FROM due
    ON CONFLICT (source_key) DO NOTHING
    RETURNING lead_id, delta
),
points AS (
    UPDATE scoring_leadscore s SET score = s.score + ins.delta FROM ins
    WHERE s.lead_id = ins.lead_id AND s.category_id = %(category)s
),
totals AS (UPDATE leads_lead l SET score = l.score + ins.delta FROM ins WHERE l.id = ins.lead_id)
SELECT COUNT(*) FROM ins
"""


def raw_decay(conninfo: str) -> tuple[float, int]:
    with psycopg.connect(conninfo) as conn:
        category = conn.execute(
            "SELECT id FROM scoring_scorecategory WHERE key = 'engagement'"
        ).fetchone()
        assert category is not None
        began = time.perf_counter()
        row = conn.execute(
            RAW,
            {
                "category": category[0],
                "percent": PERCENT,
                "period": PERIOD_DAYS * 86_400,
                "now": NOW,
                "cutoff": NOW - dt.timedelta(days=PERIOD_DAYS),
            },
        ).fetchone()
        conn.commit()
        return time.perf_counter() - began, int(row[0]) if row else 0


def state(conninfo: str) -> tuple[int, int, int]:
    """(decay rows, sum of scores, leads whose total differs from their ledger)."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT (SELECT COUNT(*) FROM scoring_scorechange WHERE source = 'decay'), "
            "(SELECT SUM(score) FROM leads_lead), "
            "(SELECT COUNT(*) FROM leads_lead l LEFT JOIN (SELECT lead_id, SUM(delta) AS s "
            "FROM scoring_scorechange GROUP BY lead_id) x ON x.lead_id = l.id "
            "WHERE l.score <> COALESCE(x.s, 0))"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="scores_decay against one raw SQL statement doing the same update."
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument(
        "--leads",
        type=int,
        default=int(os.environ.get("BENCH_SCORING_LEADS", "1000000")),
        help="leads to generate (default: $BENCH_SCORING_LEADS or 1,000,000)",
    )
    parser.add_argument(
        "--record", action="store_true", help="append the result to bench/RESULTS.md"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    load_start = os.getloadavg()[0]
    conninfo = pg_conninfo.make_conninfo(args.database_url)
    database_ensure(conninfo)
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as data_dir:
        env = app_migrated(database_url=args.database_url, data_dir=data_dir)
        print(f"generating {args.leads:,} leads…", flush=True)
        generation = generate(conninfo, args.leads)
        django_setup(env)
        from scoring.decay import scores_decay

        print("app: scores_decay…", flush=True)
        start = time.perf_counter()
        written = scores_decay(now=NOW)
        app_seconds = time.perf_counter() - start
        app_state = state(conninfo)
        start = time.perf_counter()
        again = scores_decay(now=NOW)
        steady_seconds = time.perf_counter() - start
        print("raw: one statement…", flush=True)
        reset(conninfo)
        raw_seconds, raw_rows = raw_decay(conninfo)
        raw_state = state(conninfo)
    wall = time.perf_counter() - began

    errors = []
    if written != {"engagement": args.leads} or app_state[0] != args.leads:
        errors.append(f"app wrote {written}, {app_state[0]} decay rows")
    if again != {"engagement": 0}:
        errors.append(f"the second run wrote {again}")
    if raw_rows != args.leads or app_state != raw_state:
        errors.append(f"app {app_state} != raw {raw_state} ({raw_rows} rows)")
    if app_state[2] or raw_state[2]:
        errors.append("totals differ from the ledger")
    ratio = app_seconds / raw_seconds
    table = (
        "| phase | seconds | leads/s |\n|---|---:|---:|\n"
        f"| app: scores_decay (chunks of 10,000) | {app_seconds:.2f} | "
        f"{args.leads / app_seconds:,.0f} |\n"
        f"| app: again, nothing due | {steady_seconds:.2f} | - |\n"
        f"| raw: one INSERT … ON CONFLICT with both UPDATEs | {raw_seconds:.2f} | "
        f"{args.leads / raw_seconds:,.0f} |\n"
        f"| ratio app / raw | {ratio:.2f} (goal ≤ {GOAL_RATIO:.0f}) | |"
    )
    print("\n" + table)
    if errors:
        print("\nresults disagree:", *errors, sep="\n  ", file=sys.stderr)
        return 1
    if args.record:
        info = machine()
        pg = postgres_settings(conninfo, ("server_version", "shared_buffers", "work_mem"))
        now = dt.datetime.now().astimezone()
        record(
            f"## scoring: {now:%Y-%m-%d %H:%M %Z}\n\n"
            "`bench/scoring.py`: `scores_decay` (engagement, 10 % per 30 days without "
            "activity) over leads each with one period due, against one raw statement "
            "writing the same decay rows and moving the same points; both checked to "
            "leave the same scores, each lead's total equal to its ledger.\n\n"
            f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; "
            f"Python {info['python']}, PostgreSQL {pg['server_version'].split()[0]} "
            f"(shared_buffers {pg['shared_buffers']}, work_mem {pg['work_mem']}); "
            "shared with other work; load average (1 min) "
            f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end\n"
            f"- parameters: --leads {args.leads}; generation {generation:.0f} s; "
            f"whole run {wall / 60:.1f} min\n\n{table}\n"
        )
        print(f"\nrecorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

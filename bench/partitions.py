"""What partitioning the events table by month costs the hot path.

Side by side in one scratch database, on the same rows: the table as it was
(plain, unique index on (source, idempotency key), its insert ``ON CONFLICT DO
NOTHING``) and as migration 0023 makes it on PostgreSQL (partitioned by month of
``occurred_at``, with 12 months of past partitions, keys claimed in
``leads_eventkey`` by ``events_record``'s one statement). Measured: events/s for
batches of 500 (the tracking API's largest request) and for one event per
transaction (a worker's derived events), and the lookup of one event by id with
``FOR UPDATE`` (each event processed starts so; timed inside one transaction),
which on the partitioned table has to look in every partition. The two shapes
take turns, so that a busy machine weighs on both alike.

    .venv/bin/python bench/partitions.py             # print the table
    .venv/bin/python bench/partitions.py --record    # and append to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import tempfile
import time
import uuid
from typing import Any

import psycopg
from machine import machine
from psycopg.types.json import Jsonb
from stack import app_migrated, database_ensure, django_setup, postgres_version, record

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadflow_bench_partitions"
PLAIN = "bench_event_plain"


def _plain_table(conn: psycopg.Connection[Any]) -> None:
    """The events table as it was before migration 0023, beside the new one."""
    conn.execute(f"DROP TABLE IF EXISTS {PLAIN}")
    conn.execute(
        f"CREATE TABLE {PLAIN} (LIKE leads_event INCLUDING DEFAULTS INCLUDING IDENTITY "
        "INCLUDING CONSTRAINTS INCLUDING INDEXES)"
    )
    conn.execute(f"ALTER TABLE {PLAIN} DROP CONSTRAINT {PLAIN}_pkey")
    conn.execute(f"ALTER TABLE {PLAIN} ADD PRIMARY KEY (id)")
    conn.execute(f"ALTER TABLE {PLAIN} ADD UNIQUE (source, idempotency_key)")


def _past_partitions(conn: psycopg.Connection[Any], months: int) -> int:
    """Partitions for the past ``months``, as a year of retention keeps."""
    now = dt.datetime.now(dt.UTC)
    for back in range(1, months + 1):
        index = now.year * 12 + now.month - 1 - back
        start = dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)
        end = dt.datetime((index + 1) // 12, (index + 1) % 12 + 1, 1, tzinfo=dt.UTC)
        name = f"leads_event_p{start:%Y_%m}"
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF leads_event "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    row = conn.execute(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'leads_event'::regclass"
    ).fetchone()
    return int(row[0]) if row else 0


def _columns(rng: random.Random, count: int, now: dt.datetime) -> list[list[Any]]:
    """Rows in ``events_record``'s column order: a page or app event as the
    Segment SDKs send them, at times over the last weeks."""
    rows = []
    for _ in range(count):
        at = now - dt.timedelta(seconds=rng.randrange(0, 30 * 86400))
        rows.append(
            (
                "track",
                rng.choice(["Viewed pricing", "Signed up", "Created project"]),
                Jsonb({"plan": "pro", "value": rng.randrange(100), "path": "/pricing"}),
                Jsonb(
                    {
                        "library": {"name": "analytics.js", "version": "4.1.0"},
                        "ip": "203.0.113.7",
                        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0",
                        "page": {"url": "https://example.com/pricing", "title": "Pricing"},
                    }
                ),
                f"user-{rng.randrange(10_000)}",
                "",
                "",
                at,
                now,
                "segment",
                uuid.uuid4().hex,
                0,
                0,
                0,
                "",
                None,
            )
        )
    return [list(column) for column in zip(*rows, strict=True)]


def _insert(conn: psycopg.Connection[Any], statement: str, columns: list[list[Any]]) -> int:
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(statement, columns)
        return len(cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20, help="batches of 500 per round")
    parser.add_argument("--singles", type=int, default=400, help="one-event inserts per round")
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    load_start = os.getloadavg()[0]

    conninfo = args.database_url
    database_ensure(conninfo)
    with tempfile.TemporaryDirectory() as data_dir:
        env = app_migrated(database_url=conninfo, data_dir=data_dir)
        django_setup(env)
        from leads.services.events import _EVENT_COLUMNS, _PG_INSERT

        names = ", ".join(c for c, _ in _EVENT_COLUMNS)
        plain_insert = (
            f"INSERT INTO {PLAIN} ({names}) "
            f"SELECT * FROM unnest({', '.join(f'%b::{t}[]' for _, t in _EVENT_COLUMNS)}) "
            "ON CONFLICT (source, idempotency_key) DO NOTHING RETURNING id"
        )
        shapes = {"plain table, unique index": plain_insert, "partitioned + key table": _PG_INSERT}
        rng = random.Random(1)
        now = dt.datetime.now(dt.UTC)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("TRUNCATE leads_event, leads_eventkey")
            _plain_table(conn)
            partitions = _past_partitions(conn, 12)
            batch_rate: dict[str, list[float]] = {name: [] for name in shapes}
            single_rate: dict[str, list[float]] = {name: [] for name in shapes}
            for _ in range(args.rounds):
                for name, statement in shapes.items():
                    batches = [_columns(rng, 500, now) for _ in range(args.batches)]
                    begin = time.perf_counter()
                    inserted = sum(_insert(conn, statement, b) for b in batches)
                    batch_rate[name].append(inserted / (time.perf_counter() - begin))
                    singles = [_columns(rng, 1, now) for _ in range(args.singles)]
                    begin = time.perf_counter()
                    inserted = sum(_insert(conn, statement, s) for s in singles)
                    single_rate[name].append(inserted / (time.perf_counter() - begin))
            conn.execute(f"VACUUM ANALYZE {PLAIN}")
            conn.execute("VACUUM ANALYZE leads_event")
            lookup_ms: dict[str, float] = {}
            for name, table in (
                ("plain table, unique index", PLAIN),
                ("partitioned + key table", "leads_event"),
            ):
                ids = [
                    row[0]
                    for row in conn.execute(
                        f"SELECT id FROM {table} ORDER BY random() LIMIT %s",
                        [args.lookups],
                    ).fetchall()
                ]
                timings = []
                # One transaction for all of them: what is timed is finding and
                # locking the row, not a commit.
                with conn.transaction():
                    for pk in ids:
                        begin = time.perf_counter()
                        conn.execute(
                            f"SELECT * FROM {table} WHERE id = %b FOR UPDATE",
                            [pk],
                            prepare=True,
                        ).fetchall()
                        timings.append((time.perf_counter() - begin) * 1000)
                lookup_ms[name] = statistics.median(timings)
            rows = conn.execute(
                f"SELECT (SELECT count(*) FROM leads_event), (SELECT count(*) FROM {PLAIN})"
            ).fetchone()
            sizes = conn.execute(
                "SELECT (SELECT sum(pg_total_relation_size(relid)) "
                "FROM pg_partition_tree('leads_event')), "
                f"pg_total_relation_size('{PLAIN}'), pg_total_relation_size('leads_eventkey')"
            ).fetchone()
            conn.execute(f"DROP TABLE {PLAIN}")

    load_end = os.getloadavg()[0]
    info = machine()
    lines = [
        f"## partitions: {started:%Y-%m-%d %H:%M} UTC",
        "",
        "`bench/partitions.py`: the events table as it was (plain, unique index on "
        "(source, idempotency key)) against migration 0023's on PostgreSQL "
        f"(partitioned by month, {partitions} partitions: 12 past months, the current, 3 "
        "ahead and the default; keys claimed in `leads_eventkey` in the same statement), "
        "in turns in one database; medians of the rounds.",
        "",
        f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; Python "
        f"{info['python']}, PostgreSQL {postgres_version(conninfo)}; load average (1 min) "
        f"{load_start:.2f} at the start, {load_end:.2f} at the end",
        f"- parameters: --rounds {args.rounds} --batches {args.batches} --singles "
        f"{args.singles} --lookups {args.lookups}; rows written: {rows[0] if rows else 0:,} "
        f"and {rows[1] if rows else 0:,}",
        "",
        "| table | batches of 500, events/s | one event a transaction, events/s "
        "| lookup by id FOR UPDATE, median ms |",
        "|---|---:|---:|---:|",
    ]
    for name in shapes:
        lines.append(
            f"| {name} | {statistics.median(batch_rate[name]):,.0f} "
            f"| {statistics.median(single_rate[name]):,.0f} | {lookup_ms[name]:.3f} |"
        )
    plain, parted = shapes
    lines += [
        "",
        f"Ratio partitioned / plain: batches "
        f"{statistics.median(batch_rate[parted]) / statistics.median(batch_rate[plain]):.2f}x, "
        f"single events "
        f"{statistics.median(single_rate[parted]) / statistics.median(single_rate[plain]):.2f}x, "
        f"lookup time {lookup_ms[parted] / lookup_ms[plain]:.2f}x.",
        "",
    ]
    if rows and sizes and rows[0] and rows[1]:
        lines[-1:-1] = [
            "",
            f"Bytes per event, indexes included: plain {sizes[1] / rows[1]:.0f} (its unique "
            f"index included); partitioned {sizes[0] / rows[0]:.0f}, plus "
            f"{sizes[2] / rows[0]:.0f} in `leads_eventkey` (heap, unique index, block range "
            "index).",
        ]
    text = "\n".join(lines)
    print(text)
    if args.record:
        record(text)


if __name__ == "__main__":
    main()

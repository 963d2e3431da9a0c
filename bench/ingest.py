"""Batched ingest through ``POST /v1/batch`` against a raw multi-row insert.

The app phase runs the real stack (gunicorn, PostgreSQL, Redis as the broker) and
sends pre-serialised Segment batches from concurrent keep-alive clients; the
worker is not started, because what is measured is accepting events: parsing,
validation, the insert and the after-commit enqueue. The raw phase writes the
same rows (the app's own column values, read back from the table, with fresh
idempotency keys) with ``INSERT … ON CONFLICT DO NOTHING``, one statement and one
transaction per batch, from as many connections as there were clients. The ratio
app / raw says how much of the database's speed the request path keeps.

    .venv/bin/python bench/ingest.py                  # print the table
    .venv/bin/python bench/ingest.py --record         # and append to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import requests
from machine import machine
from psycopg import conninfo as pg_conninfo
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.types.json import Jsonb
from stack import (
    HOST,
    RESULTS,
    RESULTS_HEADER,
    ROOT,
    Gunicorn,
    app_env,
    broker_connect,
    database_ensure,
    free_port,
    manage,
    postgres_version,
    record,
)

REDIS_URL = "redis://127.0.0.1:6379/14"
INGEST_QUEUE = "ingest"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadflow_bench"
# The endpoint refuses more than this per batch (Segment's limit, settings.py).
MAX_BATCH = 500
COLUMNS = (
    "type",
    "name",
    "properties",
    "context",
    "user_id",
    "anonymous_id",
    "email",
    "occurred_at",
    "received_at",
    "source",
    "idempotency_key",
    "depth",
    "attempts",
    "error",
    "lead_id",
    "processed_at",
)
KEY_INDEX = COLUMNS.index("idempotency_key")
JSON_INDEXES = (COLUMNS.index("properties"), COLUMNS.index("context"))

# A new bench/RESULTS.md starts with what this bench measures.
INGEST_HEADER = (
    RESULTS_HEADER
    + """
- `bench/ingest.py`: events per second accepted by `POST /v1/batch` (gunicorn,
  2 workers of 2 threads, PostgreSQL, Redis broker, no worker running) from
  concurrent keep-alive clients sending pre-serialised Segment batches, against
  rows per second for the same rows written by a raw multi-row
  `INSERT … ON CONFLICT DO NOTHING` (one transaction per batch, one connection per
  client, parameters bound by libpq so no client-side query parsing is counted).
  The ratio app / raw is what the request path keeps of the database's speed; the
  goal is at least 0.5. Client, server and database share the machine, so runs on
  small machines are noisy: by default each phase runs twice, alternating, and the
  best counts.
"""
)


# --- payloads -----------------------------------------------------------------

PRODUCTS = [
    ("sku-1042", "Ergonomic Chair", "Furniture", 349.0),
    ("sku-2210", "Standing Desk", "Furniture", 599.0),
    ("sku-3307", "Noise-cancelling Headphones", "Audio", 229.99),
    ("sku-4415", "USB-C Dock", "Accessories", 189.5),
    ("sku-5120", "27-inch Monitor", "Displays", 419.0),
]
PAGES = [
    ("/pricing", "Pricing | Acme"),
    ("/features/automation", "Automation | Acme"),
    ("/blog/lead-scoring-101", "Lead scoring 101 | Acme Blog"),
    ("/docs/getting-started", "Getting started | Acme Docs"),
    ("/", "Acme: marketing that runs itself"),
]
EVENTS = ["Product Viewed", "Signed Up", "Trial Started", "Demo Requested", "Webinar Joined"]
USER_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0 Safari/537.36",
]
CAMPAIGNS = [
    {"name": "spring-launch", "source": "newsletter", "medium": "email"},
    {"name": "brand", "source": "google", "medium": "cpc", "term": "marketing automation"},
]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _message(rng: random.Random, sent: dt.datetime) -> dict[str, Any]:
    """One Segment message shaped like what analytics.js / analytics-python send."""
    path, title = rng.choice(PAGES)
    url = f"https://www.acme.test{path}"
    person = rng.randrange(20_000)
    context: dict[str, Any] = {
        "library": {"name": "analytics.js", "version": "5.2.0"},
        "ip": f"203.0.113.{rng.randrange(1, 255)}",
        "locale": "en-US",
        "userAgent": rng.choice(USER_AGENTS),
        "page": {"path": path, "title": title, "url": url},
    }
    if rng.random() < 0.3:
        context["campaign"] = rng.choice(CAMPAIGNS)
    message: dict[str, Any] = {
        "messageId": _uuid(rng),
        "anonymousId": f"anon-{person:06d}-{rng.getrandbits(32):08x}",
        "timestamp": _iso(sent - dt.timedelta(milliseconds=rng.randrange(5000))),
        "context": context,
    }
    if rng.random() < 0.4:
        message["userId"] = f"user-{person:06d}"
    roll = rng.random()
    if roll < 0.55:
        sku, product, category, price = rng.choice(PRODUCTS)
        event = rng.choice(EVENTS)
        properties: dict[str, Any] = {"plan": rng.choice(["free", "team", "business"])}
        if event == "Product Viewed":
            properties = {"sku": sku, "name": product, "category": category, "price": price}
        message.update(type="track", event=event, properties=properties)
    elif roll < 0.9:
        message.update(type="page", name=title.split(" |")[0], properties={"url": url})
    else:
        message["userId"] = f"user-{person:06d}"
        message.update(
            type="identify",
            traits={
                "email": f"person{person}@example.com",
                "firstName": "Sam",
                "company": f"Company {person % 700}",
                "plan": "trial",
            },
        )
    return message


def build_bodies(*, events: int, batch: int, seed: int) -> tuple[list[bytes], list[int]]:
    """Serialised batch bodies and their event counts, built before timing."""
    rng = random.Random(seed)
    sent = dt.datetime.now(dt.UTC)
    bodies: list[bytes] = []
    counts: list[int] = []
    for start in range(0, events, batch):
        n = min(batch, events - start)
        messages = [_message(rng, sent) for _ in range(n)]
        body = {"batch": messages, "sentAt": _iso(sent)}
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
        counts.append(n)
    return bodies, counts


# --- running ------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    events: int
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def run_concurrently(
    jobs: int, workers: int, setup: Callable[[], Any], work: Callable[[Any, int], int]
) -> Run:
    """Run jobs 0..jobs-1 from ``workers`` threads, each with its own ``setup()``
    resource; wall clock from the moment all are ready to the last job done."""
    next_job = 0
    lock = threading.Lock()
    ready = threading.Barrier(workers + 1)
    done = 0
    errors: list[str] = []

    def worker() -> None:
        nonlocal next_job, done
        try:
            resource = setup()
        except Exception as exc:
            errors.append(f"setup: {exc}")
            ready.abort()
            return
        try:
            try:
                ready.wait()
            except threading.BrokenBarrierError:
                return
            while True:
                with lock:
                    job = next_job
                    next_job += 1
                if job >= jobs:
                    return
                try:
                    count = work(resource, job)
                except Exception as exc:
                    errors.append(f"job {job}: {type(exc).__name__}: {exc}"[:300])
                    continue
                with lock:
                    done += count
        finally:
            close = getattr(resource, "close", None)
            if close is not None:
                close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        for thread in threads:
            thread.join()
        return Run(seconds=0.0, events=0, errors=errors)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return Run(seconds=time.perf_counter() - started, events=done, errors=errors)


def http_phase(
    *, port: int, key: str, bodies: Sequence[bytes], counts: Sequence[int], clients: int
) -> Run:
    url = f"http://{HOST}:{port}/v1/batch"
    token = base64.b64encode(f"{key}:".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": f"Basic {token}"}

    def work(session: requests.Session, job: int) -> int:
        response = session.post(url, data=bodies[job], headers=headers, timeout=(5, 120))
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        accepted = response.json().get("accepted")
        if accepted != counts[job]:
            raise RuntimeError(f"accepted {accepted} of {counts[job]}")
        return counts[job]

    return run_concurrently(len(bodies), clients, requests.Session, work)


def insert_sql(rows: int) -> str:
    """The multi-row insert in PostgreSQL's own ``$n`` placeholders."""
    width = len(COLUMNS)
    values = ", ".join(
        "(" + ", ".join(f"${row * width + column + 1}" for column in range(width)) + ")"
        for row in range(rows)
    )
    return f"INSERT INTO leads_event ({', '.join(COLUMNS)}) VALUES {values} ON CONFLICT DO NOTHING"


def raw_phase(*, conninfo: str, batches: Sequence[list[tuple[Any, ...]]], clients: int) -> Run:
    statements = {len(rows): insert_sql(len(rows)).encode() for rows in batches}

    def connect() -> psycopg.Connection:
        # Autocommit: the statement is its own transaction, with no BEGIN/COMMIT
        # round trips around it.
        return psycopg.connect(conninfo, autocommit=True)

    def work(conn: psycopg.Connection, job: int) -> int:
        rows = batches[job]
        params = [value for row in rows for value in row]
        # cursor.execute() re-parses a query this long for placeholders in pure
        # Python on every call (psycopg caches only short ones): tens of ms a batch,
        # under the GIL. That is client overhead, not the database's speed, so the
        # parameters are adapted with psycopg's own dumpers and sent as they are.
        transformer = Transformer(conn)
        values = transformer.dump_sequence(params, [PyFormat.AUTO] * len(params))
        with conn.lock:
            result = conn.pgconn.exec_params(
                statements[len(rows)], values, transformer.types, transformer.formats
            )
        if result.status != pq.ExecStatus.COMMAND_OK:
            message = result.error_message.decode(errors="replace")
            raise RuntimeError(f"insert failed: {message}")
        return len(rows)

    return run_concurrently(len(batches), clients, connect, work)


def rows_written(conninfo: str) -> list[tuple[Any, ...]]:
    """What the app stored, column for column, in the order it arrived."""
    with psycopg.connect(conninfo) as conn:
        return conn.execute(f"SELECT {', '.join(COLUMNS)} FROM leads_event ORDER BY id").fetchall()


def raw_batches(
    rows: Sequence[tuple[Any, ...]], *, batch: int, rng: random.Random
) -> list[list[tuple[Any, ...]]]:
    prepared = []
    for row in rows:
        values = list(row)
        values[KEY_INDEX] = _uuid(rng)
        for index in JSON_INDEXES:
            values[index] = Jsonb(values[index])
        prepared.append(tuple(values))
    return [prepared[start : start + batch] for start in range(0, len(prepared), batch)]


def table_reset(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # CASCADE: whatever comes to reference events is bench data too.
        conn.execute("TRUNCATE leads_event, leads_eventkey CASCADE")
        # Dirty pages from the previous phase are flushed now, not during the next.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def table_count(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM leads_event").fetchone()
    return int(row[0]) if row else 0


# --- main -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Events per second through POST /v1/batch (gunicorn + PostgreSQL + Redis) "
            "against a raw multi-row INSERT of the same rows, and their ratio."
        )
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="bench database; created if missing, migrated, and its "
        "leads_event table truncated (default: %(default)s)",
    )
    parser.add_argument(
        "--events", type=int, default=100_000, help="events per phase (default: %(default)s)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=MAX_BATCH,
        help="events per request and rows per INSERT (default: %(default)s)",
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=4,
        help="concurrent HTTP clients, and raw-insert connections (default: %(default)s)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="gunicorn port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=2,
        help="runs of each phase, alternating; the best is reported (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=1, help="payload seed (default: %(default)s)")
    parser.add_argument(
        "--record", action="store_true", help="append the result to bench/RESULTS.md"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.batch <= MAX_BATCH:
        parser.error(f"--batch must be between 1 and {MAX_BATCH} (the endpoint's limit)")
    for name in ("events", "clients", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    conninfo = pg_conninfo.make_conninfo(args.database_url)
    database_ensure(conninfo)
    env = app_env(DATABASE_URL=args.database_url, REDIS_URL=REDIS_URL, PYTHONUNBUFFERED="1")
    print("migrating…", flush=True)
    manage(env, "migrate", "--noinput")
    key = manage(env, "create_api_key", "--name", "bench", "--scope", "ingest").strip()
    broker = broker_connect(REDIS_URL)
    broker.flushdb()
    table_reset(conninfo)

    print(f"building {args.events} events in batches of {args.batch}…", flush=True)
    bodies, counts = build_bodies(events=args.events, batch=args.batch, seed=args.seed)
    mean_event = sum(len(b) for b in bodies) / args.events
    warmup, warmup_counts = build_bodies(
        events=args.batch * args.clients * 2, batch=args.batch, seed=args.seed + 1000
    )
    rng = random.Random(args.seed + 2000)

    port = args.port or free_port()
    server = Gunicorn(env=env, port=port, threads=2)
    app_runs: list[Run] = []
    raw_runs: list[Run] = []
    try:
        server.wait_healthy()
        # Both workers import their code and open connections before the clock runs.
        run = http_phase(
            port=port, key=key, bodies=warmup, counts=warmup_counts, clients=args.clients
        )
        if run.errors:
            raise SystemExit("warm-up failed: " + "; ".join(run.errors[:5]))
        table_reset(conninfo)
        batches: list[list[tuple[Any, ...]]] = []
        for number in range(1, args.runs + 1):
            broker.flushdb()
            run = http_phase(port=port, key=key, bodies=bodies, counts=counts, clients=args.clients)
            stored = table_count(conninfo)
            if stored != args.events:
                run.errors.append(f"{stored} rows stored, {args.events} expected")
            # One task message per request proves the after-commit enqueue ran.
            queued = broker.llen(INGEST_QUEUE)
            if queued != len(bodies):
                run.errors.append(f"{queued} task messages queued, {len(bodies)} expected")
            app_runs.append(run)
            print(f"app run {number}: {run.rate:,.0f} events/s ({run.seconds:.2f} s)", flush=True)
            if not batches:
                batches = raw_batches(rows_written(conninfo), batch=args.batch, rng=rng)
            table_reset(conninfo)
            run = raw_phase(conninfo=conninfo, batches=batches, clients=args.clients)
            stored = table_count(conninfo)
            if stored != args.events:
                run.errors.append(f"{stored} rows stored, {args.events} expected")
            raw_runs.append(run)
            print(f"raw run {number}: {run.rate:,.0f} rows/s ({run.seconds:.2f} s)", flush=True)
            # The same keys go in again next run: clear them so nothing is skipped.
            for batch in batches:
                for index, row in enumerate(batch):
                    values = list(row)
                    values[KEY_INDEX] = _uuid(rng)
                    batch[index] = tuple(values)
            table_reset(conninfo)
    finally:
        server.stop()
        broker.flushdb()

    errors = [e for run in app_runs + raw_runs for e in run.errors]
    if errors:
        print(f"\n{len(errors)} errors, first ones:", *errors[:10], sep="\n  ", file=sys.stderr)
        return 1
    app = max(run.rate for run in app_runs)
    raw = max(run.rate for run in raw_runs)
    ratio = app / raw
    info = machine()
    pg = postgres_version(conninfo)
    best = f"best of {args.runs}" if args.runs > 1 else "1 run"
    table = "\n".join(
        [
            f"| phase | per second ({best}) | all runs |",
            "|---|---:|---|",
            f"| app: POST /v1/batch | {app:,.0f} events/s | "
            + ", ".join(f"{r.rate:,.0f}" for r in app_runs)
            + " |",
            f"| raw: INSERT … ON CONFLICT DO NOTHING | {raw:,.0f} rows/s | "
            + ", ".join(f"{r.rate:,.0f}" for r in raw_runs)
            + " |",
            f"| ratio app / raw | {ratio:.2f} (goal ≥ 0.5) | |",
        ]
    )
    print("\n" + table)
    if args.record:
        now = dt.datetime.now().astimezone()
        record(
            f"## ingest: {now:%Y-%m-%d %H:%M %Z}\n\n"
            f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; "
            f"Python {info['python']}, PostgreSQL {pg}; client, gunicorn and PostgreSQL "
            "on the same host\n"
            f"- parameters: --events {args.events} --batch {args.batch} "
            f"--clients {args.clients} --runs {args.runs} --seed {args.seed}; "
            f"mean event {mean_event:.0f} bytes of JSON; gunicorn 2 workers of 2 threads\n\n"
            f"{table}\n",
            header=INGEST_HEADER,
        )
        print(f"\nrecorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The embedded default (SQLite, no Redis) against PostgreSQL + Redis, on the
same account, in one run: ingest while the worker drains, then processing.

For each backend: a scratch database with the demo account (``load_demo
--no-replay``: its flows and segments, no history run through them) and an
ingest key; the web (gunicorn with ``config/gunicorn.py``, as ``runstack``
starts it: one process of four threads on the embedded default, two on
PostgreSQL + Redis) and one Celery worker (concurrency 2, the app's queues, as
``runstack``); no beat. A first batch of events is posted and left to the
worker; while it drains, ``--events`` more are posted through ``/v1/batch``
from ``--clients`` keep-alive clients (the ingest rate: events accepted per
second of wall clock while the worker works). Then every event must be
processed: the processing rate is inbound events per second from the first
``processed_at`` of the run to the last.

    .venv/bin/python bench/embedded.py                 # print the table
    .venv/bin/python bench/embedded.py --record        # and append to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import random
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import requests
from machine import machine
from stack import (
    HOST,
    ROOT,
    Process,
    app_env,
    broker_connect,
    database_ensure,
    free_port,
    manage,
    postgres_version,
    record,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/lf_perf_embedded"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/2"
LEADS = 200

# Prints an ingest key of a fresh demo account (the demo's users, flows and
# segments, no history replayed).
SETUP = """
from leads.models import ApiScope
from leads.services.api_keys import api_key_create
_, key = api_key_create(name="bench", scope=ApiScope.INGEST)
print("KEY=" + key)
"""


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message(rng: random.Random, n: int) -> dict[str, Any]:
    """A ``track`` or ``page`` message of one of ``LEADS`` known people: some
    trigger the demo's flows (pricing visits, a booked call), most only count
    toward activity rules."""
    person = rng.randrange(LEADS)
    base: dict[str, Any] = {
        "messageId": f"bench-{n}-{uuid.uuid4().hex[:8]}",
        "userId": f"bench-user-{person}",
        "timestamp": _iso(dt.datetime.now(dt.UTC)),
    }
    roll = rng.random()
    if roll < 0.3:
        url = "https://www.acme.test/pricing"
        return {**base, "type": "page", "name": "Pricing", "properties": {"url": url}}
    name = "Booked a call" if roll < 0.35 else rng.choice(["Signed in", "Report exported"])
    return {**base, "type": "track", "event": name, "properties": {"plan": "team"}}


def bodies(*, events: int, batch: int, seed: int, offset: int) -> list[tuple[bytes, int]]:
    rng = random.Random(seed)
    out = []
    for start in range(0, events, batch):
        n = min(batch, events - start)
        messages = [message(rng, offset + start + i) for i in range(n)]
        out.append((json.dumps({"batch": messages}).encode(), n))
    return out


# --- processes ----------------------------------------------------------------------


class Web(Process):
    name = "gunicorn"

    def __init__(self, *, env: dict[str, str], port: int):
        self.port = port
        super().__init__(
            command=[
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(ROOT / "config" / "gunicorn.py"),
                "config.wsgi:application",
                "--bind",
                f"{HOST}:{port}",
                "--access-logfile",
                "/dev/null",
            ],
            env=env,
        )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{HOST}:{self.port}/healthz"
        while time.monotonic() < deadline:
            if not self.alive():
                raise SystemExit(f"gunicorn exited:\n{self.output()}")
            with contextlib.suppress(requests.RequestException):
                # Degraded (no beat) is an answer too.
                if requests.get(url, timeout=2).status_code in (200, 503):
                    return
            time.sleep(0.25)
        raise SystemExit(f"{url} did not answer within {timeout:.0f} s:\n{self.output()}")


class Worker(Process):
    name = "celery worker"

    def __init__(self, *, env: dict[str, str], queues: str):
        super().__init__(
            command=[
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--queues",
                queues,
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            env=env,
        )


# --- the backends ---------------------------------------------------------------------


class Backend:
    label: str
    env: dict[str, str]

    def count(self, sql: str) -> Any:
        raise NotImplementedError

    def processed(self) -> int:
        return int(
            self.count(
                "SELECT count(*) FROM leads_event WHERE source = 'segment' "
                "AND idempotency_key LIKE 'bench-%' AND processed_at IS NOT NULL"
            )
        )

    def span(self) -> tuple[Any, Any]:
        return self.count(
            "SELECT min(processed_at), max(processed_at) FROM leads_event "
            "WHERE processed_at IS NOT NULL AND received_at >= "
            "(SELECT min(received_at) FROM leads_event WHERE idempotency_key LIKE 'bench-%')"
        )

    def derived(self) -> int:
        return int(
            self.count(
                "SELECT count(*) FROM leads_event WHERE source = 'system' AND received_at >= "
                "(SELECT min(received_at) FROM leads_event WHERE idempotency_key LIKE 'bench-%')"
            )
        )


class Embedded(Backend):
    def __init__(self, data: Path, *, inbox: bool):
        self.data = data
        self.label = "embedded (SQLite, no Redis)" + ("" if inbox else ", EVENT_INBOX=false")
        self.env = app_env(
            EVENT_INBOX="true" if inbox else "false",
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=None,
            REDIS_URL=None,
            LEADFLOW_DATA_DIR=str(data),
            WEB_CONCURRENCY=None,
            PYTHONUNBUFFERED="1",
        )

    def count(self, sql: str) -> Any:
        with contextlib.closing(sqlite3.connect(self.data / "leadflow.sqlite3", timeout=60)) as db:
            row = db.execute(sql).fetchone()
        if len(row) == 1:
            return row[0]
        return tuple(dt.datetime.fromisoformat(v) if isinstance(v, str) else v for v in row)


class Postgres(Backend):
    label = "PostgreSQL + Redis"

    def __init__(self, database_url: str, redis_url: str, data: Path):
        self.conninfo = database_url
        self.env = app_env(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            LEADFLOW_DATA_DIR=str(data),
            WEB_CONCURRENCY=None,
            PYTHONUNBUFFERED="1",
        )

    def count(self, sql: str) -> Any:
        with psycopg.connect(self.conninfo) as conn:
            row = conn.execute(sql).fetchone()
        assert row is not None
        return row[0] if len(row) == 1 else tuple(row)


@dataclass
class Result:
    label: str
    first: int
    events: int
    ingest_seconds: float
    processed_while_posting: int
    process_seconds: float
    derived: int
    errors: list[str]

    @property
    def ingest_rate(self) -> float:
        return self.events / self.ingest_seconds

    @property
    def process_rate(self) -> float:
        return (self.first + self.events) / self.process_seconds


def post_all(
    port: int, key: str, payloads: list[tuple[bytes, int]], clients: int
) -> tuple[int, list[str]]:
    """Post every payload; how many events were accepted, and what went wrong."""
    errors: list[str] = []
    accepted = 0
    lock = threading.Lock()
    queue = list(payloads)

    def client() -> None:
        nonlocal accepted
        with requests.Session() as session:
            session.auth = (key, "")
            session.headers["Content-Type"] = "application/json"
            while True:
                with lock:
                    if not queue:
                        return
                    body, _ = queue.pop()
                try:
                    url = f"http://{HOST}:{port}/v1/batch"
                    response = session.post(url, data=body, timeout=120)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                    else:
                        with lock:
                            accepted += int(response.json()["accepted"])
                except requests.RequestException as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return accepted, errors


def run_backend(backend: Backend, args: argparse.Namespace) -> Result:
    print(f"[{backend.label}] migrating, loading the demo account…", flush=True)
    manage(backend.env, "migrate", "--noinput")
    manage(backend.env, "load_demo", "--no-replay")
    output = manage(backend.env, "shell", "-c", SETUP)
    key = next(line[4:] for line in output.splitlines() if line.startswith("KEY="))
    from config.celery import QUEUES

    port = free_port()
    web = Web(env=backend.env, port=port)
    worker = Worker(env=backend.env, queues=",".join(QUEUES))
    try:
        web.wait_healthy()
        first = bodies(events=args.first, batch=args.batch, seed=args.seed, offset=0)
        later = bodies(events=args.events, batch=args.batch, seed=args.seed + 1, offset=args.first)
        first_accepted, errors = post_all(port, key, first, args.clients)
        # The worker is draining the first part while the rest is posted.
        deadline = time.monotonic() + 60
        while backend.processed() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"[{backend.label}] posting {args.events:,} events while the worker drains…")
        began = time.perf_counter()
        accepted, more_errors = post_all(port, key, later, args.clients)
        ingest_seconds = time.perf_counter() - began
        errors += more_errors
        while_posting = backend.processed()
        total = first_accepted + accepted
        deadline = time.monotonic() + args.timeout
        while (done := backend.processed()) < total and time.monotonic() < deadline:
            if not worker.alive():
                raise SystemExit(f"worker exited:\n{worker.output()}")
            time.sleep(0.5)
        if done < total:
            errors.append(f"only {done:,} of {total:,} processed in {args.timeout} s")
        first_at, last_at = backend.span()
        result = Result(
            label=backend.label,
            first=first_accepted,
            events=accepted,
            ingest_seconds=ingest_seconds,
            processed_while_posting=while_posting,
            process_seconds=(last_at - first_at).total_seconds(),
            derived=backend.derived(),
            errors=errors,
        )
        print(
            f"[{backend.label}] ingest {result.ingest_rate:,.0f} events/s, processing "
            f"{result.process_rate:,.0f} events/s, {len(errors)} errors",
            flush=True,
        )
        return result
    finally:
        worker.stop()
        web.stop()


def table(results: Sequence[Result]) -> str:
    lines = [
        "| backend | events posted while draining | ingest s | ingest events/s | "
        "processed meanwhile | inbound events processed | processing s | "
        "processing events/s | derived per inbound | requests failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        total = r.first + r.events
        lines.append(
            f"| {r.label} | {r.events:,} | {r.ingest_seconds:.2f} | {r.ingest_rate:,.0f} | "
            f"{r.processed_while_posting:,} | {total:,} | {r.process_seconds:.1f} | "
            f"{r.process_rate:,.0f} | {r.derived / total:.2f} | {len(r.errors)} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--first", type=int, default=1000, help="events the worker starts on")
    parser.add_argument("--events", type=int, default=4000, help="events posted while it drains")
    parser.add_argument("--batch", type=int, default=100, help="events per /v1/batch request")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--timeout", type=int, default=900, help="seconds to wait for processing")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["embedded", "postgres"], help="measure one backend only")
    parser.add_argument(
        "--without-inbox",
        action="store_true",
        help="also measure the embedded default with EVENT_INBOX=false (events straight "
        "into the database, as before the inbox)",
    )
    parser.add_argument("--record", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    load_before = Path("/proc/loadavg").read_text().split()[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="perf-embedded-") as scratch:
        backends: list[Backend] = []
        if args.only != "postgres":
            backends.append(Embedded(Path(scratch) / "sqlite", inbox=True))
            if args.without_inbox:
                backends.append(Embedded(Path(scratch) / "sqlite-direct", inbox=False))
        if args.only != "embedded":
            database_ensure(args.database_url)
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            broker_connect(args.redis_url).flushdb()
            backends.append(Postgres(args.database_url, args.redis_url, Path(scratch) / "pg"))
        for backend in backends:
            results.append(run_backend(backend, args))
    load_after = Path("/proc/loadavg").read_text().split()[0]
    text = table(results)
    print(text)
    for r in results:
        for error in r.errors[:5]:
            print(f"{r.label}: {error}")
    if args.record:
        m = machine()
        pg = postgres_version(args.database_url) if args.only != "embedded" else "-"
        ratio = ""
        if len(results) >= 2 and args.only is None:
            sqlite_, pg_ = results[0], results[-1]
            ratio = (
                f"\n\nSQLite / PostgreSQL in this run: ingest while draining "
                f"{sqlite_.ingest_rate / pg_.ingest_rate:.2f} times, processing "
                f"{sqlite_.process_rate / pg_.process_rate:.2f} times."
            )
        record(
            f"## embedded: {started:%Y-%m-%d %H:%M} UTC\n\n"
            "`bench/embedded.py`: the demo account (`load_demo --no-replay`) on the "
            "embedded default and on PostgreSQL + Redis, web and one worker as `runstack` "
            f"starts them; {args.first:,} events posted first, then {args.events:,} more "
            f"through `/v1/batch` ({args.batch} a request, {args.clients} clients) while the "
            "worker drains; processing from the run's first `processed_at` to its last.\n\n"
            f"- machine: {m['arch']}, {m['cores']} cores, {m['ram']} RAM; Python "
            f"{m['python']}, SQLite {sqlite3.sqlite_version}, PostgreSQL {pg}; everything on "
            f"one host, shared with other engineers' test runs: load average (1 min) "
            f"{load_before} at the start, {load_after} at the end\n\n{text}{ratio}\n"
        )
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

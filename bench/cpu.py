"""What an inbound event costs the worker, in CPU time: its Python and its
PostgreSQL backend's, on the accounts of ``bench/account.py``.

Events/s through a real worker move by a quarter from one run to the next on a
shared machine. CPU time moves much less, so this is the measure to compare two
versions of the code with (run it on each, one after the other). The account is
built as ``bench/account.py`` builds it (``--reuse`` keeps the last one), given
the same recent past, then ``--events`` inbound events are processed in this
process, 100 at a time as a worker's messages carry them, after 200 to warm
up. Reported per inbound event: wall time, the process's CPU time
(``time.process_time``) and its backend's (``/proc/<pid>/stat`` of the
server's process: PostgreSQL on this host only).

    .venv/bin/python bench/cpu.py --flows 10,50 --segments 5
    .venv/bin/python bench/cpu.py --demo
    .venv/bin/python bench/cpu.py ... --record          # append to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import account
from machine import machine
from psycopg import conninfo as pg_conninfo
from stack import (
    RESULTS,
    ROOT,
    app_env,
    database_ensure,
    django_setup,
    manage,
    postgres_settings,
    record,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadflow_bench_cpu"
WARM_UP = 200


@dataclass
class Cost:
    label: str
    events: int
    wall_ms: float
    python_ms: float
    server_ms: float | None


def backend_seconds(pid: int) -> float | None:
    """The user and system CPU time of the server process ``pid``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(conninfo: str, *, args: argparse.Namespace, flows: int, segments: int) -> Cost:
    from django.db import connection

    from leads.services.events import events_process

    label = "demo" if args.demo else f"{flows} flows, {segments} segments"
    if not args.reuse:
        print(f"building the account: {label}, {args.leads:,} leads…", flush=True)
        account.account_build(
            conninfo,
            leads=args.leads,
            flows=flows,
            segments=segments,
            demo=args.demo,
            seed=args.seed,
        )
        past = account.inbound_messages(count=1_000, leads=args.leads, seed=args.seed + 2, tag="p")
        account.past_process(conninfo, past)
    messages = account.inbound_messages(
        count=WARM_UP + args.events,
        leads=args.leads,
        seed=args.seed + 10,
        tag=f"c{time.time_ns()}",
    )
    ids = account.backlog_record(messages, enqueue=False)
    for start in range(0, WARM_UP, account.BATCH):
        events_process(event_ids=ids[start : start + account.BATCH])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    wall, python, server = time.perf_counter(), time.process_time(), backend_seconds(pid)
    for start in range(WARM_UP, len(ids), account.BATCH):
        events_process(event_ids=ids[start : start + account.BATCH])
    wall, python = time.perf_counter() - wall, time.process_time() - python
    after = backend_seconds(pid)
    count = len(ids) - WARM_UP
    cost = Cost(
        label=label,
        events=count,
        wall_ms=1000 * wall / count,
        python_ms=1000 * python / count,
        server_ms=1000 * (after - server) / count
        if server is not None and after is not None
        else None,
    )
    print(f"  {cost.wall_ms:.2f} ms an event ({cost.python_ms:.2f} ms Python)", flush=True)
    return cost


def table(costs: Sequence[Cost]) -> str:
    lines = [
        "| account | inbound events | wall ms / event | Python CPU ms / event "
        "| server CPU ms / event | CPU ratio to first |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = costs[0]
    for cost in costs:
        server = f"{cost.server_ms:.2f}" if cost.server_ms is not None else "-"
        both = cost.python_ms + (cost.server_ms or 0)
        first = base.python_ms + (base.server_ms or 0)
        lines.append(
            f"| {cost.label} | {cost.events:,} | {cost.wall_ms:.2f} | {cost.python_ms:.2f} | "
            f"{server} | {both / first:.2f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CPU time per inbound event, in-process.")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--flows", default="10", help="comma-separated flow counts")
    parser.add_argument("--segments", default="5", help="comma-separated segment counts")
    parser.add_argument("--demo", action="store_true", help="the demo's flows and segments")
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--reuse", action="store_true", help="keep the last account built")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--note", default="", help="a sentence for the record")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    args.flow_counts = [int(x) for x in args.flows.split(",")]
    args.segment_counts = [int(x) for x in args.segments.split(",")]
    if args.demo:
        args.flow_counts, args.segment_counts = [6], [5]
    if args.reuse and len(args.flow_counts) * len(args.segment_counts) > 1:
        parser.error("--reuse measures the one account built last")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    conninfo = pg_conninfo.make_conninfo(args.database_url)
    database_ensure(conninfo)
    costs: list[Cost] = []
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as data_dir:
        env = app_env(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=args.database_url,
            REDIS_URL=None,
            LEADFLOW_DATA_DIR=data_dir,
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        print("migrating…", flush=True)
        manage(env, "migrate", "--noinput")
        django_setup(env)
        for flows in args.flow_counts:
            for segments in args.segment_counts:
                costs.append(measure(conninfo, args=args, flows=flows, segments=segments))
    info = machine()
    pg = postgres_settings(conninfo, ("server_version", "shared_buffers"))
    now = dt.datetime.now().astimezone()
    text = (
        f"## cpu: {now:%Y-%m-%d %H:%M %Z}\n\n"
        "`bench/cpu.py`: the accounts of `bench/account.py`, "
        f"{args.events:,} inbound events processed in-process, {account.BATCH} at a time, "
        f"after {WARM_UP} to warm up; CPU time per inbound event (its derived events "
        "included) of the process and of its PostgreSQL backend."
        + (f" {args.note}" if args.note else "")
        + "\n\n"
        f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; "
        f"Python {info['python']}, PostgreSQL {pg['server_version'].split()[0]} "
        f"(shared_buffers {pg['shared_buffers']}), on one host shared with other work; "
        f"load average (1 min) {os.getloadavg()[0]:.2f} at the end\n"
        f"- parameters: --leads {args.leads} "
        + ("--demo" if args.demo else f"--flows {args.flows} --segments {args.segments}")
        + f" --events {args.events} --seed {args.seed}; whole run "
        f"{(time.perf_counter() - began) / 60:.1f} min\n\n"
        f"{table(costs)}\n"
    )
    print("\n" + text)
    if args.record:
        record(text)
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

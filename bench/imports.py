"""CSV lead import: wall time and peak memory of ``manage.py import_leads``.

A realistic CSV (about 1% of its rows bad: an invalid email or a non-numeric
Employees cell) is imported twice into an empty, freshly migrated database: the
first pass creates every good row; the second finds every one of them, which the
command reports as updated, though with nothing changed no lead row is rewritten.
The same is done at a tenth of the size, and with a header-only file, so the peak
resident set can be compared across sizes: a streaming import holds one batch at a
time, so its peak should not grow with the file.

Each import is its own ``manage.py`` process, measured from spawn to exit (Django
start-up included, as whoever runs the command sees it); its peak RSS is the
``ru_maxrss`` that ``wait4`` returns for that one process. Counts are checked
against the command's summary line and against the database itself.

SQLite runs in a temporary ``LEADFLOW_DATA_DIR``; PostgreSQL uses a scratch
database that is dropped and re-created for each size. ``REDIS_URL`` is unset, so
the after-commit task messages go to the embedded broker, a SQLite file in the
temporary data directory, and no worker consumes them.

    .venv/bin/python bench/imports.py                  # print the table
    .venv/bin/python bench/imports.py --record         # and append to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from machine import machine as shared_machine
from psycopg import conninfo as pg_conninfo
from psycopg import sql
from stack import RESULTS, ROOT, app_env, manage, postgres_version, record

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadflow_bench_import"
DATABASES = ("sqlite", "postgresql")
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
HEADER = ["Email", "First Name", "Last Name", "Title", "Company", "Employees", "Country", "Tags"]
SUMMARY = re.compile(r"^(\d+) rows: (\d+) created, (\d+) updated, (\d+) failed$", re.MULTILINE)
# One bad row in this many: 1%.
BAD_EVERY = 100

# --- the CSV --------------------------------------------------------------------

FIRST_NAMES = [
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Mia",
    "Lucas", "Chloé", "Mateo", "Zoë", "Søren", "Aisha", "Hiroshi", "Priya", "José",
    "Fatima", "Ingrid", "Wei", "Nikolai", "Ana", "Kwame", "Élodie", "Tomás",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "García", "Müller", "Rossi", "Nguyen",
    "Kowalski", "O'Brien", "Dubois", "Tanaka", "Patel", "Silva", "Andersson", "Kim",
    "van der Berg", "Hernández", "Okafor", "Novak", "Schmidt", "Ivanova", "Costa",
]  # fmt: skip
TITLES = [
    "Marketing Manager", "Head of Growth", "CTO", "VP Sales", "Software Engineer",
    "Founder & CEO", "Product Manager", "Demand Generation Lead", "Operations Director",
    "Customer Success Manager", "Data Analyst", "", "",
]  # fmt: skip
COMPANY_WORDS = [
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay",
    "Soylent", "Tyrell", "Cyberdyne", "Wonka", "Aperture", "Massive", "Pied Piper",
]  # fmt: skip
COMPANY_SUFFIXES = ["Inc.", "GmbH", "Ltd", "Labs", "SA", "Group", "AG", "LLC", ""]
COUNTRIES = [
    "United States", "Germany", "France", "United Kingdom", "Brazil", "India", "Japan",
    "Canada", "Spain", "Netherlands", "Nigeria", "Sweden", "Australia", "",
]  # fmt: skip
TAG_NAMES = ["newsletter", "webinar-2024", "trial", "customer", "partner", "event:saas-connect"]
DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "proton.me"]
BAD_EMAILS = ["{local} at {domain}", "{local}@", "@{domain}", "{local}@@{domain}", "{local}"]
BAD_EMPLOYEES = ["about 50", "n/a", "50-200", "10k", "unknown"]


@dataclass
class Expected:
    """What a correct import of the generated file leaves behind."""

    rows: int
    good: int
    bad: int
    tag_links: int
    csv_bytes: int


def _employees(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.1:
        return ""
    size = int(rng.lognormvariate(4, 1.6)) + 1
    # Spreadsheets export thousands with a separator; the import accepts it.
    return f"{size:,}" if size >= 1000 and rng.random() < 0.5 else str(size)


def write_csv(path: Path, *, rows: int, seed: int) -> Expected:
    """Write ``rows`` leads, every ``BAD_EVERY``-th one invalid, and return the
    counts a correct import must produce. Emails are unique, so a first import
    creates every good row and a second updates every one."""
    rng = random.Random(seed)
    good = bad = tag_links = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for number in range(rows):
            first = rng.choice(FIRST_NAMES)
            last = rng.choice(LAST_NAMES)
            company = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_SUFFIXES)}".strip()
            ascii_name = (
                unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
            )
            local = re.sub(r"[^a-z]+", ".", ascii_name.lower()).strip(".") + str(number)
            domain = (
                rng.choice(DOMAINS)
                if rng.random() < 0.3
                else re.sub(r"[^a-z]+", "", company.lower()) + ".com"
            )
            # Mixed case, as people type it: stored lower-cased.
            email = f"{local.title()}@{domain}" if rng.random() < 0.2 else f"{local}@{domain}"
            employees = _employees(rng)
            tags = rng.sample(TAG_NAMES, rng.choice([0, 0, 1, 1, 2, 3]))
            if number % BAD_EVERY == BAD_EVERY // 2:
                # Alternate the two kinds so both error paths run in every size.
                if (number // BAD_EVERY) % 2:
                    email = rng.choice(BAD_EMAILS).format(local=local, domain=domain)
                else:
                    employees = rng.choice(BAD_EMPLOYEES)
                bad += 1
            else:
                good += 1
                tag_links += len(tags)
            writer.writerow(
                [
                    email,
                    first,
                    last,
                    rng.choice(TITLES),
                    company,
                    employees,
                    rng.choice(COUNTRIES),
                    rng.choice([";", ", "]).join(tags),
                ]
            )
    return Expected(
        rows=rows, good=good, bad=bad, tag_links=tag_links, csv_bytes=path.stat().st_size
    )


# --- measuring a child ----------------------------------------------------------


@dataclass
class Child:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run_measured(args: Sequence[str], env: dict[str, str]) -> Child:
    """Run ``manage.py *args``; wall time and the peak RSS of that process alone.

    ``wait4`` returns the rusage of the one child it reaps, so nothing run before
    (migrate, the other imports) leaks into the number, as it would with
    ``getrusage(RUSAGE_CHILDREN)``, which keeps the maximum over all children."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        # Reaped here, so Popen is told, or it would try to wait for it again.
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        # ru_maxrss is in KiB on Linux and in bytes on macOS.
        per_mb = 1024 * 1024 if sys.platform == "darwin" else 1024
        return Child(
            seconds=seconds,
            peak_rss_mb=usage.ru_maxrss / per_mb,
            returncode=process.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


# --- the databases --------------------------------------------------------------


@dataclass
class Stored:
    leads: int
    created_events: int
    tag_links: int
    broker_messages: int


COUNT_QUERIES = (
    "SELECT count(*) FROM leads_lead",
    "SELECT count(*) FROM leads_event WHERE type = 'lead.created'",
    "SELECT count(*) FROM leads_lead_tags",
)


def database_recreate(conninfo: str) -> None:
    """Drop and create the scratch database, so each size starts from empty tables
    with no dead rows left by the previous one."""
    name = str(pg_conninfo.conninfo_to_dict(conninfo).get("dbname") or "")
    if "bench" not in name:
        raise SystemExit(
            f"refusing to drop database {name!r}: the bench database's name must contain 'bench'"
        )
    admin = pg_conninfo.make_conninfo(conninfo, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def stored_counts(kind: str, *, conninfo: str, data_dir: Path) -> Stored:
    counts: list[int] = []
    if kind == "postgresql":
        with psycopg.connect(conninfo) as conn:
            for query in COUNT_QUERIES:
                row = conn.execute(query).fetchone()
                counts.append(int(row[0]) if row else -1)
    else:
        with sqlite3.connect(data_dir / "leadflow.sqlite3") as db:
            counts = [int(db.execute(query).fetchone()[0]) for query in COUNT_QUERIES]
    leads, created_events, tag_links = counts
    return Stored(leads, created_events, tag_links, broker_messages(data_dir))


def broker_messages(data_dir: Path) -> int:
    """Task messages sent to the embedded broker (kombu keeps them until purged)."""
    path = data_dir / "broker.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        try:
            return int(db.execute("SELECT count(*) FROM kombu_message").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


# --- one database, one size -----------------------------------------------------


@dataclass
class Measurement:
    database: str
    rows: int
    label: str
    seconds: float
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.rows and self.seconds else 0.0


@dataclass
class Outcome:
    measurements: list[Measurement] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def import_checked(
    env: dict[str, str], path: Path, *, expect: tuple[int, int, int, int], where: str
) -> tuple[Child, list[str]]:
    """Run the import; the child and what is wrong with its summary line."""
    child = run_measured(["import_leads", str(path)], env)
    if child.returncode != 0:
        return child, [f"{where}: exit {child.returncode}:\n{child.stderr[-2000:]}"]
    summary = SUMMARY.search(child.stdout)
    if summary is None:
        return child, [f"{where}: no summary line in {child.stdout[-500:]!r}"]
    got = tuple(int(n) for n in summary.groups())
    if got != expect:
        return child, [
            f"{where}: reported {summary.group(0)!r}, expected "
            f"{expect[0]} rows: {expect[1]} created, {expect[2]} updated, {expect[3]} failed"
        ]
    return child, []


def run_size(
    kind: str,
    *,
    path: Path,
    expected: Expected,
    database_url: str,
    header_only: Path | None,
) -> Outcome:
    """Import the file twice into a fresh database (and, first, a header-only file
    for the start-up baseline) and check what each pass reports and stores."""
    outcome = Outcome()
    label = LABELS[kind]
    conninfo = pg_conninfo.make_conninfo(database_url) if kind == "postgresql" else ""
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-import-") as tmp:
        data_dir = Path(tmp)
        env = app_env(
            DATABASE_URL=database_url if kind == "postgresql" else None,
            # No broker: task messages go to the embedded one in the data directory.
            REDIS_URL=None,
            LEADFLOW_DATA_DIR=str(data_dir),
        )
        if kind == "postgresql":
            database_recreate(conninfo)
        manage(env, "migrate", "--noinput")

        if header_only is not None:
            child, errors = import_checked(
                env, header_only, expect=(0, 0, 0, 0), where=f"{label} header only"
            )
            outcome.errors += errors
            outcome.measurements.append(
                Measurement(label, 0, "header only", child.seconds, child.peak_rss_mb)
            )
            print(
                f"{label:<10} {0:>8,} rows  header only  {child.seconds:6.2f} s  "
                f"{child.peak_rss_mb:6.1f} MB",
                flush=True,
            )

        passes = (
            ("first", (expected.rows, expected.good, 0, expected.bad)),
            ("second", (expected.rows, 0, expected.good, expected.bad)),
        )
        messages_before = 0
        for name, expect in passes:
            where = f"{label} {expected.rows:,} rows, {name} pass"
            child, errors = import_checked(env, path, expect=expect, where=where)
            outcome.errors += errors
            outcome.measurements.append(
                Measurement(label, expected.rows, name, child.seconds, child.peak_rss_mb)
            )
            print(
                f"{label:<10} {expected.rows:>8,} rows  {name:<6} pass  {child.seconds:6.2f} s  "
                f"{child.peak_rss_mb:6.1f} MB",
                flush=True,
            )
            if errors:
                continue
            reported = len(re.findall(r"^row \d+: ", child.stderr, re.MULTILINE))
            if expected.bad and not 0 < reported <= expected.bad:
                outcome.errors.append(f"{where}: {reported} row errors printed")
            stored = stored_counts(kind, conninfo=conninfo, data_dir=data_dir)
            wanted = Stored(
                leads=expected.good,
                created_events=expected.good,
                tag_links=expected.tag_links,
                broker_messages=stored.broker_messages,
            )
            if stored != wanted:
                outcome.errors.append(f"{where}: stored {stored}, expected {wanted}")
            # Every batch that creates leads enqueues their lead.created events
            # after commit; a pass that creates none enqueues nothing.
            sent = stored.broker_messages - messages_before
            if (name == "first") != (sent > 0):
                outcome.errors.append(f"{where}: {sent} task messages sent to the broker")
            messages_before = stored.broker_messages
    return outcome


# --- report ---------------------------------------------------------------------


def machine() -> dict[str, str]:
    return {**shared_machine(), "sqlite": sqlite3.sqlite_version}


def table(measurements: Sequence[Measurement]) -> str:
    lines = [
        "| database | rows | pass | seconds | rows/s | peak RSS MB |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for m in measurements:
        rate = f"{m.rate:,.0f}" if m.rows else "-"
        lines.append(
            f"| {m.database} | {m.rows:,} | {m.label} | {m.seconds:.2f} | {rate} "
            f"| {m.peak_rss_mb:.1f} |"
        )
    return "\n".join(lines)


def findings(measurements: Sequence[Measurement], *, rows: int, small: int) -> str:
    """One or two sentences read off the numbers, so a recorded section says what
    it shows whichever way it came out."""
    sentences = []
    by_key = {(m.database, m.rows, m.label): m for m in measurements}
    databases = list(dict.fromkeys(m.database for m in measurements))
    if small:
        growth = max(
            by_key[(db, rows, name)].peak_rss_mb - by_key[(db, small, name)].peak_rss_mb
            for db in databases
            for name in ("first", "second")
        )
        baseline = max(by_key[(db, 0, "header only")].peak_rss_mb for db in databases)
        peak = max(m.peak_rss_mb for m in measurements)
        if growth <= max(10.0, 0.1 * baseline):
            sentences.append(
                f"Memory stays flat: peak RSS at {rows:,} rows is at most {growth:.1f} MB "
                f"above {small:,} rows (at most {peak:.0f} MB in all, of which "
                f"{baseline:.0f} MB is the command importing a header-only file)."
            )
        else:
            sentences.append(
                f"Memory grows with the file: peak RSS at {rows:,} rows is up to "
                f"{growth:.0f} MB above {small:,} rows, against {baseline:.0f} MB for a "
                "header-only file, so something holds on to rows."
            )
    parts = []
    for db in databases:
        first, second = by_key[(db, rows, "first")], by_key[(db, rows, "second")]
        parts.append(
            f"{first.seconds:.1f} s then {second.seconds:.1f} s on {db} "
            f"({first.rate:,.0f} and {second.rate:,.0f} rows/s)"
        )
    sentences.append(
        f"{rows:,} rows take {' and '.join(parts)} for the creating and the updating "
        "pass, Django start-up included."
    )
    return " ".join(sentences)


# --- main -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Time and peak memory of `manage.py import_leads` on a generated CSV with "
            "1% bad rows, imported twice (creates, then updates) into SQLite and "
            "PostgreSQL, at two sizes to show memory does not grow with the file."
        )
    )
    parser.add_argument(
        "--rows", type=int, default=100_000, help="rows in the CSV (default: %(default)s)"
    )
    parser.add_argument(
        "--small-rows",
        type=int,
        default=10_000,
        help="rows in the smaller CSV whose peak memory is compared; 0 skips it "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--databases",
        nargs="+",
        choices=DATABASES,
        default=list(DATABASES),
        help="databases to run against (default: both)",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="scratch PostgreSQL database, dropped and re-created for each size; its "
        "name must contain 'bench' (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=1, help="CSV seed (default: %(default)s)")
    parser.add_argument(
        "--record", action="store_true", help="append the result to bench/RESULTS.md"
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if not 0 <= args.small_rows < args.rows:
        parser.error("--small-rows must be at least 0 and less than --rows")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    databases = [kind for kind in DATABASES if kind in args.databases]
    sizes = [n for n in (args.small_rows, args.rows) if n]
    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-csv-") as tmp:
        header_only = Path(tmp) / "header.csv"
        header_only.write_text(",".join(HEADER) + "\r\n")
        files: dict[int, tuple[Path, Expected]] = {}
        for size in sizes:
            path = Path(tmp) / f"leads-{size}.csv"
            files[size] = (path, write_csv(path, rows=size, seed=args.seed))
            print(
                f"wrote {size:,} rows ({files[size][1].bad} bad), "
                f"{files[size][1].csv_bytes / 1e6:.1f} MB",
                flush=True,
            )
        for kind in databases:
            for index, size in enumerate(sizes):
                path, expected = files[size]
                done = run_size(
                    kind,
                    path=path,
                    expected=expected,
                    database_url=args.database_url,
                    header_only=header_only if index == 0 else None,
                )
                outcome.measurements += done.measurements
                outcome.errors += done.errors

    result = table(outcome.measurements)
    print("\n" + result)
    if outcome.errors:
        print(f"\n{len(outcome.errors)} errors:", *outcome.errors, sep="\n  ", file=sys.stderr)
        return 1
    summary = findings(outcome.measurements, rows=args.rows, small=args.small_rows)
    print("\n" + summary)
    if args.record:
        info = machine()
        versions = f"Python {info['python']}, SQLite {info['sqlite']}"
        if "postgresql" in databases:
            admin = pg_conninfo.make_conninfo(args.database_url, dbname="postgres")
            versions += f", PostgreSQL {postgres_version(admin)}"
        _, large = files[args.rows]
        now = dt.datetime.now().astimezone()
        record(
            f"## imports: {now:%Y-%m-%d %H:%M %Z}\n\n"
            "`bench/imports.py`: `manage.py import_leads` on a generated CSV, imported "
            "twice into a freshly migrated database (the first pass creates every good "
            "row, the second matches them all: reported as updated, but with no value "
            "changed no lead row is rewritten); seconds are the whole process, Django "
            "start-up included, and peak RSS is that process's `ru_maxrss`. The "
            "header-only row is the baseline: the command with nothing to import.\n\n"
            f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; "
            f"{versions}; command and database on the same host\n"
            f"- parameters: --rows {args.rows} --small-rows {args.small_rows} "
            f"--seed {args.seed} --databases {' '.join(databases)}; "
            f"CSV {large.csv_bytes / 1e6:.1f} MB, {large.bad:,} bad rows (invalid email or "
            "non-numeric Employees); REDIS_URL unset, so task messages go to the "
            "embedded broker and no worker runs\n\n"
            f"{result}\n\n{summary}\n",
            header="# Benchmarks\n",
        )
        print(f"\nrecorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Segment computation at scale: recompute, preview count and the per-lead check
against hand-written SQL, on PostgreSQL.

A scratch database is filled with COPY: leads with realistic titles, company
sizes, countries, stages and tags, and events (page views, email opens and
clicks, product events) over 180 days, a few leads very active and many quiet.
Three representative segments are then created through the Django models and
measured in-process:

- the first full ``segment_recompute`` (write-heavy: a membership row and a
  ``segment.entered`` event for every member);
- the steady-state recompute, later runs with nothing to change (best of
  ``--runs``, alternating with the raw and the compiled count);
- the compiled selection, ``Lead.objects.filter(compile_tree(tree)).count()``,
  which is also what the segment builder's preview count runs;
- a hand-written SQL count of the same leads (``EXISTS`` / ``GROUP BY …
  HAVING``) through psycopg, whose result must equal the segment's member count;
- ``segments_check_lead`` for random leads, each in a savepoint rolled back
  (all in one transaction, rolled back too: a worker's session keeps its
  prepared statements from one transaction to the next, and psycopg forgets
  them all when a transaction is rolled back).

The clock is pinned to the moment the generated events end, so "in the last 30
days" means the same leads in every run, a ``--reuse`` run days later included,
and the member count can be checked against the raw query exactly.

    .venv/bin/python bench/segmentation.py                       # 1M leads, 10M events
    .venv/bin/python bench/segmentation.py --reuse --record      # keep the data, record
    .venv/bin/python bench/segmentation.py --leads 100000 --events 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from unittest import mock

import psycopg
from machine import machine
from psycopg import conninfo as pg_conninfo
from psycopg import sql
from stack import (
    RESULTS,
    ROOT,
    app_env,
    database_ensure,
    django_setup,
    manage,
    postgres_settings,
    record,
    vacuum_analyze,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadflow_bench_segments"
SOURCE = "bench"
DAYS = 180
# Leads become active or go quiet from one period to the next.
PERIOD_DAYS = 30
SECONDS_PER_DAY = 86_400
# Rows handed to the COPY stream at a time.
CHUNK_ROWS = 20_000
SEGMENT_PREFIX = "bench: "
SITE = "https://www.leadflow.example"
GOAL_RATIO = 1.5
GOAL_CHECK_MS = 5.0
LOADED_TABLES = ("leads_lead", "leads_event", "leads_lead_tags")

T = TypeVar("T")

# --- leads ----------------------------------------------------------------------

FIRST_NAMES = [
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Mia",
    "Lucas", "Chloé", "Mateo", "Zoë", "Søren", "Aisha", "Hiroshi", "Priya", "José",
    "Fatima", "Ingrid", "Wei", "Nikolai", "Ana", "Kwame", "Élodie", "Tomás", "Jana",
    "Lena", "Tom", "Sarah", "David", "Yuki", "Omar", "Grace", "Henrik", "Marta",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "García", "Müller", "Rossi", "Nguyen",
    "Kowalski", "O'Brien", "Dubois", "Tanaka", "Patel", "Silva", "Andersson", "Kim",
    "van der Berg", "Hernández", "Okafor", "Novak", "Schmidt", "Ivanova", "Costa",
    "Fischer", "Becker", "Richter", "Jensen", "Moreau", "Sato", "Cohen", "Lopez",
]  # fmt: skip
# (title, weight): about one lead in seven decides, a fifth left the field empty.
TITLES = [
    ("CEO", 2), ("Founder & CEO", 2), ("Co-Founder", 1), ("VP Marketing", 2),
    ("VP Sales", 1), ("VP Engineering", 1), ("Head of Growth", 2), ("Head of Marketing", 2),
    ("Marketing Director", 2), ("Director of Operations", 1), ("Marketing Manager", 9),
    ("Demand Generation Manager", 3), ("Product Manager", 5), ("Software Engineer", 8),
    ("Senior Software Engineer", 5), ("Data Analyst", 4), ("Account Executive", 5),
    ("Sales Representative", 4), ("Customer Success Manager", 4), ("Consultant", 3),
    ("Content Marketer", 3), ("Student", 4), ("Freelancer", 2), ("", 20),
]  # fmt: skip
COMPANY_WORDS = [
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay",
    "Soylent", "Tyrell", "Cyberdyne", "Wonka", "Aperture", "Massive", "Nordlicht",
    "Bluebird", "Kestrel", "Northwind", "Contoso", "Fabrikam",
]  # fmt: skip
COMPANY_SUFFIXES = ["Inc.", "GmbH", "Ltd", "Labs", "SA", "Group", "AG", "LLC", "", ""]
# (low, high, weight) employees; a fifth of the leads have no company size.
COMPANY_SIZES = [(1, 10, 30), (11, 50, 25), (51, 200, 20), (201, 1000, 15), (1001, 20000, 10)]
INDUSTRIES = [
    "Software", "Retail", "Manufacturing", "Healthcare", "Finance", "Education",
    "Media", "Logistics", "Consulting", "Non-profit", "",
]  # fmt: skip
# (country, cities, weight)
COUNTRIES = [
    ("United States", ["New York", "San Francisco", "Austin", "Chicago"], 30),
    ("United Kingdom", ["London", "Manchester", "Edinburgh"], 10),
    ("Germany", ["Berlin", "München", "Hamburg", "Köln"], 10),
    ("India", ["Bengaluru", "Mumbai", "Pune"], 8),
    ("France", ["Paris", "Lyon"], 6),
    ("Canada", ["Toronto", "Vancouver", "Montréal"], 5),
    ("Australia", ["Sydney", "Melbourne"], 4),
    ("Netherlands", ["Amsterdam", "Utrecht"], 4),
    ("Brazil", ["São Paulo", "Rio de Janeiro"], 4),
    ("Spain", ["Madrid", "Barcelona"], 3),
    ("Italy", ["Milano", "Roma"], 3),
    ("Japan", ["Tokyo", "Osaka"], 3),
    ("Poland", ["Warszawa", "Kraków"], 2),
    ("Sweden", ["Stockholm"], 2),
    ("", [""], 6),
]
STAGES = [
    ("subscriber", 45),
    ("lead", 28),
    ("mql", 10),
    ("sql", 5),
    ("customer", 8),
    ("disqualified", 4),
]
TAGS = [
    "newsletter", "webinar-2026", "trial", "partner", "event:saastr", "event:web-summit",
    "imported:linkedin", "imported:crm", "competitor-user", "beta", "enterprise",
    "agency", "churn-risk", "vip", "do-not-call", "referral", "g2-review", "podcast",
    "ebook:scoring", "ebook:automation",
]  # fmt: skip
EMAIL_DOMAINS = ["gmail.com", "outlook.com", "acme.test", "globex.test", "proton.me", "hooli.test"]

# --- events ---------------------------------------------------------------------

# (name, path, weight): pricing is 10 of 100.
PAGES = [
    ("Home", "/", 18),
    ("Pricing", "/pricing", 8),
    ("Pricing: compare plans", "/pricing/compare", 2),
    ("Features", "/features", 10),
    ("Lead scoring", "/features/lead-scoring", 6),
    ("Automation flows", "/features/flows", 6),
    ("Integrations", "/integrations", 5),
    ("Customers", "/customers", 4),
    ("Book a demo", "/demo", 3),
    ("Lead scoring without the guesswork", "/blog/lead-scoring-without-guesswork", 10),
    ("Self-hosting your marketing automation", "/blog/self-hosting-marketing-automation", 8),
    ("From MQL to SQL", "/blog/from-mql-to-sql", 6),
    ("Quickstart", "/docs/quickstart", 8),
    ("Tracking API", "/docs/tracking-api", 6),
]
REFERRERS = [
    "",
    "",
    "",
    "https://www.google.com/",
    "https://www.linkedin.com/",
    "https://duckduckgo.com/",
]
# (name, subject, landing path)
CAMPAIGNS = [
    ("Welcome 1/3", "Welcome to Leadflow", "/docs/quickstart"),
    ("Welcome 2/3", "Score your first leads in ten minutes", "/features/lead-scoring"),
    ("Monthly newsletter", "What's new in marketing automation", "/blog/from-mql-to-sql"),
    ("Webinar invitation", "Webinar: lead scoring that sales trusts", "/webinars/scoring"),
    ("Case study", "How Nordlicht doubled demo bookings", "/customers/nordlicht"),
    ("Product update", "New: the segment builder", "/blog/segment-builder"),
    ("Pricing follow-up", "Questions about plans?", "/pricing"),
]
# (name, properties, weight)
TRACKS = [
    ("Logged in", {}, 30),
    ("Created project", {"project": "Spring launch"}, 12),
    ("Created flow", {"flow": "Welcome series"}, 10),
    ("Signed up for trial", {"plan": "trial"}, 8),
    ("Invited teammate", {"role": "marketer"}, 6),
    ("Imported contacts", {"rows": 250}, 6),
    ("Published flow", {}, 4),
    ("Connected integration", {"integration": "Stripe"}, 4),
    ("Booked a call", {}, 3),
    ("Upgraded plan", {"plan": "team"}, 2),
]
# Cumulative shares of the event types: page, email.opened, email.clicked, track.
TYPE_SHARES = (0.52, 0.74, 0.80)


def _weighted_pool(items: Sequence[tuple[Any, int]]) -> list[Any]:
    """Each item repeated by its weight, so one index into the pool is a weighted pick."""
    return [item for item, weight in items for _ in range(weight)]


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    # COPY's text format gives these a meaning; the fixed vocabularies have none.
    assert not any(c in text for c in "\\\t\n\r"), text
    return text


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _ascii(name: str) -> str:
    import unicodedata

    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum())


# --- generation -------------------------------------------------------------------


@dataclass
class Generated:
    seconds: dict[str, float]
    anchor: dt.datetime
    reused: bool


@dataclass
class LeadPlan:
    """What the event generator needs to know of every lead, in flat arrays
    (index = lead id) so a million leads stay a few tens of MB."""

    weight: array[float]
    created_day: array[float]
    quiet_day: array[float]
    first_seen: array[float]
    last_seen: array[float]


def plan_leads(rng: random.Random, leads: int) -> LeadPlan:
    weight = array("d", bytes(8 * (leads + 1)))
    created_day = array("d", bytes(8 * (leads + 1)))
    quiet_day = array("d", bytes(8 * (leads + 1)))
    random_ = rng.random
    pareto = rng.paretovariate
    for lead in range(1, leads + 1):
        # Three in ten leads did nothing in the window (old imports, one-time
        # sign-ups); the rest follow an 80/20 law, capped so that no single lead
        # holds a noticeable share of the table.
        if random_() >= 0.3:
            weight[lead] = min(pareto(1.16), 400.0)
        # Most leads predate the window; four in ten arrived during it.
        roll = random_()
        created_day[lead] = roll * DAYS if roll < 0.4 else -random_() * 3 * 365
        # A third of the leads went quiet at some point in the window.
        quiet_day[lead] = (
            max(created_day[lead], 0.0) + random_() * DAYS if random_() < 0.33 else DAYS + 1
        )
    zeros = bytes(8 * (leads + 1))
    return LeadPlan(weight, created_day, quiet_day, array("d", zeros), array("d", zeros))


def day_counts(events: int) -> list[int]:
    """Events per day: a slow growth over the window and quieter weekends,
    summing to exactly ``events``."""
    shares = [(1 + 0.5 * day / DAYS) * (0.6 if day % 7 in (5, 6) else 1.0) for day in range(DAYS)]
    total = sum(shares)
    exact = [events * share / total for share in shares]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(DAYS), key=lambda day: exact[day] - counts[day], reverse=True)
    for day in by_remainder[: events - sum(counts)]:
        counts[day] += 1
    return counts


def event_rows(
    rng: random.Random, plan: LeadPlan, *, leads: int, events: int, start: dt.datetime
) -> Iterator[str]:
    """COPY lines for ``leads_event`` in the order events happen, a chunk at a time."""
    random_ = rng.random
    choices = rng.choices
    clock = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(SECONDS_PER_DAY)]
    pages = [
        ("page", name, _copy_text(_json(props)))
        for (name, path, _), referrer in itertools.product(PAGES, REFERRERS)
        for props in [
            {"url": f"{SITE}{path}", "path": path, "title": f"{name} | Leadflow"}
            | ({"referrer": referrer} if referrer else {})
        ]
    ]
    page_pool = _weighted_pool(
        [(page, PAGES[index // len(REFERRERS)][2]) for index, page in enumerate(pages)]
    )
    tracks = _weighted_pool([(("track", n, _copy_text(_json(p))), w) for n, p, w in TRACKS])
    # Email properties end in a per-event message id, appended to these heads.
    mails = [
        (
            name,
            _json({"campaign": name, "subject": subject})[:-1] + ', "message_id": "<',
            _json({"campaign": name, "url": f"{SITE}{path}?utm_medium=email"})[:-1]
            + ', "message_id": "<',
        )
        for name, subject, path in CAMPAIGNS
    ]
    page_share, opened_share, clicked_share = TYPE_SHARES
    population = range(leads + 1)
    event_id = 0
    rows: list[str] = []
    cum: Sequence[float] = []
    last_seen = plan.last_seen
    first_seen = plan.first_seen
    for day, count in enumerate(day_counts(events)):
        if day % PERIOD_DAYS == 0:
            low, high = day, day + PERIOD_DAYS
            created, quiet, weight = plan.created_day, plan.quiet_day, plan.weight
            cum = array(
                "d",
                itertools.accumulate(
                    weight[i] if created[i] < high and quiet[i] > low else 0.0 for i in population
                ),
            )
            if cum[-1] == 0.0:
                raise SystemExit("no lead is active: use more leads")
        moment = start + dt.timedelta(days=day)
        prefix = f"{moment:%Y-%m-%d} "
        base = moment.timestamp()
        who = choices(population, cum_weights=cum, k=count)
        seconds = sorted(int(random_() * SECONDS_PER_DAY) for _ in range(count))
        if day == DAYS - 1 and seconds:
            # The last event ends the window: a reused database finds its clock.
            seconds[-1] = SECONDS_PER_DAY - 1
        for lead, second in zip(who, seconds, strict=True):
            event_id += 1
            at = prefix + clock[second]
            roll = random_()
            if roll < page_share:
                kind, name, props = page_pool[int(random_() * len(page_pool))]
            elif roll < clicked_share:
                name, opened, clicked = mails[int(random_() * len(mails))]
                if roll < opened_share:
                    kind, head = "email.opened", opened
                else:
                    kind, head = "email.clicked", clicked
                props = f'{head}{lead}.{event_id}@mail.leadflow.example>"}}'
            else:
                kind, name, props = tracks[int(random_() * len(tracks))]
            rows.append(
                f"{event_id}\t{lead}\t{kind}\t{name}\t{props}\t{{}}\t\t\t\t"
                f"{at}\t{at}\t{SOURCE}\t{event_id}\t{at}\t\t0\t0\n"
            )
            seen = base + second
            last_seen[lead] = seen
            if not first_seen[lead]:
                first_seen[lead] = seen
            if len(rows) >= CHUNK_ROWS:
                yield "".join(rows)
                rows = []
    if rows:
        yield "".join(rows)


EVENT_COLUMNS = (
    "id, lead_id, type, name, properties, context, user_id, anonymous_id, email, "
    "occurred_at, received_at, source, idempotency_key, processed_at, error, attempts, depth"
)
LEAD_COLUMNS = (
    "id, email, external_id, first_name, last_name, phone, job_title, company_name, "
    "company_size, industry, country, city, stage, unsubscribed, score, grade, "
    "custom_fields, raw_traits, created_at, updated_at, last_activity_at, source, "
    "source_detail"
)


def _stamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00")


def lead_rows(
    rng: random.Random,
    plan: LeadPlan,
    *,
    leads: int,
    start: dt.datetime,
    lead_tags: array[int],
) -> Iterator[str]:
    """COPY lines for ``leads_lead``; each lead's tag ids go to ``lead_tags`` as
    (lead, tag) pairs, for a COPY of their own."""
    random_ = rng.random
    titles = _weighted_pool(TITLES)
    sizes = _weighted_pool([((low, high), weight) for low, high, weight in COMPANY_SIZES])
    countries = _weighted_pool([((c, cities), w) for c, cities, w in COUNTRIES])
    stages = _weighted_pool(STAGES)
    slugs = {name: _ascii(name) for name in FIRST_NAMES + LAST_NAMES}
    window = start.timestamp()
    rows: list[str] = []
    for lead in range(1, leads + 1):
        first = FIRST_NAMES[int(random_() * len(FIRST_NAMES))]
        last = LAST_NAMES[int(random_() * len(LAST_NAMES))]
        domain = EMAIL_DOMAINS[int(random_() * len(EMAIL_DOMAINS))]
        email = f"{slugs[first]}.{slugs[last]}.{lead}@{domain}"
        external_id = f"usr_{lead:07d}" if random_() < 0.35 else "\\N"
        title = titles[int(random_() * len(titles))]
        company = f"{COMPANY_WORDS[int(random_() * len(COMPANY_WORDS))]} {lead % 997}"
        suffix = COMPANY_SUFFIXES[int(random_() * len(COMPANY_SUFFIXES))]
        if suffix:
            company = f"{company} {suffix}"
        size = "\\N"
        if random_() >= 0.2:
            low, high = sizes[int(random_() * len(sizes))]
            size = str(int(low + random_() * (high - low + 1)))
        industry = INDUSTRIES[int(random_() * len(INDUSTRIES))]
        country, cities = countries[int(random_() * len(countries))]
        city = cities[int(random_() * len(cities))]
        stage = stages[int(random_() * len(stages))]
        unsubscribed = "t" if random_() < 0.06 else "f"
        created = window + plan.created_day[lead] * SECONDS_PER_DAY
        if plan.first_seen[lead]:
            created = min(created, plan.first_seen[lead] - 60 - random_() * SECONDS_PER_DAY)
        last_seen = plan.last_seen[lead]
        activity = _stamp(last_seen) if last_seen else "\\N"
        updated = _stamp(max(created, last_seen))
        rows.append(
            f"{lead}\t{email}\t{external_id}\t{first}\t{_copy_text(last)}\t\t{title}\t"
            f"{company}\t{size}\t{industry}\t{country}\t{city}\t{stage}\t{unsubscribed}\t"
            f"0\tcold\t{{}}\t{{}}\t{_stamp(created)}\t{updated}\t{activity}\t\t\n"
        )
        if random_() < 0.35:
            for tag in rng.sample(range(1, len(TAGS) + 1), 1 + int(random_() * 3)):
                lead_tags.append(lead)
                lead_tags.append(tag)
        if len(rows) >= CHUNK_ROWS:
            yield "".join(rows)
            rows = []
    if rows:
        yield "".join(rows)


def _copy(cursor: psycopg.Cursor[Any], statement: str, chunks: Iterator[str]) -> None:
    with cursor.copy(statement) as copy:
        for chunk in chunks:
            copy.write(chunk)


def defer_indexes(cursor: psycopg.Cursor[Any], tables: Sequence[str]) -> list[str]:
    """Drop the secondary indexes and the unique and foreign-key constraints of
    ``tables``; returns the statements that put them back. Building an index once
    over sorted data is many times faster than maintaining it row by row, and a
    foreign key checked in one join beats a trigger per row."""
    indexes: list[str] = []
    uniques: list[str] = []
    foreign: list[str] = []
    for table in tables:
        constraints = cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('u', 'f')",
            [table],
        ).fetchall()
        for name, definition, kind in constraints:
            cursor.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.Identifier(table), sql.Identifier(name)
                )
            )
            add = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
            )
            (foreign if kind == "f" else uniques).append(add.as_string(cursor))
        rows = cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i WHERE i.indrelid = %s::regclass AND NOT i.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)",
            [table],
        ).fetchall()
        for name, definition in rows:
            cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            # A partitioned table's index is defined "ON ONLY" the parent: built
            # again, it must reach every partition.
            indexes.append(definition.replace(" ON ONLY ", " ON "))
    return indexes + uniques + foreign


def partitions_cover(cursor: psycopg.Cursor[Any], *, start: dt.datetime, end: dt.datetime) -> bool:
    """On a partitioned events table (PostgreSQL, leads/0024), a partition for
    every month from ``start`` to ``end``, as beat's ``events_partitions``
    would have made them on a live account over the months (else the history
    would all land in the default partition). Whether the table is partitioned."""
    kind = cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'leads_event'::regclass")
    if kind.fetchone() != ("p",):
        return False
    month = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while month <= end:
        after = (month + dt.timedelta(days=32)).replace(day=1)
        cursor.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF leads_event "
                "FOR VALUES FROM ({}) TO ({})"
            ).format(
                sql.Identifier(f"leads_event_p{month:%Y_%m}"),
                sql.Literal(month),
                sql.Literal(after),
            )
        )
        month = after
    return True


def generate(conninfo: str, *, leads: int, events: int, seed: int) -> Generated:
    rng = random.Random(seed)
    # Days run midnight to midnight UTC, so a day's timestamps share one date.
    anchor = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = anchor - dt.timedelta(days=DAYS)
    seconds: dict[str, float] = {}
    with psycopg.connect(conninfo) as conn, conn.cursor() as cursor:
        began = time.perf_counter()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        # Emptied in this transaction, so COPY may write the rows frozen and
        # all-visible, as a vacuum would have left them.
        cursor.execute(
            "TRUNCATE leads_lead, leads_event, leads_tag, leads_lead_tags, leads_segment "
            "RESTART IDENTITY CASCADE"
        )
        partitioned = partitions_cover(cursor, start=start, end=anchor)
        restore = defer_indexes(cursor, LOADED_TABLES)
        plan = plan_leads(rng, leads)
        seconds["plan"] = time.perf_counter() - began

        began = time.perf_counter()
        # COPY cannot freeze rows into a partitioned table.
        _copy(
            cursor,
            f"COPY leads_event ({EVENT_COLUMNS}) FROM STDIN"
            + ("" if partitioned else " WITH (FREEZE)"),
            event_rows(rng, plan, leads=leads, events=events, start=start),
        )
        seconds["events"] = time.perf_counter() - began
        print(f"  events: {seconds['events']:.0f} s", flush=True)

        began = time.perf_counter()
        lead_tags = array("q")
        _copy(
            cursor,
            f"COPY leads_lead ({LEAD_COLUMNS}) FROM STDIN WITH (FREEZE)",
            lead_rows(rng, plan, leads=leads, start=start, lead_tags=lead_tags),
        )
        with cursor.copy("COPY leads_tag (id, name) FROM STDIN WITH (FREEZE)") as copy:
            for number, name in enumerate(TAGS, start=1):
                copy.write_row((number, name))
        pairs = (
            f"{n + 1}\t{lead_tags[2 * n]}\t{lead_tags[2 * n + 1]}\n"
            for n in range(len(lead_tags) // 2)
        )
        _copy(
            cursor,
            "COPY leads_lead_tags (id, lead_id, tag_id) FROM STDIN WITH (FREEZE)",
            (
                "".join(chunk)
                for chunk in iter(lambda: list(itertools.islice(pairs, CHUNK_ROWS)), [])
            ),
        )
        seconds["leads"] = time.perf_counter() - began
        print(f"  leads and tags: {seconds['leads']:.0f} s", flush=True)

        began = time.perf_counter()
        for statement in restore:
            cursor.execute(statement)
        for table in (*LOADED_TABLES, "leads_tag"):
            cursor.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({table}, 'id'), "
                    "(SELECT coalesce(max(id), 0) + 1 FROM {ident}), false)"
                ).format(table=sql.Literal(table), ident=sql.Identifier(table))
            )
        seconds["indexes"] = time.perf_counter() - began
        print(f"  indexes and constraints: {seconds['indexes']:.0f} s", flush=True)
    began = time.perf_counter()
    vacuum_analyze(conninfo, (*LOADED_TABLES, "leads_tag"))
    seconds["vacuum"] = time.perf_counter() - began
    return Generated(seconds=seconds, anchor=anchor, reused=False)


def existing_anchor(conninfo: str, *, leads: int, events: int) -> dt.datetime | None:
    """The end of the generated window if the database holds exactly the
    requested data, else None."""
    with psycopg.connect(conninfo) as conn:
        lead_count = conn.execute("SELECT count(*) FROM leads_lead").fetchone()
        row = conn.execute(
            "SELECT count(*), max(occurred_at) FROM leads_event WHERE source = %s", [SOURCE]
        ).fetchone()
    if not lead_count or not row or lead_count[0] != leads or row[0] != events or row[1] is None:
        return None
    last: dt.datetime = row[1]
    return last + dt.timedelta(seconds=1)


def data_summary(conninfo: str, anchor: dt.datetime) -> dict[str, Any]:
    with psycopg.connect(conninfo) as conn:
        by_type: dict[str, int] = dict(
            conn.execute(
                "SELECT type, count(*) FROM leads_event WHERE source = %s GROUP BY type", [SOURCE]
            ).fetchall()
        )
        pricing = conn.execute(
            "SELECT count(*) FROM leads_event WHERE source = %s AND type = 'page' "
            "AND properties ->> 'url' ILIKE '%%/pricing%%'",
            [SOURCE],
        ).fetchone()
        per_lead = conn.execute(
            "SELECT count(*) FILTER (WHERE n IS NULL), "
            "percentile_disc(0.5) WITHIN GROUP (ORDER BY coalesce(n, 0)), "
            "percentile_disc(0.99) WITHIN GROUP (ORDER BY coalesce(n, 0)), max(n) "
            "FROM leads_lead l LEFT JOIN (SELECT lead_id, count(*) AS n FROM leads_event "
            "WHERE source = %s GROUP BY lead_id) e ON e.lead_id = l.id",
            [SOURCE],
        ).fetchone()
        tagged = conn.execute("SELECT count(DISTINCT lead_id) FROM leads_lead_tags").fetchone()
        size = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('leads_event')), "
            "pg_size_pretty(pg_total_relation_size('leads_lead'))"
        ).fetchone()
    assert pricing
    assert per_lead
    assert tagged
    assert size
    return {
        "by_type": by_type,
        "pricing": pricing[0],
        "no_events": per_lead[0],
        "median": per_lead[1],
        "p99": per_lead[2],
        "max": per_lead[3],
        "tagged": tagged[0],
        "event_size": size[0],
        "lead_size": size[1],
        "anchor": anchor,
    }


# --- segments ---------------------------------------------------------------------


@dataclass
class SegmentCase:
    key: str
    name: str
    tree: dict[str, Any]
    # Hand-written count of the same leads; %(since_30)s / %(since_60)s are bound.
    raw: str
    # What a change must touch to re-check this segment for one lead.
    keys: set[str]


CASES = [
    SegmentCase(
        key="a",
        name=SEGMENT_PREFIX + "visited pricing at least twice in the last 30 days",
        tree={
            "all": [
                {
                    "activity": "page",
                    "where": {"url": {"op": "contains", "value": "/pricing"}},
                    "count": {"op": "gte", "value": 2},
                    "within_days": 30,
                }
            ]
        },
        raw="""
            SELECT count(*) FROM (
                SELECT e.lead_id FROM leads_event e
                WHERE e.type = 'page' AND e.occurred_at >= %(since_30)s
                  AND e.lead_id IS NOT NULL
                  AND e.properties ->> 'url' ILIKE '%%/pricing%%'
                GROUP BY e.lead_id
                HAVING count(*) >= 2
            ) AS visitors
        """,
        keys={"activity:page"},
    ),
    SegmentCase(
        key="b",
        name=SEGMENT_PREFIX + "decision makers at companies of 25+",
        tree={
            "all": [
                {
                    "any": [
                        {"field": "job_title", "op": "contains", "value": word}
                        for word in ("CEO", "Founder", "VP", "Head", "Director")
                    ]
                },
                {"field": "company_size", "op": "gte", "value": 25},
            ]
        },
        raw="""
            SELECT count(*) FROM leads_lead l
            WHERE l.company_size >= 25
              AND (l.job_title ILIKE '%%CEO%%' OR l.job_title ILIKE '%%Founder%%'
                   OR l.job_title ILIKE '%%VP%%' OR l.job_title ILIKE '%%Head%%'
                   OR l.job_title ILIKE '%%Director%%')
        """,
        keys={"field:job_title", "field:company_size"},
    ),
    SegmentCase(
        key="c",
        name=SEGMENT_PREFIX + "dead end: no opens in 60 days, subscriber or lead",
        tree={
            "all": [
                {
                    "activity": "email.opened",
                    "count": {"op": "eq", "value": 0},
                    "within_days": 60,
                },
                {"field": "stage", "op": "in", "value": ["subscriber", "lead"]},
            ]
        },
        raw="""
            SELECT count(*) FROM leads_lead l
            WHERE l.stage IN ('subscriber', 'lead')
              AND NOT EXISTS (
                  SELECT 1 FROM leads_event e
                  WHERE e.lead_id = l.id AND e.type = 'email.opened'
                    AND e.occurred_at >= %(since_60)s
              )
        """,
        keys={"activity:email.opened", "field:stage"},
    ),
]


@dataclass
class CaseResult:
    case: SegmentCase
    members: int = 0
    first_seconds: float = 0.0
    first_counts: dict[str, int] = field(default_factory=dict)
    steady_runs: list[float] = field(default_factory=list)
    # What a steady recompute moved; empty unless one moved someone.
    steady_counts: dict[str, int] = field(default_factory=dict)
    raw_runs: list[float] = field(default_factory=list)
    raw_count: int = 0
    compiled_runs: list[float] = field(default_factory=list)
    compiled_count: int = 0
    checks_ms: list[float] = field(default_factory=list)
    raw_plan: list[str] = field(default_factory=list)
    compiled_plan: list[str] = field(default_factory=list)

    @property
    def steady_seconds(self) -> float:
        return min(self.steady_runs)

    @property
    def raw_best(self) -> float:
        return min(self.raw_runs)

    @property
    def compiled_best(self) -> float:
        return min(self.compiled_runs)


def segments_reset(conninfo: str) -> None:
    """Remove what earlier runs left: bench segments, their stays and their
    ``segment.entered`` / ``segment.left`` events."""
    with psycopg.connect(conninfo) as conn:
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM leads_segment WHERE name LIKE %s", [SEGMENT_PREFIX + "%"]
            )
        ]
        deleted = 0
        if ids:
            for table in ("leads_segmentmembership",):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE segment_id = ANY(%s)").format(
                        sql.Identifier(table)
                    ),
                    [ids],
                )
            conn.execute("DELETE FROM leads_segmentexclusion WHERE segment_id = ANY(%s)", [ids])
            conn.execute("DELETE FROM leads_segment WHERE id = ANY(%s)", [ids])
        cursor = conn.execute(
            "DELETE FROM leads_event WHERE type IN ('segment.entered', 'segment.left') "
            "AND name LIKE %s",
            [SEGMENT_PREFIX + "%"],
        )
        deleted = cursor.rowcount
    if ids or deleted:
        vacuum_analyze(conninfo, ("leads_event", "leads_segmentmembership"))


def timed(work: Callable[[], T]) -> tuple[float, T]:
    began = time.perf_counter()
    result = work()
    return time.perf_counter() - began, result


def plan_lines(cursor: Any, statement: str, params: Any) -> list[str]:
    cursor.execute("EXPLAIN (COSTS OFF) " + statement, params)
    return [str(row[0]) for row in cursor.fetchall()]


def measure_segments(
    conninfo: str, *, anchor: dt.datetime, runs: int, checks: int, seed: int
) -> tuple[list[CaseResult], dict[str, list[float]]]:
    from django.db import connection, transaction

    from core.scope import processing_batch
    from leads.models import Lead, Segment, SegmentKind
    from segments.conditions import compile_tree, is_time_relative
    from segments.services import (
        segment_conditions_clean,
        segment_recompute,
        segments_check_lead,
    )

    params = {
        "since_30": anchor - dt.timedelta(days=30),
        "since_60": anchor - dt.timedelta(days=60),
    }
    results = [CaseResult(case=case) for case in CASES]
    rng = random.Random(seed + 1)
    # The windows end where the data ends, whenever this runs.
    with mock.patch("django.utils.timezone.now", return_value=anchor):
        segments = []
        for result in results:
            case = result.case
            tree = segment_conditions_clean(conditions=case.tree, kind=SegmentKind.DYNAMIC)
            segment = Segment.objects.create(
                name=case.name,
                kind=SegmentKind.DYNAMIC,
                conditions=tree,
                time_relative=is_time_relative(tree),
            )
            segments.append(segment)
            print(f"[{case.key}] first recompute…", flush=True)
            result.first_seconds, result.first_counts = timed(
                partial(segment_recompute, segment=segment)
            )
            print(
                f"[{case.key}] first recompute: {result.first_seconds:.1f} s, "
                f"{result.first_counts}",
                flush=True,
            )
        # The first recomputes wrote a membership and an event per member; the
        # steady state is measured on tables that autovacuum has caught up with.
        vacuum_analyze(conninfo, ("leads_event", "leads_segmentmembership", "leads_segment"))

        with psycopg.connect(conninfo, autocommit=True) as raw:
            for result, segment in zip(results, segments, strict=True):
                case = result.case
                segment.refresh_from_db()
                result.members = segment.member_count
                tree = segment.conditions

                def raw_count(statement: str = case.raw) -> int:
                    row = raw.execute(statement, params).fetchone()
                    assert row is not None
                    return int(row[0])

                def compiled_count(tree: dict[str, Any] = tree) -> int:
                    return Lead.objects.filter(compile_tree(tree)).count()

                # Raw, compiled and the recompute alternate, so none gets a
                # warmer cache.
                for _ in range(runs):
                    seconds, counts = timed(partial(segment_recompute, segment=segment))
                    result.steady_runs.append(seconds)
                    if counts != {"entered": 0, "left": 0}:
                        result.steady_counts = counts
                    seconds, result.raw_count = timed(raw_count)
                    result.raw_runs.append(seconds)
                    seconds, result.compiled_count = timed(compiled_count)
                    result.compiled_runs.append(seconds)
                print(
                    f"[{case.key}] steady {result.steady_seconds:.2f} s, "
                    f"raw {result.raw_best:.2f} s ({result.raw_count:,}), "
                    f"compiled {result.compiled_best:.2f} s ({result.compiled_count:,})",
                    flush=True,
                )
                with raw.cursor() as raw_cursor:
                    result.raw_plan = plan_lines(raw_cursor, case.raw, params)
                statement, values = (
                    Lead.objects.filter(compile_tree(tree)).values("id").query.sql_with_params()
                )
                with connection.cursor() as django_cursor:
                    result.compiled_plan = plan_lines(
                        django_cursor, f"SELECT count(*) FROM ({statement}) AS selection", values
                    )

        with psycopg.connect(conninfo) as conn:
            bounds = conn.execute("SELECT min(id), max(id) FROM leads_lead").fetchone()
        assert bounds
        sample = rng.sample(range(bounds[0], bounds[1] + 1), min(checks, bounds[1] - bounds[0] + 1))
        key_sets = [(result.case.key, result.case.keys) for result in results]
        # A new lead is checked against every dynamic segment at once.
        key_sets.append(("all", {"lead.created"}))
        checks_ms: dict[str, list[float]] = {}

        def check(lead_id: int, keys: set[str]) -> float:
            with transaction.atomic():
                # The caller holds the lead's row lock (events_process does).
                lead = Lead.objects.select_for_update().get(pk=lead_id)
                began = time.perf_counter()
                segments_check_lead(lead=lead, keys=keys)
                elapsed = time.perf_counter() - began
                transaction.set_rollback(True)
            return elapsed * 1000

        # Each check in a savepoint of one transaction that is rolled back:
        # a transaction rolled back would have psycopg deallocate the prepared
        # statements, which a worker's session keeps as its transactions commit.
        with transaction.atomic():
            for label, keys in key_sets:
                # As the worker checks: within the batch of a message's events, whose
                # reads of which segments depend on what are made once.
                with processing_batch():
                    for lead_id in sample[:10]:
                        check(lead_id, keys)
                    checks_ms[label] = [check(lead_id, keys) for lead_id in sample]
                # A check with nothing read before it (the first of a batch).
                first = [check(lead_id, keys) for lead_id in sample[:50]]
                print(
                    f"[{label}] check: median {statistics.median(checks_ms[label]):.2f} ms, "
                    f"p95 {p95(checks_ms[label]):.2f} ms; first of a batch: median "
                    f"{statistics.median(first):.2f} ms",
                    flush=True,
                )
            transaction.set_rollback(True)
        for result in results:
            result.checks_ms = checks_ms[result.case.key]
    return results, checks_ms


def p95(values: Sequence[float]) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=20, method="inclusive")[18]


# --- report -----------------------------------------------------------------------


def results_table(results: Sequence[CaseResult], runs: int) -> str:
    best = f"best of {runs}" if runs > 1 else "1 run"
    lines = [
        f"| segment | members | first recompute s | steady recompute s ({best}) "
        f"| raw SQL s ({best}) | steady / raw | compiled count s ({best}) | compiled / raw "
        "| check median ms | check p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| ({r.case.key}) {r.case.name.removeprefix(SEGMENT_PREFIX)} | {r.members:,} "
            f"| {r.first_seconds:.1f} | {r.steady_seconds:.2f} | {r.raw_best:.2f} "
            f"| {r.steady_seconds / r.raw_best:.2f} | {r.compiled_best:.2f} "
            f"| {r.compiled_best / r.raw_best:.2f} | {statistics.median(r.checks_ms):.2f} "
            f"| {p95(r.checks_ms):.2f} |"
        )
    return "\n".join(lines)


def checks_table(checks_ms: dict[str, list[float]]) -> str:
    lines = [
        "| keys | segments checked | median ms | p95 ms | max ms |",
        "|---|---|---:|---:|---:|",
    ]
    for label, values in checks_ms.items():
        keys = next((", ".join(sorted(c.keys)) for c in CASES if c.key == label), "lead.created")
        lines.append(
            f"| {keys} | {label if label != 'all' else 'a, b, c'} "
            f"| {statistics.median(values):.2f} | {p95(values):.2f} | {max(values):.2f} |"
        )
    return "\n".join(lines)


def plan_notes(results: Sequence[CaseResult]) -> str:
    """The two plans of every segment whose compiled count misses the goal."""
    parts = []
    for r in results:
        if r.compiled_best / r.raw_best <= GOAL_RATIO:
            continue
        parts.append(
            f"({r.case.key}) compiled, {r.compiled_best:.2f} s:\n\n```\n"
            + "\n".join(r.compiled_plan)
            + f"\n```\n\n({r.case.key}) raw, {r.raw_best:.2f} s:\n\n```\n"
            + "\n".join(r.raw_plan)
            + "\n```\n"
        )
    return "\n".join(parts)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Segment recompute, preview count and per-lead check at scale on PostgreSQL, "
            "against hand-written SQL selecting the same leads."
        )
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="scratch database; created if missing, migrated, and its leads, events, "
        "tags and segments replaced (default: %(default)s)",
    )
    parser.add_argument(
        "--leads", type=int, default=1_000_000, help="leads to generate (default: %(default)s)"
    )
    parser.add_argument(
        "--events", type=int, default=10_000_000, help="events to generate (default: %(default)s)"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="skip generation when the database already holds exactly --leads leads "
        "and --events generated events",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="runs of the raw and the compiled count; the best counts (default: %(default)s)",
    )
    parser.add_argument(
        "--checks",
        type=int,
        default=200,
        help="random leads for the single-lead check (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=1, help="data seed (default: %(default)s)")
    parser.add_argument(
        "--record", action="store_true", help="append the result to bench/RESULTS.md"
    )
    args = parser.parse_args(argv)
    for name in ("leads", "events", "runs", "checks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def generation_text(generated: Generated) -> str:
    if generated.reused:
        return "reused from an earlier run"
    s = generated.seconds
    return (
        f"{sum(s.values()):.0f} s (lead plan {s['plan']:.0f} s, events COPY {s['events']:.0f} s, "
        f"leads and tags COPY {s['leads']:.0f} s, indexes and constraints "
        f"{s['indexes']:.0f} s, VACUUM ANALYZE {s['vacuum']:.0f} s)"
    )


def findings(results: Sequence[CaseResult], checks_ms: dict[str, list[float]]) -> str:
    """What the table says against the goals, in sentences."""
    compiled = [r for r in results if r.compiled_best / r.raw_best > GOAL_RATIO]
    steady = [r for r in results if r.steady_seconds / r.raw_best > GOAL_RATIO]
    medians = ", ".join(
        f"({r.case.key}) {statistics.median(checks_ms[r.case.key]):.2f} ms" for r in results
    )

    def names(rs: Sequence[CaseResult]) -> str:
        return ", ".join(f"({r.case.key})" for r in rs)

    return " ".join(
        [
            "Each segment's member count equals the raw query's count and the compiled "
            "count, and the second recompute moved nobody.",
            f"The compiled count is within {GOAL_RATIO} times the raw query for every segment."
            if not compiled
            else f"The compiled count takes more than {GOAL_RATIO} times the raw query for "
            f"{names(compiled)}.",
            f"The steady recompute is within {GOAL_RATIO} times the raw query for every segment."
            if not steady
            else f"The steady recompute takes more than {GOAL_RATIO} times the raw query for "
            f"{names(steady)}.",
            f"Median single-lead check: {medians} (goal at most {GOAL_CHECK_MS:.0f} ms); "
            f"{statistics.median(checks_ms['all']):.2f} ms for a new lead, checked against "
            "all three.",
        ]
    )


def section(
    args: argparse.Namespace,
    *,
    conninfo: str,
    generated: Generated,
    summary: dict[str, Any],
    results: Sequence[CaseResult],
    checks_ms: dict[str, list[float]],
    wall: float,
    load: tuple[float, float],
) -> str:
    info = machine()
    pg = postgres_settings(
        conninfo,
        ("server_version", "shared_buffers", "work_mem", "max_parallel_workers_per_gather"),
    )
    now = dt.datetime.now().astimezone()
    by_type = ", ".join(f"{kind} {n:,}" for kind, n in sorted(summary["by_type"].items()))
    reuse = " --reuse" if generated.reused else ""
    notes = plan_notes(results)
    text = (
        f"## segments: {now:%Y-%m-%d %H:%M %Z}\n\n"
        "`bench/segmentation.py`: three segments over generated leads and events, timed "
        "in-process through the Django services: the first full `segment_recompute` "
        "(which writes a membership and a `segment.entered` event per member), the "
        "steady-state recompute (later runs, nothing to change), the compiled selection "
        "`Lead.objects.filter(compile_tree(tree)).count()` (the preview count), a "
        "hand-written SQL count of the same leads through psycopg, and "
        "`segments_check_lead` for random leads in rolled-back savepoints of one "
        "transaction (within one processing batch per set of keys, as the worker runs "
        "it), with the "
        "segment's own dependency keys. The clock is pinned to the end of the generated "
        "window.\n\n"
        f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; "
        f"Python {info['python']}, PostgreSQL {pg['server_version'].split()[0]} "
        f"(shared_buffers {pg['shared_buffers']}, work_mem {pg['work_mem']}, "
        f"max_parallel_workers_per_gather {pg['max_parallel_workers_per_gather']}); "
        "client and PostgreSQL on the same host; load average (1 min) "
        f"{load[0]:.2f} at the start, {load[1]:.2f} at the end\n"
        f"- parameters: --leads {args.leads} --events {args.events} --runs {args.runs} "
        f"--checks {args.checks} --seed {args.seed}{reuse}\n"
        f"- data: {args.leads:,} leads ({summary['lead_size']}), {args.events:,} events "
        f"({summary['event_size']} with indexes) over {DAYS} days up to "
        f"{summary['anchor']:%Y-%m-%d %H:%M} UTC: {by_type}; {summary['pricing']:,} page "
        f"views of /pricing; events per lead: median {summary['median']}, p99 "
        f"{summary['p99']}, max {summary['max']}, {summary['no_events']:,} leads with none; "
        f"{summary['tagged']:,} leads tagged\n"
        f"- generation: {generation_text(generated)}; whole run {wall / 60:.1f} min\n\n"
        f"{results_table(results, args.runs)}\n\n{checks_table(checks_ms)}\n\n"
        f"{findings(results, checks_ms)}\n"
    )
    if notes:
        text += f"\nPlans (EXPLAIN, costs off) where the compiled count is slower:\n\n{notes}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    # Other work on a small machine shows in every number: keep the evidence.
    load_start = os.getloadavg()[0]
    conninfo = pg_conninfo.make_conninfo(args.database_url)
    database_ensure(conninfo)
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as data_dir:
        env = app_env(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=args.database_url,
            # A throwaway embedded broker: the recompute's task messages must not
            # reach a developer's worker, and nobody consumes them here.
            REDIS_URL=None,
            LEADFLOW_DATA_DIR=data_dir,
            PYTHONUNBUFFERED="1",
        )
        print("migrating…", flush=True)
        manage(env, "migrate", "--noinput")
        segments_reset(conninfo)
        anchor = (
            existing_anchor(conninfo, leads=args.leads, events=args.events) if args.reuse else None
        )
        if anchor is not None:
            generated = Generated(seconds={}, anchor=anchor, reused=True)
            print(f"reusing {args.leads:,} leads and {args.events:,} events", flush=True)
        else:
            if args.reuse:
                print("the database does not hold the requested data: generating", flush=True)
            print(f"generating {args.leads:,} leads and {args.events:,} events…", flush=True)
            generated = generate(conninfo, leads=args.leads, events=args.events, seed=args.seed)
            print(f"generated in {sum(generated.seconds.values()):.0f} s", flush=True)
        summary = data_summary(conninfo, generated.anchor)
        django_setup(env)
        results, checks_ms = measure_segments(
            conninfo, anchor=generated.anchor, runs=args.runs, checks=args.checks, seed=args.seed
        )
    wall = time.perf_counter() - began

    errors = []
    for r in results:
        if len({r.members, r.raw_count, r.compiled_count}) != 1:
            errors.append(
                f"({r.case.key}) members {r.members}, raw {r.raw_count}, "
                f"compiled {r.compiled_count}"
            )
        if r.steady_counts:
            errors.append(f"({r.case.key}) the steady recompute moved leads: {r.steady_counts}")
    print("\n" + results_table(results, args.runs) + "\n\n" + checks_table(checks_ms))
    print(f"\ngeneration: {generation_text(generated)}; whole run {wall / 60:.1f} min")
    if errors:
        print("\nresults disagree:", *errors, sep="\n  ", file=sys.stderr)
        return 1
    print("\n" + findings(results, checks_ms))
    notes = plan_notes(results)
    if notes:
        print("\n" + notes)
    if args.record:
        record(
            section(
                args,
                conninfo=conninfo,
                generated=generated,
                summary=summary,
                results=results,
                checks_ms=checks_ms,
                wall=wall,
                load=(load_start, os.getloadavg()[0]),
            )
        )
        print(f"\nrecorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Decay: points that fade. Each category chooses (``ScoreCategory.decay_mode``):

- **expire**: every point a flow or a person gave expires ``decay_days`` after it
  was earned (its ``occurred_at``), as a ledger row of its own (source EXPIRY,
  keyed ``expire:<row id>``, ``offsets`` the row it expires, dated when it
  expired);
- **percent**: for each full period of ``decay_days`` without activity (since
  ``Lead.last_activity_at``, or its creation), the category's points lose
  ``decay_percent`` per cent (rounded half up, at least 1 point while there are
  any): one row per lead, category and period (source DECAY, keyed
  ``decay:<category>:<lead>:<activity epoch>:<days>d:<period>``, dated when the
  period ended).

Beat runs ``scores_decay`` (``scoring.tasks``); ``manage.py scores_decay`` runs
it by hand. It catches up after downtime: every period missed is written, in
order, each from the points the one before left. The unique ``source_key``
makes it exactly once: a second run, or two at once, write nothing more.

The work is set-based, a chunk of leads per transaction: the leads with
something to decay are locked (in id order, as the event pipeline locks a lead
before its points, so neither waits on the other in a cycle), then one
``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`` writes the rows and, on
PostgreSQL in the same statement, moves ``LeadScore`` and ``Lead.score`` by what
was inserted. Decay and expiry only lower points (a penalty does not expire), so
no cap can be passed. The leads touched are regraded in the same transaction.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from leads.models import Lead
from scoring.models import DecayMode, LeadScore, ScoreCategory, ScoreChange, ScoreSource
from scoring.services import grades_recompute, scoring_settings

CHUNK = 10_000
DAY = 86_400

_LEDGER = ScoreChange._meta.db_table
_POINTS = LeadScore._meta.db_table
_LEAD = Lead._meta.db_table
_COLUMNS = (
    "lead_id, delta, capped, category_id, reason, source, source_key, created_by_id, "
    "created_at, occurred_at, offsets_id"
)
# Points that expire: given by a flow or a person, and counted.
_EXPIRING = (
    f"r.category_id = %(category)s AND r.source IN ('{ScoreSource.FLOW.value}', "  # noqa: S608
    f"'{ScoreSource.MANUAL.value}') AND r.delta > 0 AND r.occurred_at <= %(cutoff)s "
    f"AND NOT EXISTS (SELECT 1 FROM {_LEDGER} e WHERE e.offsets_id = r.id)"
)


class _Dialect:
    """What differs between PostgreSQL and SQLite: time arithmetic, lists of ids,
    the lock, and whether one statement can insert and update."""

    def __init__(self) -> None:
        self.postgres = connection.vendor == "postgresql"

    def epoch(self, sql: str) -> str:
        if self.postgres:
            return f"CAST(FLOOR(EXTRACT(EPOCH FROM {sql})) AS bigint)"
        return f"CAST(strftime('%%s', {sql}) AS integer)"

    def from_epoch(self, sql: str) -> str:
        return f"to_timestamp({sql})" if self.postgres else f"datetime({sql}, 'unixepoch')"

    def plus_days(self, sql: str) -> str:
        if self.postgres:
            return f"{sql} + %(days)s * INTERVAL '1 day'"
        return f"datetime({sql}, '+' || %(days)s || ' days')"

    @property
    def least(self) -> str:
        return "LEAST" if self.postgres else "MIN"

    @property
    def greatest(self) -> str:
        return "GREATEST" if self.postgres else "MAX"

    @property
    def in_leads(self) -> str:
        if self.postgres:
            return "= ANY(%(leads)s)"
        return "IN (SELECT value FROM json_each(%(leads)s))"

    def leads(self, ids: list[int]) -> Any:
        return ids if self.postgres else json.dumps(ids)

    def lock(self, of: str) -> str:
        return f" FOR UPDATE OF {of}" if self.postgres else ""

    def time(self, value: datetime) -> Any:
        return connection.ops.adapt_datetimefield_value(value)


def _expire_sql(d: _Dialect) -> tuple[str, str, str]:
    candidates = (
        f"SELECT l.id FROM {_LEAD} l WHERE l.id >= %(lo)s AND l.id < %(hi)s "  # noqa: S608
        f"AND EXISTS (SELECT 1 FROM {_LEDGER} r WHERE r.lead_id = l.id AND {_EXPIRING}) "
        f"ORDER BY l.id{d.lock('l')}"
    )
    rows = (
        f"SELECT r.lead_id, -r.delta, 0, %(category)s, %(reason)s, "  # noqa: S608
        f"'{ScoreSource.EXPIRY.value}', 'expire:' || r.id, NULL, %(now)s, "
        f"{d.plus_days('r.occurred_at')}, r.id "
        f"FROM {_LEDGER} r WHERE r.lead_id {d.in_leads} AND {_EXPIRING}"
    )
    return candidates, "", rows


def _percent_sql(d: _Dialect) -> tuple[str, str, str]:
    anchor = "COALESCE(l.last_activity_at, l.created_at)"
    candidates = (
        f"SELECT l.id FROM {_LEAD} l JOIN {_POINTS} s ON s.lead_id = l.id "  # noqa: S608
        "WHERE s.category_id = %(category)s AND s.score > 0 "
        f"AND l.id >= %(lo)s AND l.id < %(hi)s AND {anchor} <= %(cutoff)s "
        # Not due while the latest period written since the activity ended less
        # than a period ago: a run with nothing due locks nothing.
        f"AND NOT EXISTS (SELECT 1 FROM {_LEDGER} c WHERE c.lead_id = l.id "
        "AND c.category_id = %(category)s "
        f"AND c.source = '{ScoreSource.DECAY.value}' AND c.occurred_at > %(cutoff)s "
        f"AND c.occurred_at > {anchor}) "
        f"ORDER BY l.id{d.lock('l')}"
    )
    # The period to write next follows the latest decay row since the lead's last
    # activity (dated at the end of its period), or is the first; a change of
    # ``decay_days`` carries on from there.
    ctes = (
        "due AS ("  # noqa: S608
        f"SELECT s.lead_id, s.score AS points, {d.epoch(anchor)} AS anchor "
        f"FROM {_POINTS} s JOIN {_LEAD} l ON l.id = s.lead_id "
        f"WHERE s.category_id = %(category)s AND s.score > 0 AND s.lead_id {d.in_leads}), "
        "latest AS (SELECT lead_id, points, anchor, "
        "(%(now_epoch)s - anchor) / %(period)s AS periods, "
        f"COALESCE((SELECT MAX({d.epoch('c.occurred_at')}) FROM {_LEDGER} c "
        "WHERE c.lead_id = due.lead_id AND c.category_id = %(category)s "
        f"AND c.source = '{ScoreSource.DECAY.value}' "
        f"AND c.occurred_at > {d.from_epoch('due.anchor')}), anchor) AS last FROM due), "
        "next AS (SELECT lead_id, points, anchor, periods, "
        "(last - anchor) / %(period)s + 1 AS n FROM latest)"
    )
    rows = (
        f"SELECT lead_id, -{d.least}(points, {d.greatest}(1, "  # noqa: S608
        "(points * %(percent)s + 50) / 100)), 0, %(category)s, %(reason)s, "
        f"'{ScoreSource.DECAY.value}', 'decay:' || %(category)s || ':' || lead_id || ':' "
        "|| anchor || ':' || %(days)s || 'd:' || n, NULL, %(now)s, "
        f"{d.from_epoch('anchor + n * %(period)s')}, NULL FROM next WHERE n <= periods"
    )
    return candidates, ctes, rows


def _write(d: _Dialect, ctes: str, select: str, params: dict[str, Any]) -> tuple[int, list[int]]:
    """Insert the rows ``select`` gives (skipping any written already) and move the
    category's points and the totals of their leads by what was inserted: how
    many rows, and the leads that got one."""
    insert = f"INSERT INTO {_LEDGER} ({_COLUMNS}) {select}"
    with connection.cursor() as cursor:
        if d.postgres:
            cursor.execute(
                f"WITH {ctes}{', ' if ctes else ''}"  # noqa: S608
                f"ins AS ({insert} ON CONFLICT (source_key) DO NOTHING "
                "RETURNING lead_id, delta), "
                "per_lead AS (SELECT lead_id, SUM(delta) AS delta, COUNT(*) AS n FROM ins "
                "GROUP BY lead_id), "
                f"points AS (UPDATE {_POINTS} s SET score = s.score + p.delta FROM per_lead p "
                "WHERE s.lead_id = p.lead_id AND s.category_id = %(category)s), "
                f"totals AS (UPDATE {_LEAD} l SET score = l.score + p.delta FROM per_lead p "
                "WHERE l.id = p.lead_id) "
                "SELECT lead_id, n FROM per_lead",
                params,
            )
            got = cursor.fetchall()
            return sum(n for _, n in got), [lead_id for lead_id, _ in got]
        # SQLite has no writes in a WITH: the sums go back as a list. (Both
        # selects have a WHERE, so its parser does not read ON CONFLICT as a
        # join's ON.)
        cursor.execute(
            f"{'WITH ' + ctes + ' ' if ctes else ''}{insert} "
            "ON CONFLICT (source_key) DO NOTHING RETURNING lead_id, delta",
            params,
        )
        inserted = cursor.fetchall()
        sums: dict[int, int] = defaultdict(int)
        for lead_id, delta in inserted:
            sums[lead_id] += delta
        if sums:
            deltas = json.dumps(list(sums.items()))
            moved = (
                "FROM (SELECT json_extract(value, '$[0]') AS lead_id, "
                "json_extract(value, '$[1]') AS delta FROM json_each(%(deltas)s)) p "
            )
            cursor.execute(
                f"UPDATE {_POINTS} SET score = score + p.delta {moved}"  # noqa: S608
                f"WHERE {_POINTS}.lead_id = p.lead_id AND {_POINTS}.category_id = %(category)s",
                {**params, "deltas": deltas},
            )
            cursor.execute(
                f"UPDATE {_LEAD} SET score = score + p.delta {moved}"  # noqa: S608
                f"WHERE {_LEAD}.id = p.lead_id",
                {**params, "deltas": deltas},
            )
        return len(inserted), list(sums)


def _chunks(size: int) -> Iterator[tuple[int, int]]:
    bounds = Lead.objects.aggregate(lo=Min("id"), hi=Max("id"))
    if bounds["lo"] is None:
        return
    for lo in range(bounds["lo"], bounds["hi"] + 1, size):
        yield lo, lo + size


def _category_decay(
    *, category: ScoreCategory, now: datetime, chunk: int, d: _Dialect
) -> tuple[int, int]:
    """Decay one category over every lead; (rows written, leads touched)."""
    days = category.decay_days or 0
    expire = category.decay_mode == DecayMode.EXPIRE
    if expire:
        candidates_sql, ctes, rows_sql = _expire_sql(d)
        reason = f"expired after {days} days"
    else:
        candidates_sql, ctes, rows_sql = _percent_sql(d)
        reason = f"no activity for {days} days"
    params: dict[str, Any] = {
        "category": category.pk,
        "days": days,
        "period": days * DAY,
        "percent": category.decay_percent or 0,
        "reason": reason,
        "now": d.time(now),
        "now_epoch": int(now.timestamp()),
        "cutoff": d.time(now - timedelta(days=days)),
    }
    settings = scoring_settings()
    written = touched = 0
    for lo, hi in _chunks(chunk):
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(candidates_sql, {**params, "lo": lo, "hi": hi})
                leads = [row[0] for row in cursor.fetchall()]
            chunk_touched: set[int] = set()
            # Expiry writes every row due at once; a percentage one period per
            # pass, as each period starts from what the one before left.
            while leads:
                rows, got = _write(d, ctes, rows_sql, {**params, "leads": d.leads(leads)})
                written += rows
                chunk_touched.update(got)
                leads = [] if expire else sorted(got)
            if chunk_touched:
                grades_recompute(settings=settings, lead_ids=sorted(chunk_touched))
            touched += len(chunk_touched)
    return written, touched


def scores_decay(*, now: datetime | None = None, chunk: int = CHUNK) -> dict[str, int]:
    """Decay every category that decays, for every lead, up to ``now``: the rows
    written per category key (0 when nothing was due). Idempotent."""
    now = now or timezone.now()
    d = _Dialect()
    written: dict[str, int] = {}
    for category in ScoreCategory.objects.exclude(decay_mode=DecayMode.NONE):
        if not category.decay_days:
            continue
        if category.decay_mode == DecayMode.PERCENT and not category.decay_percent:
            continue
        written[category.key], _ = _category_decay(category=category, now=now, chunk=chunk, d=d)
    return written

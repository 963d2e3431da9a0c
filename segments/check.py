"""The per-lead check: after a change to one lead, every dynamic segment that
depends on the change is evaluated for that lead in one statement, and the
entries and exits it finds are written together.

What an event costs here does not grow with the number of segments:

- The dynamic segments and the keys they depend on are read once per batch
  (``segment_index``); a change finds the segments it can affect in memory. An
  app event (or a page, an email …) narrows further by its name: a segment that
  counts only "Logged in" cannot change with "Used a feature".
- The statement that evaluates the candidates (one boolean column each, on the
  lead's row) is compiled once per batch for each set of candidates: the ORM
  takes longer to build a statement of hundreds of columns than the database
  takes to run it. Moments relative to now ("in the last 30 days") are compiled
  from a template clock and moved to the real now each time it runs, so the
  answer is the one a statement compiled at that moment would give.
- The same statement reads the lead's open stays and exclusions.
- All entries and exits of one check are one insert, one update and one insert
  of their ``segment.entered`` / ``segment.left`` events; the member counts move
  after commit, in a statement of their own.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Case, ExpressionWrapper, F, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Greatest
from django.utils import timezone

from core import prepared
from core.commit import on_commit_internal
from core.scope import batch_cached, event_scope_current
from leads.models import (
    Event,
    FieldDefinition,
    Lead,
    MembershipSource,
    Segment,
    SegmentExclusion,
    SegmentKind,
    SegmentMembership,
)
from leads.services.events import SYSTEM_SOURCE, events_record
from segments.conditions import Compiler, dependencies
from segments.conditions.schema import _rules

# Keys every dynamic segment depends on: a new lead must be checked against all
# of them ("has not opened an email" holds for someone who just arrived).
ALWAYS = "lead.created"

# The clock statements are compiled with; its odd microseconds keep its moments
# apart from any value a rule holds (dates compile to midnights).
TEMPLATE_NOW = dt.datetime(2000, 1, 1, 0, 0, 0, 123457, tzinfo=dt.UTC)
# The lead's id while compiling: no lead has a negative id.
TEMPLATE_LEAD = -1


@dataclass(frozen=True)
class Watched:
    """A dynamic segment as the per-lead check sees it."""

    pk: int
    name: str
    conditions: dict[str, Any]
    # By activity type, the event names its activity rules count (None: any).
    names: dict[str, frozenset[str] | None]
    # The conditions as text, with the types of the custom fields they name: a
    # compiled statement is kept while these stay the same.
    fingerprint: str


@dataclass(frozen=True)
class SegmentIndex:
    by_key: dict[str, tuple[Watched, ...]]

    def candidates(self, keys: Iterable[str], cause: Event | None) -> list[Watched]:
        """The segments that depend on ``keys``, by id; for the activity key of
        ``cause``, only those whose rules count events of its name."""
        found: dict[int, Watched] = {}
        own = f"activity:{cause.type}" if cause is not None else ""
        for key in keys:
            for watched in self.by_key.get(key, ()):
                if key == own and cause is not None:
                    names = watched.names.get(cause.type)
                    if names is not None and cause.name not in names:
                        continue
                found[watched.pk] = watched
        return [found[pk] for pk in sorted(found)]


def _activity_names(tree: dict[str, Any]) -> dict[str, frozenset[str] | None]:
    names: dict[str, frozenset[str] | None] = {}
    for rule in _rules(tree):
        if "activity" not in rule:
            continue
        kind = rule["activity"]
        if "name" not in rule:
            names[kind] = None
        elif kind not in names or names[kind] is not None:
            names[kind] = (names.get(kind) or frozenset()) | {rule["name"]}
    return names


def _index_load() -> SegmentIndex:
    by_key: dict[str, list[Watched]] = {}
    rows = (
        Segment.objects.filter(kind=SegmentKind.DYNAMIC)
        .order_by("pk")
        .values_list("pk", "name", "conditions")
    )
    types: dict[str, str] | None = None
    for pk, name, conditions in rows:
        tree = conditions or {"all": []}
        fingerprint = json.dumps(tree, sort_keys=True)
        if '"custom.' in fingerprint:
            if types is None:
                types = dict(FieldDefinition.objects.values_list("key", "type"))
            fingerprint += json.dumps(types, sort_keys=True)
        watched = Watched(
            pk=pk, name=name, conditions=tree, names=_activity_names(tree), fingerprint=fingerprint
        )
        for key in dependencies(tree) | {ALWAYS}:
            by_key.setdefault(key, []).append(watched)
    return SegmentIndex(by_key={key: tuple(found) for key, found in by_key.items()})


def segment_index() -> SegmentIndex:
    """The dynamic segments by the keys they depend on; once per batch (a segment
    saved meanwhile is checked from the next batch on)."""
    return batch_cached("segment_index", _index_load)


# --- the statement ------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the statement says of one lead: the candidates' conditions, and the
    segments it is in (open stays) and kept out of (exclusions)."""

    matches: dict[int, bool]
    stays: set[int]
    excluded: set[int]


def _ids(value: Any) -> set[int]:
    """A list of ids (PostgreSQL's array) or their text joined by commas (SQLite)."""
    if value is None:
        return set()
    if isinstance(value, str):
        return {int(part) for part in value.split(",") if part}
    return {int(part) for part in value}


def _state_columns() -> dict[str, RawSQL]:
    aggregate = "array_agg" if connection.vendor == "postgresql" else "group_concat"
    lead = f"{_table(Lead)}.{connection.ops.quote_name('id')}"
    # Built from table names only.
    return {
        "member_of": RawSQL(  # noqa: S611
            f"SELECT {aggregate}(m.segment_id) FROM {_table(SegmentMembership)} m "  # noqa: S608
            f"WHERE m.lead_id = {lead} AND m.left_at IS NULL",
            (),
        ),
        "kept_out": RawSQL(  # noqa: S611
            f"SELECT {aggregate}(x.segment_id) FROM {_table(SegmentExclusion)} x "  # noqa: S608
            f"WHERE x.lead_id = {lead}",
            (),
        ),
    }


@dataclass(frozen=True)
class Statement:
    """The candidates' evaluation for one lead, compiled: ``sql`` with ``params``
    where the lead's id goes last and each moment at its place."""

    sql: str
    params: tuple[Any, ...]
    moments: tuple[tuple[int, dt.timedelta], ...]
    columns: tuple[str, ...]

    def run(self, lead_id: int, now: dt.datetime) -> Verdict | None:
        params = list(self.params)
        params[-1] = lead_id
        adapt = connection.ops.adapt_datetimefield_value
        for place, offset in self.moments:
            params[place] = adapt(now + offset)
        if prepared.enabled():
            # Bound on the server and prepared after a few uses: planning a
            # statement of hundreds of columns costs more than running it.
            rows = prepared.fetch(self.sql, params)
            row = rows[0] if rows else None
        else:
            with connection.cursor() as cursor:
                cursor.execute(self.sql, params)
                row = cursor.fetchone()
        if row is None:
            return None
        values = dict(zip(self.columns, row, strict=True))
        return Verdict(
            matches={
                int(name[1:]): bool(value) for name, value in values.items() if name[1:].isdigit()
            },
            stays=_ids(values["member_of"]),
            excluded=_ids(values["kept_out"]),
        )


def _compile(segments: Sequence[Watched], now: dt.datetime) -> tuple[Statement, bool]:
    """The statement for ``segments`` with the clock at ``now``; and whether it
    can be run at another moment (no value in it derived from now but its
    moments)."""
    compiler = Compiler(now, per_lead=True)
    checks: dict[str, Any] = {
        f"s{watched.pk}": ExpressionWrapper(
            compiler.node(watched.conditions), output_field=BooleanField()
        )
        for watched in segments
    }
    query = Lead.objects.filter(pk=TEMPLATE_LEAD).values(**checks, **_state_columns()).query
    compiled = query.get_compiler(using=connection.alias)
    sql, params = compiled.as_sql()
    # The columns in the order the SELECT gives them.
    names = tuple(alias for _, _, alias in compiled.select if alias is not None)
    adapt = connection.ops.adapt_datetimefield_value
    by_value: dict[Any, dt.timedelta] = {adapt(now + offset): offset for offset in compiler.moments}
    moments = [
        (place, by_value[value])
        for place, value in enumerate(params)
        if isinstance(value, dt.datetime | str) and value in by_value
    ]
    # The lead's id is the statement's last parameter: its WHERE comes last.
    if not params or params[-1] != TEMPLATE_LEAD or len(names) != len(checks) + 2:
        raise AssertionError("the per-lead statement is not shaped as expected")
    statement = Statement(sql=sql, params=tuple(params), moments=tuple(moments), columns=names)
    return statement, not compiler.volatile


# Compiled statements by their segments' conditions, kept by the process while
# the conditions stay as they are; emptied when it holds this many.
STATEMENTS_KEPT = 500
_statements: dict[tuple[tuple[int, str], ...], Statement | None] = {}


def _evaluate(lead_id: int, segments: Sequence[Watched], now: dt.datetime) -> Verdict | None:
    """The lead's verdict on ``segments`` at ``now``."""
    key = tuple((watched.pk, watched.fingerprint) for watched in segments)
    if key not in _statements:
        if len(_statements) >= STATEMENTS_KEPT:
            _statements.clear()
        statement, movable = _compile(segments, TEMPLATE_NOW)
        _statements[key] = statement if movable else None
    kept = _statements[key]
    if kept is None:
        # Holds days of custom date rules: compiled at each check.
        kept, _ = _compile(segments, now)
    return kept.run(lead_id, now)


# --- entering and leaving ---------------------------------------------------------------


def segment_event(
    *, membership_id: int, lead_id: int, segment_id: int, name: str, type_: str, at: Any, depth: int
) -> Event:
    """The ``segment.entered`` / ``segment.left`` event of one stay, keyed by it."""
    return Event(
        lead_id=lead_id,
        type=type_,
        name=name[:255],
        properties={"segment_id": segment_id, "segment_name": name},
        occurred_at=at,
        received_at=at,
        source=SYSTEM_SOURCE,
        idempotency_key=f"{type_}:{membership_id}",
        depth=depth,
    )


def _table(model: type[Any]) -> str:
    return str(connection.ops.quote_name(model._meta.db_table))


def _moves(*, lead_id: int, enter: Sequence[Watched], leave: Sequence[Watched], depth: int) -> None:
    """Open a stay in each of ``enter``, close the open one in each of ``leave``;
    announce those this transaction made (a concurrent recompute may have made
    one already, and announced it)."""
    now = timezone.now()
    at = connection.ops.adapt_datetimefield_value(now)
    moved: dict[int, tuple[int, str]] = {}
    with connection.cursor() as cursor:
        if enter:
            rows = ", ".join(["(%s, %s, %s, %s)"] * len(enter))
            params: list[Any] = []
            for watched in enter:
                params += [watched.pk, lead_id, at, MembershipSource.CONDITION]
            cursor.execute(
                f"INSERT INTO {_table(SegmentMembership)} "  # noqa: S608
                f"(segment_id, lead_id, entered_at, source) VALUES {rows} "
                "ON CONFLICT DO NOTHING RETURNING id, segment_id",
                params,
            )
            moved.update({segment_id: (mid, "segment.entered") for mid, segment_id in cursor})
        if leave:
            places = ", ".join(["%s"] * len(leave))
            cursor.execute(
                f"UPDATE {_table(SegmentMembership)} SET left_at = %s "  # noqa: S608
                f"WHERE lead_id = %s AND left_at IS NULL AND segment_id IN ({places}) "
                "RETURNING id, segment_id",
                [at, lead_id, *(watched.pk for watched in leave)],
            )
            moved.update({segment_id: (mid, "segment.left") for mid, segment_id in cursor})
    if not moved:
        return
    _counts_move({pk: 1 if type_ == "segment.entered" else -1 for pk, (_, type_) in moved.items()})
    names = {watched.pk: watched.name for watched in (*enter, *leave)}
    events_record(
        events=[
            segment_event(
                membership_id=mid,
                lead_id=lead_id,
                segment_id=segment_id,
                name=names[segment_id],
                type_=type_,
                at=now,
                depth=depth,
            )
            for segment_id, (mid, type_) in sorted(moved.items())
        ]
    )


def _counts_move(deltas: dict[int, int]) -> None:
    """Move the segments' member counts once the event's transaction commits,
    all of its moves in one short statement of their own: a count updated in the
    transaction would hold the segment's row locked until it commits, and a
    popular segment would make every worker wait for the others. The count is a
    display figure that a recompute sets exactly; the stays are the record."""
    scope = event_scope_current()
    if scope is None:
        _counts_apply(deltas)
        return
    pending: dict[int, int] | None = scope.get("segment_counts")
    if pending is None:
        pending = scope["segment_counts"] = {}
        on_commit_internal(partial(_counts_apply, pending), robust=True)
    for pk, delta in deltas.items():
        pending[pk] = pending.get(pk, 0) + delta


def _counts_apply(deltas: dict[int, int]) -> None:
    moved = {pk: delta for pk, delta in deltas.items() if delta}
    if not moved:
        return
    # Never below zero, whatever a concurrent recount did; the next recompute
    # sets the exact number.
    Segment.objects.filter(pk__in=list(moved)).update(
        member_count=Greatest(
            F("member_count")
            + Case(*(When(pk=pk, then=Value(delta)) for pk, delta in moved.items()), default=0),
            0,
        )
    )


def lead_check(*, lead_id: int, keys: set[str], cause: Event | None = None) -> None:
    """Re-check, for this lead only, the dynamic segments that depend on ``keys``;
    enter or leave where the answer changed. The lead is locked by the caller."""
    candidates = segment_index().candidates(keys, cause)
    if not candidates:
        return
    verdict = _evaluate(lead_id, candidates, timezone.now())
    if verdict is None:
        return
    enter, leave = [], []
    for watched in candidates:
        matches = verdict.matches[watched.pk] and watched.pk not in verdict.excluded
        if matches and watched.pk not in verdict.stays:
            enter.append(watched)
        elif not matches and watched.pk in verdict.stays:
            leave.append(watched)
    if enter or leave:
        depth = cause.depth + 1 if cause is not None else 0
        _moves(lead_id=lead_id, enter=enter, leave=leave, depth=depth)

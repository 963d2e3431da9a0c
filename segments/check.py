"""The per-lead check: after a change to one lead, every dynamic segment that
depends on the change is evaluated for that lead in one statement, and the
entries and exits it finds are written together.

What an event costs here does not grow with the number of segments:

- The dynamic segments and the keys they depend on are read once per batch
  (``segment_index``); a change finds the segments it can affect in memory. An
  app event (or a page, an email …) narrows further by its name: a segment that
  counts only "Logged in" cannot change with "Used a feature". A score or a
  grade event narrows by its values before and after: "score at least 50"
  cannot change when a score goes from 12 to 15.
- Every activity rule of the statement reads one aggregate over the lead's
  events (``Tally``): the lead's events are read once, however many rules
  count them.
- The statement that evaluates the candidates (one boolean column each, on the
  lead's row) is assembled from each segment's column, compiled once per
  process whatever set of candidates it is checked in: the ORM takes longer to
  compile a column than the database takes to answer it. Moments relative to
  now ("in the last 30 days") are compiled from a template clock and moved to
  the real now each time it runs, so the answer is the one a statement
  compiled at that moment would give.
- The same statement reads the lead's open stays and exclusions.
- The entries and exits it finds and their ``segment.entered`` /
  ``segment.left`` events are one statement on PostgreSQL (elsewhere one
  insert, one update and one insert of the events); the member counts move
  after commit, in a statement of their own.
- Segments that refer to a segment the check moved the lead in or out of are
  checked in the same call, round after round until nothing moves, instead of
  through the event loop. The events of the moves are still written (history,
  the timeline), but only those a flow trigger, a wait or an outbound hook hears
  (``segment_listeners_register``) are processed: the others are written
  processed. With hundreds of segments, an event that moved a lead's score
  used to derive ten such events, each a turn of the loop that only other
  segments listened to.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    ExpressionWrapper,
    F,
    IntegerField,
    Q,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Greatest
from django.db.models.lookups import Exact, GreaterThanOrEqual, LessThanOrEqual
from django.utils import timezone

from core import prepared
from core.commit import on_commit_internal
from core.scope import batch_cached, event_scope_current, kept_while_same
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
from leads.services.events import SYSTEM_SOURCE, events_record, events_written
from segments.conditions import Compiler, dependencies
from segments.conditions.schema import _rules
from segments.conditions.truth import choice_truth, number_truth

logger = logging.getLogger(__name__)

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
    # By key, the rules on a score or a grade as (op, value), for a key every
    # rule of which can be decided on the values an event tells before and
    # after it (``Moved``).
    thresholds: dict[str, tuple[tuple[str, Any], ...]] = field(default_factory=dict)

    def unmoved(self, key: str, moved: Moved) -> bool:
        """Whether every rule on ``key`` holds alike before and after ``moved``:
        then a change of that key alone cannot move the lead in or out."""
        rules = self.thresholds.get(key)
        if rules is None or key not in moved:
            return False
        truth = choice_truth if key in GRADE_KEYS else number_truth
        before, after = moved[key]
        return all(truth(before, op, value) == truth(after, op, value) for op, value in rules)


# The values a score or grade event tells of its keys, before and after.
Moved = dict[str, tuple[Any, Any]]
GRADE_KEYS = ("field:grade", "field:fit_grade", "field:engagement_grade")
# Grade rules decided in memory: "is set" reads blanks as the compiler does,
# which these need not match, so a segment with one is always checked.
GRADE_OPS = ("is", "is_not", "in")


def _moved(event: Event) -> Moved:
    """What ``event`` tells of the score, a category's points or the grades
    before and after it (nothing for other events, or one without the values)."""
    props = event.properties or {}
    moved: Moved = {}
    if event.type == "score.changed":
        if "from" in props and "to" in props:
            moved["field:score"] = (props["from"], props["to"])
        if "category_from" in props and "category_to" in props and props.get("category"):
            moved[f"field:score.{props['category']}"] = (
                props["category_from"],
                props["category_to"],
            )
    elif event.type == "grade.changed":
        for key, prefix in zip(GRADE_KEYS, ("", "fit_", "engagement_"), strict=True):
            if f"{prefix}from" in props and f"{prefix}to" in props:
                moved[key] = (props[f"{prefix}from"], props[f"{prefix}to"])
    return moved


# Rules whose truth on a number changes only where the number crosses their
# value: a score moving between two values can change them only if one of their
# values lies between the two.
_CROSSED_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _crossings(rules: Sequence[tuple[str, Any]]) -> list[float] | None:
    """The values at which ``rules`` can change truth as a number moves; None
    if one of them is not a plain comparison of numbers."""
    values: list[float] = []
    for op, value in rules:
        bounds = value if op == "between" else [value]
        if op not in _CROSSED_OPS or not isinstance(bounds, list | tuple):
            return None
        for bound in bounds:
            number = _number(bound)
            if number is None:
                return None
            values.append(number)
    return values


@dataclass(frozen=True)
class Crossings:
    """The segments reached by one score key, by the values where their rules
    on it change truth (sorted), and those that cannot be narrowed that way."""

    values: tuple[float, ...]
    segments: tuple[Watched, ...]
    others: tuple[Watched, ...]

    def between(self, before: float, after: float) -> Iterator[Watched]:
        """Those whose truth may differ at ``before`` and ``after``."""
        low, high = min(before, after), max(before, after)
        yield from self.others
        start = bisect.bisect_left(self.values, low)
        stop = bisect.bisect_right(self.values, high)
        yield from self.segments[start:stop]


def _crossings_index(key: str, reached: Sequence[Watched]) -> Crossings | None:
    if key != "field:score" and not key.startswith("field:score."):
        return None
    points: list[tuple[float, int, Watched]] = []
    others: list[Watched] = []
    for watched in reached:
        values = _crossings(watched.thresholds.get(key, ())) if key in watched.thresholds else None
        if values is None:
            others.append(watched)
            continue
        points += [(value, watched.pk, watched) for value in values]
    points.sort(key=lambda point: (point[0], point[1]))
    return Crossings(
        values=tuple(point[0] for point in points),
        segments=tuple(point[2] for point in points),
        others=tuple(others),
    )


@dataclass(frozen=True)
class SegmentIndex:
    by_key: dict[str, tuple[Watched, ...]]
    # For score keys, the same segments by the values their rules cross.
    crossings: dict[str, Crossings] = field(default_factory=dict)

    def _reached(self, key: str, moved: Moved) -> Iterable[Watched]:
        crossings = self.crossings.get(key)
        if crossings is not None and key in moved:
            before, after = (_number(value) for value in moved[key])
            if before is not None and after is not None:
                return crossings.between(before, after)
        return self.by_key.get(key, ())

    def candidates(self, keys: Iterable[str], cause: Event | None) -> list[Watched]:
        """The segments that depend on ``keys``, by id; for the activity key of
        ``cause``, only those whose rules count events of its name; for a score
        or grade ``cause``, only those with a rule whose truth it changes (a
        score from 12 to 15 cannot move a lead in or out of "score at least
        50": with hundreds of segments, most of them on scores and grades,
        that leaves a few of a hundred, found by the values their rules cross
        rather than by asking each)."""
        reached: dict[int, Watched] = {}
        moves: dict[int, bool] = {}
        own = f"activity:{cause.type}" if cause is not None else ""
        moved = _moved(cause) if cause is not None else {}
        for key in keys:
            for watched in self._reached(key, moved):
                if key == own and cause is not None:
                    names = watched.names.get(cause.type)
                    if names is not None and cause.name not in names:
                        continue
                reached[watched.pk] = watched
                # A segment is checked when any key that reaches it may move it.
                may_move = not (moved and watched.unmoved(key, moved))
                moves[watched.pk] = moves.get(watched.pk, False) or may_move
        return [reached[pk] for pk in sorted(reached) if moves[pk]]


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


def _thresholds(tree: dict[str, Any]) -> dict[str, tuple[tuple[str, Any], ...]]:
    """The rules on scores and grades by key, for keys with no other rule."""
    rules: dict[str, list[tuple[str, Any]]] = {}
    undecided: set[str] = set()
    for rule in _rules(tree):
        name = rule.get("field")
        if not isinstance(name, str):
            continue
        key = f"field:{name}"
        if name == "score" or name.startswith("score."):
            rules.setdefault(key, []).append((rule["op"], rule.get("value")))
        elif key in GRADE_KEYS:
            if rule["op"] in GRADE_OPS:
                rules.setdefault(key, []).append((rule["op"], rule.get("value")))
            else:
                undecided.add(key)
    return {key: tuple(found) for key, found in rules.items() if key not in undecided}


def _field_types() -> str:
    return json.dumps(dict(FieldDefinition.objects.values_list("key", "type")), sort_keys=True)


def _fingerprint(tree: dict[str, Any]) -> str:
    """The conditions as text, with the types of the custom fields they name
    (read once per batch)."""
    fingerprint = json.dumps(tree, sort_keys=True)
    if '"custom.' in fingerprint:
        fingerprint += batch_cached("segment_field_types", _field_types)
    return fingerprint


def _index_build() -> SegmentIndex:
    by_key: dict[str, list[Watched]] = {}
    rows = (
        Segment.objects.filter(kind=SegmentKind.DYNAMIC)
        .order_by("pk")
        .values_list("pk", "name", "conditions")
    )
    for pk, name, conditions in rows:
        tree = conditions or {"all": []}
        fingerprint = _fingerprint(tree)
        watched = Watched(
            pk=pk,
            name=name,
            conditions=tree,
            names=_activity_names(tree),
            fingerprint=fingerprint,
            thresholds=_thresholds(tree),
        )
        for key in dependencies(tree) | {ALWAYS}:
            by_key.setdefault(key, []).append(watched)
    crossings = {key: _crossings_index(key, found) for key, found in by_key.items()}
    return SegmentIndex(
        by_key={key: tuple(found) for key, found in by_key.items()},
        crossings={key: found for key, found in crossings.items() if found is not None},
    )


def _index_signature() -> tuple[Any, ...]:
    """What the index is built from, short: each dynamic segment's id, name and
    a digest of its conditions (on PostgreSQL; their text elsewhere), and the
    custom fields' types when a segment names one. Building the index from 500
    segments took longer than the database takes to answer this."""
    table = _table(Segment)
    text = "conditions::text" if connection.vendor == "postgresql" else "conditions"
    digest = f"md5({text})" if connection.vendor == "postgresql" else text
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, name, {digest}, {text} LIKE %s FROM {table} "  # noqa: S608
            "WHERE kind = %s ORDER BY id",
            ['%"custom.%', SegmentKind.DYNAMIC.value],
        )
        rows = [tuple(row) for row in cursor.fetchall()]
    custom = any(row[3] for row in rows)
    types = batch_cached("segment_field_types", _field_types) if custom else ""
    return (connection.vendor, connection.settings_dict["NAME"], tuple(rows), types)


def _index_load() -> SegmentIndex:
    return kept_while_same("segment_index", _index_signature, _index_build)


def segment_index() -> SegmentIndex:
    """The dynamic segments by the keys they depend on; once per batch (a segment
    saved meanwhile is checked from the next batch on)."""
    return batch_cached("segment_index", _index_load)


# --- who hears entries and exits ----------------------------------------------------

SEGMENT_EVENT_TYPES = ("segment.entered", "segment.left")

# (event type, segment id) pairs that something hears; a None id: every segment.
Heard = frozenset[tuple[str, int | None]]
HeardProbe = Callable[[], Iterable[tuple[str, int | None]]]
_heard_probes: dict[str, HeardProbe] = {}


def segment_listeners_register(*, name: str, heard: HeardProbe) -> None:
    """Have ``heard()`` tell, once per batch, which ``segment.entered`` /
    ``segment.left`` events an app above reacts to, as (type, segment id) pairs
    (a None id for every segment). Those events go through the event loop; the
    others are written processed. Registered from the app's ``AppConfig.ready``
    (flows: triggers and waits; hooks: subscriptions)."""
    _heard_probes[name] = heard


def _heard_load() -> Heard:
    return frozenset(pair for probe in _heard_probes.values() for pair in probe())


def segments_heard() -> Heard:
    """The segment events something reacts to; once per batch (a flow published
    meanwhile hears them from the next batch on, as its triggers do)."""
    return batch_cached("segments_heard", _heard_load)


def _is_heard(heard: Heard, type_: str, segment_id: int) -> bool:
    return (type_, segment_id) in heard or (type_, None) in heard


def segment_event_settled(event: Event) -> bool:
    """Whether the segments that refer to the one ``event`` is about were
    checked already, by the check that wrote it (in this event's transaction)."""
    scope = event_scope_current()
    return scope is not None and event.pk in scope.get("segments_settled", ())


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


STATE_COLUMNS = ("member_of", "kept_out")


def _state_sql(segments: Sequence[int]) -> str:
    """The lead's open stays and exclusions among ``segments``, as the
    statement's last columns. Only the candidates': a lead with a long history
    has stays in a hundred segments, scattered over as many pages of the table,
    and reading them all was most of a check's time (bench/account.py, 500
    segments)."""
    aggregate = "array_agg" if connection.vendor == "postgresql" else "group_concat"
    lead = f"{_table(Lead)}.{connection.ops.quote_name('id')}"
    # Built from table names and the segments' ids (integers) only.
    among = ", ".join(str(int(pk)) for pk in segments)
    member_of, kept_out = (connection.ops.quote_name(name) for name in STATE_COLUMNS)
    return (
        f"(SELECT {aggregate}(m.segment_id) FROM {_table(SegmentMembership)} m "  # noqa: S608  # noqa: S608
        f"WHERE m.lead_id = {lead} AND m.segment_id IN ({among}) AND m.left_at IS NULL) "
        f"AS {member_of}, "
        f"(SELECT {aggregate}(x.segment_id) FROM {_table(SegmentExclusion)} x "
        f"WHERE x.lead_id = {lead} AND x.segment_id IN ({among})) AS {kept_out}"
    )


@dataclass(frozen=True)
class Statement:
    """The candidates' evaluation for one lead, compiled: ``sql`` with ``params``
    where the lead's id goes at ``leads`` and each moment at its place."""

    sql: str
    params: tuple[Any, ...]
    moments: tuple[tuple[int, dt.timedelta], ...]
    columns: tuple[str, ...]
    leads: tuple[int, ...]

    def bound(self, lead_id: int, now: dt.datetime) -> list[Any]:
        """The parameters for ``lead_id`` with the clock at ``now``."""
        params = list(self.params)
        for place in self.leads:
            params[place] = lead_id
        adapt = connection.ops.adapt_datetimefield_value
        for place, offset in self.moments:
            params[place] = adapt(now + offset)
        return params

    def run(self, lead_id: int, now: dt.datetime) -> Verdict | None:
        params = self.bound(lead_id, now)
        if prepared.enabled():
            # Bound on the server and prepared at once, planned once: planning
            # a statement of hundreds of columns costs more than running it.
            rows = prepared.fetch(self.sql, params, at_once=True)
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


@dataclass(frozen=True)
class Column:
    """One segment's answer for the lead as SQL over the lead's row and the
    counts of its events (``counts``: the ``Tally`` keys it reads): its
    ``params`` and, among them, the places of its moments."""

    sql: str
    params: tuple[Any, ...]
    moments: tuple[tuple[int, dt.timedelta], ...]
    counts: tuple[str, ...] = ()


# --- counting the lead's events once ----------------------------------------------
#
# An activity rule ("did X at least 3 times in 30 days") is a count of the
# lead's events. Compiled on its own it is a subquery that walks the lead's
# events, and with hundreds of segments a statement held a hundred of them: the
# same index range read a hundred times (bench/account.py, 500 segments: 13 ms
# for an email open's check). In the check, every activity rule reads instead a
# column of one aggregate over the lead's events, ``COUNT(*) FILTER (WHERE …)``
# per distinct rule, in one pass; rules that differ only in the count they ask
# for share a column.

ACTIVITY = "lf_activity"


@dataclass(frozen=True)
class Tally:
    """The count of one activity rule's events, as a column of the aggregate."""

    key: str
    name: str
    type: str
    sql: str
    params: tuple[Any, ...]
    moments: tuple[tuple[int, dt.timedelta], ...]
    # How far back its events can be (a window's start), None: any time.
    since: dt.timedelta | None


_tallies: dict[str, Tally] = {}


def _tally(rule: dict[str, Any]) -> Tally:
    """The column counting ``rule``'s events, compiled once per process."""
    key = json.dumps({k: v for k, v in rule.items() if k != "count"}, sort_keys=True)
    if key not in _tallies:
        compiler = Compiler(TEMPLATE_NOW, per_lead=True)
        query = Event.objects.filter(compiler.activity_events(rule)).query
        sql, params = query.get_compiler(using=connection.alias).compile(query.where)
        since = -dt.timedelta(days=rule["within_days"]) if "within_days" in rule else None
        _tallies[key] = Tally(
            key=key,
            name=f"n{len(_tallies)}",
            type=rule["activity"],
            sql=sql,
            params=tuple(params),
            moments=tuple(_moments(params, compiler, TEMPLATE_NOW)),
            since=since,
        )
    return _tallies[key]


class TallyCompiler(Compiler):
    """The per-lead compiler whose activity rules compare a column of the
    statement's one aggregate over the lead's events; ``counts`` gathers the
    columns read."""

    def __init__(self, now: dt.datetime):
        super().__init__(now, per_lead=True)
        self.counts: dict[str, None] = {}

    def activity(self, rule: dict[str, Any]) -> Q:
        tally = _tally(rule)
        self.counts[tally.key] = None
        quote = connection.ops.quote_name
        counted = RawSQL(f"{ACTIVITY}.{quote(tally.name)}", (), output_field=IntegerField())  # noqa: S611
        count = rule.get("count", {"op": "gte", "value": 1})
        lookup = {"gte": GreaterThanOrEqual, "lte": LessThanOrEqual, "eq": Exact}[count["op"]]
        return Q(lookup(counted, count["value"]))


def _tallies_sql(keys: Sequence[str]) -> tuple[str, list[Any], list[tuple[int, dt.timedelta]], int]:
    """The aggregate of the ``keys`` tallies over the lead's events, as a table
    of one row: its SQL, params, moments and the place of the lead's id."""
    quote = connection.ops.quote_name
    table = _table(Event)
    tallies = [_tallies[key] for key in keys]
    parts: list[str] = []
    params: list[Any] = []
    moments: list[tuple[int, dt.timedelta]] = []
    for tally in tallies:
        parts.append(f"COUNT(*) FILTER (WHERE {tally.sql}) AS {quote(tally.name)}")
        moments += [(len(params) + place, offset) for place, offset in tally.moments]
        params += tally.params
    lead = len(params)
    params.append(TEMPLATE_LEAD)
    types = sorted({tally.type for tally in tallies})
    where = (
        f"{table}.{quote('lead_id')} = %s AND {table}.{quote('type')} "
        f"IN ({', '.join(['%s'] * len(types))})"
    )
    params += types
    since = [tally.since for tally in tallies]
    if all(offset is not None for offset in since):
        # Every rule has a window: the pass reads only the widest one (and, on
        # PostgreSQL, only the months it reaches).
        where += f" AND {table}.{quote('occurred_at')} >= %s"
        widest = min(offset for offset in since if offset is not None)
        moments.append((len(params), widest))
        params.append(connection.ops.adapt_datetimefield_value(TEMPLATE_NOW + widest))
    sql = f"(SELECT {', '.join(parts)} FROM {table} WHERE {where}) {ACTIVITY}"  # noqa: S608
    return sql, params, moments, lead


def _moments(
    params: Sequence[Any], compiler: Compiler, now: dt.datetime
) -> list[tuple[int, dt.timedelta]]:
    adapt = connection.ops.adapt_datetimefield_value
    by_value: dict[Any, dt.timedelta] = {adapt(now + offset): offset for offset in compiler.moments}
    return [
        (place, by_value[value])
        for place, value in enumerate(params)
        if isinstance(value, dt.datetime | str) and value in by_value
    ]


def _column(watched: Watched, now: dt.datetime) -> tuple[Column, bool]:
    """``watched``'s column with the clock at ``now``; and whether it can be run
    at another moment (no value in it derived from now but its moments)."""
    compiler = TallyCompiler(now)
    check = ExpressionWrapper(compiler.node(watched.conditions), output_field=BooleanField())
    compiled = (
        Lead.objects.filter(pk=TEMPLATE_LEAD)
        .values(check=check)
        .query.get_compiler(using=connection.alias)
    )
    sql, params = compiled.as_sql()
    ((_, (column_sql, column_params), _),) = compiled.select
    # A column that needs more than the lead's row (a join) cannot stand beside
    # the others in one SELECT.
    if sql != f"SELECT {column_sql} AS {connection.ops.quote_name('check')}{_from_lead()}":
        raise AssertionError("the per-lead column is not shaped as expected")
    if list(params) != [*column_params, TEMPLATE_LEAD]:
        raise AssertionError("the per-lead column is not shaped as expected")
    moments = _moments(column_params, compiler, now)
    column = Column(
        sql=column_sql,
        params=tuple(column_params),
        moments=tuple(moments),
        counts=tuple(compiler.counts),
    )
    return column, not compiler.volatile


def _from_lead(tallies: str = "") -> str:
    table = _table(Lead)
    joined = f", {tallies}" if tallies else ""
    return f" FROM {table}{joined} WHERE {table}.{connection.ops.quote_name('id')} = %s"


def _assemble(columns: Sequence[tuple[int, Column]]) -> Statement:
    """One statement of ``columns`` (by segment id) and the lead's state."""
    quote = connection.ops.quote_name
    parts: list[str] = []
    params: list[Any] = []
    moments: list[tuple[int, dt.timedelta]] = []
    counts: dict[str, None] = {}
    for pk, column in columns:
        parts.append(f"{column.sql} AS {quote(f's{pk}')}")
        moments += [(len(params) + place, offset) for place, offset in column.moments]
        params += column.params
        counts.update(dict.fromkeys(column.counts))
    parts.append(_state_sql([pk for pk, _ in columns]))
    leads = []
    tallies = ""
    if counts:
        tallies, tally_params, tally_moments, lead = _tallies_sql(list(counts))
        moments += [(len(params) + place, offset) for place, offset in tally_moments]
        leads.append(len(params) + lead)
        params += tally_params
    leads.append(len(params))
    return Statement(
        sql=f"SELECT {', '.join(parts)}{_from_lead(tallies)}",
        params=(*params, TEMPLATE_LEAD),
        moments=tuple(moments),
        columns=(*(f"s{pk}" for pk, _ in columns), *STATE_COLUMNS),
        leads=tuple(leads),
    )


# Compiled columns by their segment's conditions, and the statements assembled
# from them by the set of segments, kept by the process while the conditions
# stay as they are; each emptied when it holds this many. A segment's column is
# compiled once whatever sets it is checked in (an event's keys, its name, the
# segments an entry makes worth checking again): the ORM takes longer to
# compile a column than the database to answer it.
COLUMNS_KEPT = 5000
STATEMENTS_KEPT = 500
_columns: dict[tuple[int, str], Column | None] = {}
_statements: dict[tuple[tuple[int, str], ...], Statement | None] = {}


def _column_kept(watched: Watched, now: dt.datetime) -> tuple[Column, bool]:
    key = (watched.pk, watched.fingerprint)
    if key not in _columns:
        column, movable = _column(watched, TEMPLATE_NOW)
        _columns[key] = column if movable else None
    kept = _columns[key]
    if kept is None:
        # Holds days of custom date rules: compiled at each check.
        return _column(watched, now)[0], False
    return kept, True


def _evaluate(lead_id: int, segments: Sequence[Watched], now: dt.datetime) -> Verdict | None:
    """The lead's verdict on ``segments`` at ``now``."""
    return _statement(segments, now).run(lead_id, now)


def _statement(segments: Sequence[Watched], now: dt.datetime) -> Statement:
    """The statement that evaluates ``segments`` for a lead at ``now``."""
    key = tuple((watched.pk, watched.fingerprint) for watched in segments)
    statement = _statements.get(key)
    if statement is None:
        if len(_columns) + len(segments) > COLUMNS_KEPT or len(_tallies) >= COLUMNS_KEPT:
            # Emptied together, before this statement's columns are made:
            # columns and statements name the tallies they read.
            _columns.clear()
            _statements.clear()
            _tallies.clear()
            _decided.clear()
        columns, movable = [], True
        for watched in segments:
            column, kept = _column_kept(watched, now)
            columns.append((watched.pk, column))
            movable = movable and kept
        statement = _assemble(columns)
        if movable:
            if len(_statements) >= STATEMENTS_KEPT:
                _statements.clear()
                _decided.clear()
            _statements[key] = statement
    return statement


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


@dataclass(frozen=True)
class Move:
    """One stay opened or closed by a check."""

    membership_id: int
    segment: Watched
    type: str
    depth: int


def _moves(
    *, lead_id: int, enter: Sequence[Watched], leave: Sequence[Watched], depth: int
) -> list[Move]:
    """Open a stay in each of ``enter``, close the open one in each of ``leave``;
    return those this transaction made (a concurrent recompute may have made one
    already, and announced it)."""
    at = connection.ops.adapt_datetimefield_value(timezone.now())
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
    by_pk = {watched.pk: watched for watched in (*enter, *leave)}
    return [
        Move(membership_id=mid, segment=by_pk[segment_id], type=type_, depth=depth)
        for segment_id, (mid, type_) in sorted(moved.items())
    ]


# One round of the check in one statement (PostgreSQL): the candidates'
# evaluation (``verdict``, the statement ``_evaluate`` runs), what it decides
# for each (``decided``), the stays it opens and closes, and an event for each,
# written processed unless something hears it, in the order of the segments.
# The evaluation and the moves were two round trips a round, and a third of an
# event's time with hundreds of segments. ``<ids>`` and ``<holds>`` stand for
# the candidates' ids and their columns of the verdict, in the same order.
_DECIDED = (
    "decided AS (SELECT d.id, "  # noqa: S608
    "coalesce(d.holds, false) AND d.id <> ALL(coalesce(v.kept_out, '{}')) AS matches, "
    "d.id = ANY(coalesce(v.member_of, '{}')) AS member "
    "FROM verdict v, unnest(ARRAY[<ids>]::bigint[], ARRAY[<holds>]::boolean[]) "
    "AS d(id, holds)), "
    "entered AS ("
    f"INSERT INTO {SegmentMembership._meta.db_table} (segment_id, lead_id, entered_at, source) "
    "SELECT id, %(lead)s, %(at)s, %(source)s FROM decided WHERE matches AND NOT member "
    "ON CONFLICT DO NOTHING RETURNING id, segment_id), "
    f"closed AS (UPDATE {SegmentMembership._meta.db_table} SET left_at = %(at)s "
    "WHERE lead_id = %(lead)s AND left_at IS NULL "
    "AND segment_id IN (SELECT id FROM decided WHERE member AND NOT matches) "
    "RETURNING id, segment_id), "
    "moved AS (SELECT id, segment_id, 'segment.entered' AS type FROM entered "
    "UNION ALL SELECT id, segment_id, 'segment.left' FROM closed), "
    # No key is claimed in the key table (leads.EventKey), as events_record
    # claims one: a stay's event is keyed by the stay, which this statement
    # just opened or closed, and no other can open or close it again. The
    # claim was a fifth of the moves' time, with a row and two indexes. The
    # names are read for the moves only, and who hears which segment is told
    # by ids (a few): binding a name and two flags per candidate was a tenth
    # of a round's time in the worker.
    f"written AS (INSERT INTO {Event._meta.db_table} (type, name, properties, context, "
    "user_id, anonymous_id, email, occurred_at, received_at, source, idempotency_key, "
    "depth, attempts, resends, error, lead_id, processed_at) "
    "SELECT m.type, left(g.name, 255), "
    "jsonb_build_object('segment_id', m.segment_id, 'segment_name', g.name), '{}'::jsonb, "
    "'', '', '', %(at)s, %(at)s, %(system)s, m.type || ':' || m.id, %(depth)s, 0, 0, '', "
    "%(lead)s, CASE WHEN (m.type = 'segment.entered' "
    "AND (%(entered_all)s OR m.segment_id = ANY(%(entered)s::bigint[]))) "
    "OR (m.type = 'segment.left' AND (%(left_all)s OR m.segment_id = ANY(%(left)s::bigint[]))) "
    "THEN NULL ELSE %(at)s END "
    f"FROM moved m JOIN {Segment._meta.db_table} g ON g.id = m.segment_id "
    "ORDER BY m.segment_id "
    "RETURNING id, idempotency_key, processed_at IS NULL AS waiting, "
    "properties ->> 'segment_name' AS segment_name) "
    "SELECT m.id, m.segment_id, m.type, w.id, coalesce(w.waiting, false), w.segment_name "
    "FROM moved m LEFT JOIN written w ON w.idempotency_key = m.type || ':' || m.id "
    "ORDER BY m.segment_id"
)
_NAMED = re.compile(r"%\((\w+)\)s")
# The round's statement by its evaluation's, with the names of its own
# parameters in their order (emptied with ``_statements``).
_decided: dict[str, tuple[str, tuple[str, ...]]] = {}


def _decided_sql(statement: Statement, segments: Sequence[Watched]) -> tuple[str, tuple[str, ...]]:
    kept = _decided.get(statement.sql)
    if kept is not None:
        return kept
    quote = connection.ops.quote_name
    holds = ", ".join(f"v.{quote(f's{watched.pk}')}" for watched in segments)
    # Built from the segments' ids (integers) and column names only.
    tail = _DECIDED.replace("<ids>", ", ".join(str(int(w.pk)) for w in segments)).replace(
        "<holds>", holds
    )
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return "%s"

    sql = f"WITH verdict AS MATERIALIZED ({statement.sql}), {_NAMED.sub(positional, tail)}"
    _decided[statement.sql] = kept = (sql, tuple(names))
    return kept


def _heard_load_params() -> dict[str, Any]:
    heard = segments_heard()
    params: dict[str, Any] = {}
    for type_, name in (("segment.entered", "entered"), ("segment.left", "left")):
        params[f"{name}_all"] = (type_, None) in heard
        params[name] = sorted(pk for kind, pk in heard if kind == type_ and pk is not None)
    return params


def _heard_params() -> dict[str, Any]:
    """Who hears which segment's events, as the round's statement takes it:
    whether something hears every segment's, and the ids of those heard."""
    return batch_cached("segments_heard_params", _heard_load_params)


def _checked_and_moved(*, lead_id: int, segments: Sequence[Watched], depth: int) -> list[Move]:
    """One round of the check on PostgreSQL: evaluate ``segments`` for the lead,
    open and close its stays by the answers, and write their events, in one
    statement; return the moves made (a concurrent recompute may have made
    one already, and announced it)."""
    now = timezone.now()
    statement = _statement(segments, now)
    sql, names = _decided_sql(statement, segments)
    values: dict[str, Any] = {
        "lead": lead_id,
        "at": now,
        "source": MembershipSource.CONDITION.value,
        "system": SYSTEM_SOURCE,
        "depth": depth,
        **_heard_params(),
    }
    params = statement.bound(lead_id, now) + [values[name] for name in names]
    rows = prepared.fetch(sql, params, at_once=True)
    by_pk = {watched.pk: watched for watched in segments}
    moves, waiting = [], []
    for membership_id, segment_id, type_, event_id, unprocessed, name in rows:
        moves.append(
            Move(membership_id=membership_id, segment=by_pk[segment_id], type=type_, depth=depth)
        )
        if unprocessed:
            event = segment_event(
                membership_id=membership_id,
                lead_id=lead_id,
                segment_id=segment_id,
                name=name,
                type_=type_,
                at=now,
                depth=depth,
            )
            event.pk = event_id
            waiting.append(event)
    if waiting:
        # Heard by flows or hooks: processed next, in this order, under the
        # same lock; the segments referring to theirs are settled already.
        events_written(events=waiting)
        scope = event_scope_current()
        if scope is not None:
            scope.setdefault("segments_settled", set()).update(e.pk for e in waiting)
    return moves


def _announce(*, lead_id: int, moves: Sequence[Move]) -> None:
    """The events of the moves, in the order they were made, in one insert: those
    nothing above segments hears are written processed (their dependents were
    checked already); the others are processed next, under the same lock, and
    their segments' dependents are not checked again."""
    now = timezone.now()
    heard = segments_heard()
    events = []
    for move in moves:
        event = segment_event(
            membership_id=move.membership_id,
            lead_id=lead_id,
            segment_id=move.segment.pk,
            name=move.segment.name,
            type_=move.type,
            at=now,
            depth=move.depth,
        )
        if not _is_heard(heard, move.type, move.segment.pk):
            event.processed_at = now
        events.append(event)
    waiting = events_record(events=events)
    scope = event_scope_current()
    if scope is not None and waiting:
        scope.setdefault("segments_settled", set()).update(waiting)


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


# The counts' own transaction, in one round trip; it does not wait for its
# commit to reach the disk (``set_config`` of ``synchronous_commit``, for this
# transaction only): with hundreds of segments most events move a count, and a
# flush per event was a sixth of the worker's time (bench/account.py, 500
# segments). A crash of the database may lose the last moves of a count, which
# the next recompute sets exactly; it never loses a stay.
_COUNTS_MOVE = (
    f"UPDATE {Segment._meta.db_table} s "  # noqa: S608
    "SET member_count = greatest(s.member_count + d.delta, 0) "
    "FROM unnest(%s::bigint[], %s::int[]) AS d(id, delta), "
    "set_config('synchronous_commit', 'off', true) AS durability "
    "WHERE s.id = d.id"
)


def _counts_apply(deltas: dict[int, int]) -> None:
    moved = {pk: delta for pk, delta in deltas.items() if delta}
    if not moved:
        return
    if prepared.enabled() and connection.get_autocommit():
        prepared.fetch(_COUNTS_MOVE, [list(moved), list(moved.values())])
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


# Rounds of segments referring to segments the round before moved the lead in or
# out of; cycles are refused when a segment is saved, so a chain ends long before.
ROUNDS_LIMIT = 16


def _changes(
    candidates: Sequence[Watched], verdict: Verdict
) -> tuple[list[Watched], list[Watched]]:
    """The segments to enter and to leave, by the verdict."""
    enter, leave = [], []
    for watched in candidates:
        matches = verdict.matches[watched.pk] and watched.pk not in verdict.excluded
        if matches and watched.pk not in verdict.stays:
            enter.append(watched)
        elif not matches and watched.pk in verdict.stays:
            leave.append(watched)
    return enter, leave


def lead_check(*, lead_id: int, keys: set[str], cause: Event | None = None) -> None:
    """Re-check, for this lead only, the dynamic segments that depend on ``keys``;
    enter or leave where the answer changed, then check the segments that refer
    to those, until nothing moves. The lead is locked by the caller."""
    index = segment_index()
    candidates = index.candidates(keys, cause)
    depth = cause.depth + 1 if cause is not None else 0
    # On PostgreSQL each round is one statement, its events written with its
    # moves.
    together = prepared.enabled()
    moves: list[Move] = []
    for round_ in range(ROUNDS_LIMIT + 1):
        if not candidates:
            break
        if round_ == ROUNDS_LIMIT:
            logger.error("lead %s: segments still moving after %s rounds", lead_id, round_)
            break
        # Each round one deeper, as when every entry was an event checked in turn.
        if together:
            made = _checked_and_moved(lead_id=lead_id, segments=candidates, depth=depth + round_)
        else:
            verdict = _evaluate(lead_id, candidates, timezone.now())
            if verdict is None:
                return
            enter, leave = _changes(candidates, verdict)
            made = _moves(lead_id=lead_id, enter=enter, leave=leave, depth=depth + round_)
        if not made:
            break
        moves += made
        candidates = index.candidates({f"segment:{move.segment.pk}" for move in made}, None)
    if moves:
        deltas: dict[int, int] = {}
        for move in moves:
            step = 1 if move.type == "segment.entered" else -1
            deltas[move.segment.pk] = deltas.get(move.segment.pk, 0) + step
        _counts_move(deltas)
        if not together:
            _announce(lead_id=lead_id, moves=moves)


# The id a flow's condition is compiled under: no segment has it.
CONDITION = 0


def conditions_hold(*, lead_id: int, tree: dict[str, Any], now: dt.datetime) -> bool:
    """Whether the lead matches a condition tree (a flow's if / else) at
    ``now``: the per-lead check's statement for one tree, compiled once per
    process and prepared, where building the query through the ORM each time
    cost more than running it."""
    watched = Watched(
        pk=CONDITION,
        name="",
        conditions=tree,
        names=_activity_names(tree),
        fingerprint=_fingerprint(tree),
    )
    verdict = _evaluate(lead_id, [watched], now)
    return verdict is not None and verdict.matches[CONDITION]

"""The engine: it runs flows inside the worker's per-event transaction, with the
lead row locked. An event resumes the waits listening for it and enrolls the
lead into the flows whose triggers match; steps run until a wait or the end, and
the enrollment settles its status from them. Waits are Wakeup rows that beat
claims and the workers fire. Every effect is keyed by its StepRun.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from django.db import DatabaseError, connection, transaction
from django.db.models import F, Field, Model, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast
from django.utils import timezone

from core import prepared
from core.scope import (
    batch_cached,
    event_scope_forget,
    event_scope_put,
    event_scoped,
    kept_while_same,
)
from flows.models import (
    Enrollment,
    EnrollmentStatus,
    Flow,
    FlowStatus,
    FlowVersion,
    StepRun,
    StepStatus,
    TriggerSubscription,
    Wakeup,
)
from flows.nodes import REGISTRY, StepContext, StepError, StepResult
from flows.nodes.logic import wait_until_matches
from flows.rules import (
    Entry,
    GraphIndex,
    entry_decide,
    entry_reads,
    event_match_keys,
    graph_index,
)
from leads.models import Event, Lead
from leads.outages import outage, task_send
from scoring.models import ScoreCategory, ScoreSource
from scoring.series import Ask, Series, series_plan, series_write
from scoring.services import score_category

logger = logging.getLogger(__name__)

STEP_RETRY_DELAYS = (10, 60, 300)  # seconds before the 2nd, 3rd and 4th try
MAX_STEPS_PER_RUN = 1000


# --- lean writes for the hot path ----------------------------------------------------
#
# Every event that enters a flow writes an enrollment and a step per node it
# passes. Through Model.save() each write costs about three times its round trip
# in Python (signals, query compilation); these build the same statements once
# per model and bind values exactly as save() would.

_insert_sql: dict[type[Model], tuple[str, list[Any]]] = {}


def _lean_insert(obj: Model, *, prefix: str = "", before: Sequence[Any] = ()) -> None:
    """INSERT … RETURNING id of a new instance, defaults and auto_now_add
    applied as save() applies them; the instance gets its id. ``prefix`` (a
    ``WITH`` of another write) and its ``before`` params go first."""
    model = type(obj)
    if model not in _insert_sql:
        meta = obj._meta
        quote = connection.ops.quote_name
        fields = [f for f in meta.concrete_fields if not f.primary_key]
        _insert_sql[model] = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {quote(meta.pk.column)}",
            fields,
        )
    statement, fields = _insert_sql[model]
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    row = _lean_execute(prefix + statement, [*before, *values])[0]
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias


def _lean_update(
    model: type[Model], pk: int, *, prefix: str = "", before: Sequence[Any] = (), **values: Any
) -> None:
    """UPDATE of some columns of one row, values bound as save() binds them
    (after ``prefix`` and its ``before`` params, as ``_lean_insert``)."""
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [cast("Field[Any, Any]", meta.get_field(name)) for name in values]
    assignments = ", ".join(f"{quote(str(f.column))} = %s" for f in fields)
    params = [
        f.get_db_prep_save(value, connection)
        for f, value in zip(fields, values.values(), strict=True)
    ]
    _lean_execute(
        f"{prefix}UPDATE {quote(meta.db_table)} SET {assignments} "  # noqa: S608
        f"WHERE {quote(meta.pk.column)} = %s",
        [*before, *params, pk],
    )


def _lean_execute(statement: str, values: list[Any]) -> list[tuple[Any, ...]]:
    # Prepared on PostgreSQL: the same few statements run for every event.
    if prepared.enabled():
        return prepared.fetch(statement, values)
    with connection.cursor() as cursor:
        cursor.execute(statement, values)
        return cursor.fetchall() if cursor.description else []


def _subscriptions_signature() -> tuple[Any, ...]:
    """What the routes are built from, short: every subscription of an active
    flow, with what the engine reads of its flow and a digest of its version's
    graph (on PostgreSQL; the graph's text elsewhere)."""
    tables = (TriggerSubscription, Flow, FlowVersion)
    subscription, flow, version = (model._meta.db_table for model in tables)
    graph = "md5(v.graph::text)" if connection.vendor == "postgresql" else "v.graph"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.id, s.flow_id, s.version_id, s.node_id, s.event_type, s.match_key, "  # noqa: S608
            f"f.reentry, f.reentry_days, f.name, {graph} FROM {subscription} s "
            f"JOIN {flow} f ON f.id = s.flow_id JOIN {version} v ON v.id = s.version_id "
            "WHERE f.status = %s ORDER BY s.id",
            [FlowStatus.ACTIVE.value],
        )
        rows = tuple(tuple(row) for row in cursor.fetchall())
    return (connection.vendor, connection.settings_dict["NAME"], rows)


@dataclass(frozen=True)
class Scoring:
    """What a flow does from a trigger when all it does is score: the trigger's
    one next step adjusts the score (``node``), nothing follows that step, and
    the flow lets a lead in every time, so nothing is read to decide. Such
    flows, the most common kind, are run together (``_scored``)."""

    node: str
    category: str
    points: int
    reason: str


class Route(NamedTuple):
    """A subscription of an active flow, its trigger node, and what the flow
    does from it when it only scores."""

    subscription: TriggerSubscription
    node: dict[str, Any]
    scoring: Scoring | None


def _active_subscriptions() -> dict[str, list[Route]]:
    """Routes of active flows by event type: kept by the worker while their
    subscriptions stay the same (with fifty flows, parsing their graphs again
    for every batch was a fiftieth of its time)."""
    return kept_while_same("flow_subscriptions", _subscriptions_signature, _subscriptions_build)


def _subscriptions_build() -> dict[str, list[Route]]:
    by_type: dict[str, list[Route]] = {}
    graphs: dict[int, GraphIndex] = {}
    # In the order they were made: the flows an event enters go in that order.
    subscriptions = (
        TriggerSubscription.objects.filter(flow__status=FlowStatus.ACTIVE)
        .select_related("flow", "version")
        .order_by("id")
    )
    for subscription in subscriptions:
        if subscription.version_id not in graphs:
            graphs[subscription.version_id] = graph_index(subscription.version.graph)
        index = graphs[subscription.version_id]
        node = index.nodes.get(subscription.node_id)
        if node is not None:
            route = Route(subscription, node, _scoring_only(subscription.flow, index, node))
            by_type.setdefault(subscription.event_type, []).append(route)
    return by_type


def _scoring_only(flow: Flow, index: GraphIndex, trigger: dict[str, Any]) -> Scoring | None:
    """What the flow does from ``trigger`` if all it does is score (``Scoring``)."""
    once = bool(trigger.get("config", {}).get("once_per_lead"))
    if entry_reads(reentry=flow.reentry, once_per_lead=once) != (False, False):
        return None
    leaving = [key for key in index.edges if key[0] == trigger["id"]]
    targets = index.targets(trigger["id"], "next")
    if leaving != [(trigger["id"], "next")] or len(targets) != 1:
        return None
    step = index.nodes.get(targets[0])
    if step is None or step["type"] != "score.adjust":
        return None
    if any(key[0] == step["id"] for key in index.edges):
        return None
    config = step.get("config") or {}
    try:
        return Scoring(
            node=step["id"],
            category=str(config["category"]),
            points=int(config["points"]),
            reason=str(config["reason"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def flows_on_event(*, event: Event, lead: Lead) -> None:
    """Route an applied event: resume waits listening for it, enroll the lead in
    flows whose triggers match. Runs in the event's transaction. Flows that
    only score (``Scoring``) go first, together, so that the other flows the
    event enters see the points it earned."""
    _resume_listeners(event=event, lead=lead)
    keys = event_match_keys(name=event.name, properties=event.properties)
    routes = batch_cached("flow_subscriptions", _active_subscriptions).get(event.type, [])
    scoring: list[Route] = []
    others: list[Route] = []
    scored: set[int] = set()
    for route in routes:
        subscription, node = route.subscription, route.node
        if subscription.match_key not in keys or subscription.flow_id in scored:
            continue
        node_type = REGISTRY[node["type"]]
        assert node_type.matches is not None
        if not node_type.matches(event, node.get("config", {})):
            continue
        if route.scoring is not None:
            scoring.append(route)
            scored.add(subscription.flow_id)
        else:
            others.append(route)
    settles = Settles()
    if scoring:
        _scored(scoring, lead=lead, event=event, settles=settles)
    # One enrollment per flow and event, whichever of its triggers matched.
    entered = scored
    for route in others:
        if route.subscription.flow_id in entered:
            continue
        enrollment = _route_enroll(route, lead=lead, event=event, settles=settles)
        if enrollment is not None:
            entered.add(route.subscription.flow_id)
    settles.flush()


def _route_enroll(route: Route, *, lead: Lead, event: Event, settles: Settles) -> Enrollment | None:
    subscription = route.subscription
    return enroll(
        flow=subscription.flow,
        version=subscription.version,
        lead=lead,
        node=route.node,
        event=event,
        settles=settles,
    )


def _scored(routes: list[Route], *, lead: Lead, event: Event, settles: Settles) -> None:
    """Enroll the lead in flows that only score, in order, as ``enroll`` would,
    their changes worked out together (``scoring.series``): one statement
    writes every enrollment, its two steps, and its score change. One whose
    rise would move the lead's stage, or whose category is gone, goes through
    ``enroll`` (which moves the stage with its own events, or fails the step),
    and the rest go on after it. SQLite enrolls them one by one."""
    if not prepared.enabled():
        for route in routes:
            _route_enroll(route, lead=lead, event=event, settles=settles)
        return
    while routes:
        asks: list[Ask] = []
        for route in routes:
            assert route.scoring is not None
            try:
                category = score_category(route.scoring.category)
            except ScoreCategory.DoesNotExist:
                break
            asks.append(Ask(category, route.scoring.points, route.scoring.reason))
        done = 0
        if asks:
            series = series_plan(lead=lead, asks=asks)
            done = len(series.changes)
            if done:
                _scored_write(routes[:done], series, lead=lead, event=event)
        if done == len(routes):
            return
        _route_enroll(routes[done], lead=lead, event=event, settles=settles)
        routes = routes[done + 1 :]


@functools.cache
def _scored_ctes() -> str:
    """The enrollments and steps of scoring flows, as CTEs of the series'
    statement (``scoring.series.series_sql``): ids drawn in order, so that each
    flow's rows come after the one before it, and its trigger's step before
    its score step (runs are listed by id)."""
    enrollments, steps = Enrollment._meta.db_table, StepRun._meta.db_table
    enrollment_ids, step_ids = prepared.sequence(enrollments), prepared.sequence(steps)
    return (
        f"flows_ids AS MATERIALIZED (SELECT n, nextval('{enrollment_ids}'::regclass) "  # noqa: S608
        f"AS enrollment, nextval('{step_ids}'::regclass) AS trigger_step, "
        f"nextval('{step_ids}'::regclass) AS step FROM series ORDER BY n), "
        "flows_routes AS (SELECT * FROM jsonb_to_recordset(%(flows_routes)s::jsonb) "
        "AS r(n int, flow int8, version int8, node varchar, node_type varchar, step varchar)), "
        f"flows_enrolled AS (INSERT INTO {enrollments} (id, flow_id, version_id, lead_id, "
        "trigger_event_id, trigger_node, status, created_at, finished_at) "
        "SELECT i.enrollment, r.flow, r.version, %(lead)s, %(flows_event)s, r.node, "
        "%(flows_done)s, %(now)s, %(now)s FROM flows_routes r JOIN flows_ids i USING (n) "
        "ORDER BY n), "
        f"flows_steps AS (INSERT INTO {steps} (id, enrollment_id, node_id, node_type, visit, "
        "status, attempts, output, error, started_at, finished_at) "
        "SELECT s.id, s.enrollment, s.node, s.node_type, 0, %(flows_completed)s, 1, s.output, '', "
        "%(now)s, %(now)s FROM (SELECT i.trigger_step AS id, i.enrollment, r.node, r.node_type, "
        "jsonb_build_object('event', %(flows_event)s::int8) AS output "
        "FROM flows_routes r JOIN flows_ids i USING (n) "
        "UNION ALL SELECT i.step, i.enrollment, r.step, 'score.adjust', "
        "jsonb_build_object('score_change', c.id, 'handles', jsonb_build_array('next')) "
        "FROM flows_routes r JOIN flows_ids i USING (n) JOIN change_ids c USING (n)) s "
        "ORDER BY s.id)"
    )


def _scored_write(routes: list[Route], series: Series, *, lead: Lead, event: Event) -> None:
    from psycopg.types.json import Jsonb

    series_write(
        series,
        cause=event,
        source=ScoreSource.FLOW,
        # A step's change is keyed by the step, as ``flows.nodes`` keys it.
        key="'step:' || flows_ids.step",
        between=_scored_ctes(),
        key_from="JOIN flows_ids USING (n)",
        params={
            "flows_routes": Jsonb(
                [
                    {
                        "n": n,
                        "flow": route.subscription.flow_id,
                        "version": route.subscription.version_id,
                        "node": route.node["id"],
                        "node_type": route.node["type"],
                        "step": route.scoring.node if route.scoring is not None else None,
                    }
                    for n, route in enumerate(routes, 1)
                ]
            ),
            "flows_event": event.pk,
            "flows_done": EnrollmentStatus.COMPLETED.value,
            "flows_completed": StepStatus.COMPLETED.value,
        },
    )


def segments_heard_by_flows(event_types: Sequence[str]) -> set[tuple[str, int | None]]:
    """The (event type, segment id) pairs of ``event_types`` that flows react to
    (a None id: every segment): triggers of active flows, and waits of any of
    their versions (an enrollment runs on the version it began on). Read once
    per batch by the per-lead segment check, which writes the other segments'
    entries and exits processed."""
    heard: set[tuple[str, int | None]] = set()
    routes = batch_cached("flow_subscriptions", _active_subscriptions)
    for event_type in event_types:
        for subscription, _, _ in routes.get(event_type, []):
            key = subscription.match_key
            heard.add((event_type, int(key) if key.isdigit() else None))
    graphs = (
        FlowVersion.objects.filter(flow__status=FlowStatus.ACTIVE)
        .annotate(text=Cast("graph", TextField()))
        .filter(text__contains="wait.until")
        .values_list("graph", flat=True)
    )
    for graph in graphs:
        for node in graph.get("nodes", []):
            awaited = (node.get("config") or {}).get("event") or {}
            trigger = (
                REGISTRY.get(awaited.get("type", "")) if node.get("type") == "wait.until" else None
            )
            if trigger is None or trigger.subscribe is None:
                continue
            try:
                event_type, key = trigger.subscribe(awaited.get("config") or {})
            except (KeyError, TypeError, ValueError):
                # An unfinished wait cannot be published; nothing to hear.
                continue
            if event_type in event_types:
                heard.add((event_type, int(key) if str(key).isdigit() else None))
    return heard


def entry_check(*, flow: Flow, lead: Lead, node: dict[str, Any], now: dt.datetime) -> Entry:
    """Whether the re-entry rule lets ``lead`` into ``flow`` through the trigger
    ``node`` now (flows.rules.entry_decide), reading only what it needs: with
    every time and no once-per-lead trigger, nothing, not even a query to build."""
    once = bool(node.get("config", {}).get("once_per_lead"))
    read_trigger, read_last = entry_reads(reentry=flow.reentry, once_per_lead=once)
    through = last_at = None
    if read_trigger or read_last:
        earlier = Enrollment.objects.filter(flow=flow, lead=lead)
        through = read_trigger and earlier.filter(trigger_node=node["id"]).exists()
        if read_last and not through:
            last_at = (
                earlier.order_by("-created_at", "-id").values_list("created_at", flat=True).first()
            )
    return entry_decide(
        reentry=flow.reentry,
        reentry_days=flow.reentry_days,
        once_per_lead=once,
        now=now,
        through_trigger=bool(through),
        last_at=last_at,
    )


def enroll(
    *,
    flow: Flow,
    version: FlowVersion,
    lead: Lead,
    node: dict[str, Any],
    event: Event | None,
    settles: Settles | None = None,
) -> Enrollment | None:
    """Start the lead on the flow at a trigger node, obeying the re-entry rule;
    one enrollment per (flow, lead, trigger event), whatever retries happen.
    ``settles``: the event's other enrollments, whose status this one's first
    write may carry and which then holds this one's (see ``Settles``)."""
    now = timezone.now()
    if not entry_check(flow=flow, lead=lead, node=node, now=now).allowed:
        return None
    # The caller holds the lead's lock and enrolls once per flow and event; the
    # unique (flow, lead, trigger event) constraint is the backstop.
    enrollment = Enrollment(
        flow=flow, version=version, lead=lead, trigger_event=event, trigger_node=node["id"]
    )
    trigger = StepRun(
        enrollment=enrollment,
        node_id=node["id"],
        node_type=node["type"],
        status=StepStatus.COMPLETED,
        finished_at=now,
        output={"event": event.pk if event else None},
    )
    if prepared.enabled():
        # Written with the first step's row (``_advance``).
        opening: Opening | None = Opening(
            trigger=trigger, now=now, carried=settles.take() if settles is not None else None
        )
    else:
        opening = None
        _lean_insert(enrollment)
        trigger.enrollment = enrollment
        _lean_insert(trigger)
    _advance(
        enrollment,
        lead,
        [(node["id"], "next")],
        event,
        fresh=True,
        opening=opening,
        settles=settles,
    )
    return enrollment


@dataclass
class Opening:
    """A new enrollment and its trigger step, not written yet: they go with the
    first step's row, in one statement (PostgreSQL). ``carried``: the settle of
    the enrollment before it, which that statement writes too."""

    trigger: StepRun
    now: dt.datetime
    carried: Settle | None = None


@dataclass
class Settle:
    """An enrollment's status once its run stopped, with its last completed
    step's output, not written yet."""

    enrollment: int
    status: str
    finished_at: dt.datetime | None
    step: StepRun | None

    def params(self) -> dict[str, Any]:
        values = {
            "settled": self.enrollment,
            "settled_status": self.status,
            "settled_at": self.finished_at,
        }
        if self.step is not None:
            status, output, finished_at = _step_values(self.step)
            values.update(
                written=self.step.pk,
                written_status=status,
                written_output=output,
                written_at=finished_at,
            )
        return values


class Settles:
    """The settles of one event's enrollments (PostgreSQL). An event of a
    large account enters several flows, and each of them ended on a statement
    of its own that set its status. Each is held instead and written with the
    next enrollment's first statement; the last one, by ``flush``. Between the
    two only the next flow's trigger and re-entry rule are read, neither of
    which reads a status."""

    def __init__(self) -> None:
        self.held: Settle | None = None

    def hold(self, settle: Settle) -> None:
        self.flush()
        self.held = settle

    def take(self) -> Settle | None:
        settle, self.held = self.held, None
        return settle

    def flush(self) -> None:
        settle = self.take()
        if settle is not None:
            _settle_write(settle)


# A held settle, as the first CTEs of an opening (named parameters, as the
# opening's own).
_SETTLED = (
    f"settled AS (UPDATE {Enrollment._meta.db_table} "  # noqa: S608
    "SET status = %(settled_status)s, finished_at = %(settled_at)s WHERE id = %(settled)s), "
)
_WRITTEN = (
    f"written AS (UPDATE {StepRun._meta.db_table} "  # noqa: S608
    "SET status = %(written_status)s, output = %(written_output)s, "
    "finished_at = %(written_at)s WHERE id = %(written)s), "
)


# The enrollment and its trigger step in one round trip (PostgreSQL).
_ENROLLMENT_INSERT = (
    f"WITH enrollment AS (INSERT INTO {Enrollment._meta.db_table} "  # noqa: S608
    "(flow_id, version_id, lead_id, trigger_event_id, trigger_node, status, created_at) "
    "VALUES (%(flow)s, %(version)s, %(lead)s, %(event)s, %(node)s, %(status)s, %(now)s) "
    f"RETURNING id) INSERT INTO {StepRun._meta.db_table} "
    "(enrollment_id, node_id, node_type, visit, status, attempts, output, error, "
    "started_at, finished_at) SELECT id, %(node)s, %(type)s, 0, %(step_status)s, 1, "
    "%(output)s, '', %(now)s, %(now)s FROM enrollment RETURNING enrollment_id, id"
)


# The enrollment, its trigger step and its first step in one round trip
# (PostgreSQL): with fifty flows an event enters more of them, and each of
# these was a statement of its own.
_OPENING_CTES = (
    f"enrollment AS (INSERT INTO {Enrollment._meta.db_table} "  # noqa: S608
    "(flow_id, version_id, lead_id, trigger_event_id, trigger_node, status, created_at) "
    "VALUES (%(flow)s, %(version)s, %(lead)s, %(event)s, %(node)s, %(status)s, %(now)s) "
    f"RETURNING id), trigger AS (INSERT INTO {StepRun._meta.db_table} "
    "(enrollment_id, node_id, node_type, visit, status, attempts, output, error, "
    "started_at, finished_at) SELECT id, %(node)s, %(type)s, 0, %(step_status)s, 1, "
    "%(output)s, '', %(now)s, %(now)s FROM enrollment RETURNING id, enrollment_id)"
)
# Read from the trigger's row, so that it is numbered first (runs are listed by id).
_FIRST_STEP_INSERT = (
    f"INSERT INTO {StepRun._meta.db_table} "  # noqa: S608
    "(enrollment_id, node_id, node_type, visit, status, attempts, output, error, "
    "started_at, finished_at) SELECT enrollment_id, %(first_node)s, %(first_type)s, "
    "%(first_visit)s, %(first_status)s, 1, %(first_output)s, '', %(first_now)s, NULL "
    "FROM trigger"
)
_ENROLLMENT_OPENED = (
    f"WITH {_OPENING_CTES} {_FIRST_STEP_INSERT} "  # noqa: S608
    "RETURNING enrollment_id, (SELECT id FROM trigger), id"
)


def _enrollment_values(
    enrollment: Enrollment, trigger: StepRun, now: dt.datetime
) -> dict[str, Any]:
    enrollment.created_at = trigger.started_at = now
    output = StepRun._meta.get_field("output").get_db_prep_save(trigger.output, connection)
    return {
        "flow": enrollment.flow_id,
        "version": enrollment.version_id,
        "lead": enrollment.lead_id,
        "event": enrollment.trigger_event_id,
        "node": enrollment.trigger_node,
        "status": enrollment.status,
        "now": now,
        "type": trigger.node_type,
        "step_status": trigger.status,
        "output": output,
    }


def _enrollment_written(enrollment: Enrollment, *steps: StepRun) -> None:
    """Mark rows of one statement written. Each step already refers to the
    enrollment it was made with: only the id is new (Django's descriptor would
    check the relation again, a tenth of an enrollment's time in Python)."""
    alias = connection.alias
    for step in steps:
        step.enrollment_id = enrollment.pk
    for obj in (enrollment, *steps):
        obj._state.adding = False
        obj._state.db = alias


def _enrollment_insert(enrollment: Enrollment, trigger: StepRun, now: dt.datetime) -> None:
    ((enrollment.pk, trigger.pk),) = prepared.fetch(
        _ENROLLMENT_INSERT, _enrollment_values(enrollment, trigger, now)
    )
    _enrollment_written(enrollment, trigger)


def _opening_params(enrollment: Enrollment, opening: Opening, step: StepRun) -> dict[str, Any]:
    step.started_at = timezone.now()
    output = StepRun._meta.get_field("output").get_db_prep_save(step.output, connection)
    return {
        **(opening.carried.params() if opening.carried is not None else {}),
        **_enrollment_values(enrollment, opening.trigger, opening.now),
        "first_node": step.node_id,
        "first_type": step.node_type,
        "first_visit": step.visit,
        "first_status": step.status,
        "first_output": output,
        "first_now": step.started_at,
    }


def _carried_ctes(opening: Opening) -> str:
    """The CTEs of the settle an opening carries, each followed by a comma."""
    if opening.carried is None:
        return ""
    return (_WRITTEN if opening.carried.step is not None else "") + _SETTLED


def _enrollment_opened(enrollment: Enrollment, opening: Opening, step: StepRun) -> None:
    """Insert the enrollment, its trigger step and ``step``, in one statement
    (which writes the settle it carries, too)."""
    statement = "WITH " + _carried_ctes(opening) + _ENROLLMENT_OPENED.removeprefix("WITH ")
    ((enrollment.pk, opening.trigger.pk, step.pk),) = prepared.fetch(
        statement, _opening_params(enrollment, opening, step)
    )
    _enrollment_written(enrollment, opening.trigger, step)


@functools.cache
def _ours(sql: str) -> str:
    """The engine's named parameters renamed ``flows_…``, apart from those of
    the statement they go into."""
    return re.sub(r"%\((\w+)\)s", r"%(flows_\1)s", sql)


def _opening_within(enrollment: Enrollment, opening: Opening, step: StepRun) -> prepared.Within:
    """The enrollment, its trigger step and ``step``'s row as the start of the
    statement that ``step`` writes (``prepared.Within``): for a first step that
    writes one keyed row (a score change), the enrollment costs no round trip
    of its own. The step's key is ``step:<id>``, as ``flows.nodes`` keys it."""

    def done(values: Sequence[Any]) -> str:
        enrollment.pk, opening.trigger.pk, step.pk = values
        _enrollment_written(enrollment, opening.trigger, step)
        return f"step:{step.pk}"

    return prepared.Within(
        ctes=_ours(
            _carried_ctes(opening)
            + _OPENING_CTES
            + f", opened AS ({_FIRST_STEP_INSERT} RETURNING id, enrollment_id)"
        ),
        params={
            f"flows_{name}": value
            for name, value in _opening_params(enrollment, opening, step).items()
        },
        rows="opened, trigger",
        key="'step:' || opened.id",
        returning="opened.enrollment_id, trigger.id, opened.id",
        done=done,
    )


def _advance(
    enrollment: Enrollment,
    lead: Lead,
    starts: list[tuple[str, str]],
    event: Event | None,
    *,
    fresh: bool = False,
    opening: Opening | None = None,
    settles: Settles | None = None,
) -> None:
    """Run steps from the given (node, output handle) pairs until every branch
    waits or ends, then settle the enrollment's status. ``fresh``: the
    enrollment was created in this run, so it has no other steps yet;
    ``opening``: nor is it written yet, which its first step's row does;
    ``settles``: where its settle is held (see ``Settles``)."""
    index = graph_index(enrollment.version.graph)
    nodes = index.nodes
    queue: deque[str] = deque()
    for node_id, handle in starts:
        queue.extend(index.targets(node_id, handle))
    visits: dict[str, int] = {}
    ran = 0
    ended = False
    pending = False
    failed = False
    # The last step run, completed, whose row still waits for its output: it
    # is written with the next step's insert or the enrollment's status.
    unwritten: StepRun | None = None
    while queue and not ended:
        ran += 1
        if ran > MAX_STEPS_PER_RUN:
            raise RuntimeError("Too many steps in one run.")
        node_id = queue.popleft()
        node = nodes[node_id]
        if node_id not in visits:
            visits[node_id] = (
                0
                if fresh
                else StepRun.objects.filter(enrollment=enrollment, node_id=node_id).count()
            )
        result, unwritten = _execute(
            enrollment, lead, node, event, visits[node_id], unwritten, opening
        )
        opening = None
        visits[node_id] += 1
        if result is None:
            failed = True
            continue
        if result.end:
            ended = True
            break
        if result.wait_until is not None or result.wait_for_delivery:
            pending = True
        else:
            for handle in result.follow:
                queue.extend(index.targets(node_id, handle))
    if opening is not None:
        # A trigger with nothing after it.
        if opening.carried is not None:
            _settle_write(opening.carried)
        _enrollment_insert(enrollment, opening.trigger, opening.now)
    _settle(
        enrollment,
        ended=ended,
        pending=pending if fresh and not failed else None,
        unwritten=unwritten,
        settles=settles if fresh and not failed else None,
    )


def _execute(
    enrollment: Enrollment,
    lead: Lead,
    node: dict[str, Any],
    event: Event | None,
    visit: int,
    unwritten: StepRun | None,
    opening: Opening | None = None,
) -> tuple[StepResult | None, StepRun | None]:
    """Run one step: its row, then its behaviour. ``unwritten``: the step run
    before, written with this one's insert; ``opening``: the enrollment, not
    written yet, which goes with it. Returns the result and, when the
    step completed, its run, whose row the caller writes later
    (``_step_written``)."""
    node_type = REGISTRY[node["type"]]
    now = timezone.now()
    step = StepRun(
        enrollment=enrollment,
        node_id=node["id"],
        node_type=node["type"],
        visit=visit,
        status=StepStatus.COMPLETED,
    )
    within: prepared.Within | None = None
    if opening is not None and node_type.opens and not node_type.isolated:
        # Written by the step's own first statement (or by _run_step).
        within = _opening_within(enrollment, opening, step)
    elif opening is not None:
        _enrollment_opened(enrollment, opening, step)
    elif unwritten is not None and prepared.enabled():
        _step_insert_after(step, unwritten)
    else:
        if unwritten is not None:
            _step_written(unwritten)
        _lean_insert(step)
    result = _run_step(
        step,
        enrollment,
        lead,
        node_type,
        node.get("config", {}),
        event,
        now,
        defer=True,
        within=within,
        opening=opening,
    )
    completed = result is not None and step.status == StepStatus.COMPLETED
    return result, step if completed else None


# Each step of a run is two writes: its row, inserted before it runs (its
# effects are keyed by the row's id), and its output once it ran. The output
# goes with the next write of the run instead, the next step's row or the
# enrollment's status (PostgreSQL): with fifty flows an event enters more of
# them, and these were a third of its statements.
def _step_values(step: StepRun) -> list[Any]:
    fields = [
        cast("Field[Any, Any]", StepRun._meta.get_field(name))
        for name in ("status", "output", "finished_at")
    ]
    values = (step.status, step.output, step.finished_at)
    return [f.get_db_prep_save(value, connection) for f, value in zip(fields, values, strict=True)]


_STEP_WRITTEN = (
    f"WITH written AS (UPDATE {StepRun._meta.db_table} "  # noqa: S608
    "SET status = %s, output = %s, finished_at = %s WHERE id = %s) "
)


def _step_written(step: StepRun) -> None:
    _lean_update(
        StepRun, step.pk, status=step.status, output=step.output, finished_at=step.finished_at
    )


def _step_insert_after(step: StepRun, unwritten: StepRun) -> None:
    """Insert ``step``'s row and write ``unwritten``'s output, in one statement."""
    _lean_insert(step, prefix=_STEP_WRITTEN, before=[*_step_values(unwritten), unwritten.pk])


def _run_step(
    step: StepRun,
    enrollment: Enrollment,
    lead: Lead,
    node_type: Any,
    config: dict[str, Any],
    event: Event | None,
    now: dt.datetime,
    *,
    defer: bool = False,
    within: prepared.Within | None = None,
    opening: Opening | None = None,
) -> StepResult | None:
    """Run a step whose row exists and record what it did; ``defer``: a step
    that completed is left for the caller to write. ``within``: the step's row
    does not exist yet, nor its enrollment's (``opening``): the step's first
    write makes them, or they are written here once it ran."""
    ctx = StepContext(
        enrollment=enrollment,
        step=step,
        lead=lead,
        config=config,
        trigger_event=event,
        now=now,
        within=within,
    )
    try:
        if node_type.isolated and node_type.writes:
            with transaction.atomic():
                result: StepResult = node_type.execute(ctx)
        else:
            result = node_type.execute(ctx)
    except Exception as exc:
        if not node_type.isolated and not isinstance(exc, StepError):
            raise
        if not node_type.writes and isinstance(exc, DatabaseError):
            # No savepoint to go back to: the event's transaction is retried.
            raise
        if within is not None and not within.written:
            assert opening is not None
            _enrollment_opened(enrollment, opening, step)
        logger.exception("step %s (%s) failed", step.pk, node_type.key)
        _step_failed(step, f"{type(exc).__name__}: {exc}", now)
        return None
    if within is not None and not within.written:
        assert opening is not None
        _enrollment_opened(enrollment, opening, step)
    step.output = result.output
    step.finished_at = now
    if node_type.key == "wait.until":
        event_scope_forget(f"listeners:{enrollment.lead_id}")
    if result.wait_until is not None:
        step.status = StepStatus.WAITING
        Wakeup.objects.create(step=step, due_at=result.wait_until)
    elif result.wait_for_delivery:
        step.status = StepStatus.WAITING
    else:
        step.status = StepStatus.COMPLETED
        step.output = {**result.output, "handles": list(result.follow)}
        if defer:
            return result
    _step_written(step)
    return result


def _step_failed(step: StepRun, error: str, now: dt.datetime) -> None:
    """Retry with backoff through a wake-up; after the last try the step fails
    and the enrollment stops there."""
    step.error = error[:4000]
    if step.attempts <= len(STEP_RETRY_DELAYS):
        step.status = StepStatus.RETRYING
        delay = STEP_RETRY_DELAYS[step.attempts - 1]
        Wakeup.objects.update_or_create(
            step=step, defaults={"due_at": now + dt.timedelta(seconds=delay), "claimed_at": None}
        )
    else:
        step.status = StepStatus.FAILED
        step.finished_at = now
        Enrollment.objects.filter(pk=step.enrollment_id).update(
            status=EnrollmentStatus.FAILED, finished_at=now
        )
    step.save(update_fields=["status", "error", "finished_at"])


def _settle(
    enrollment: Enrollment,
    *,
    ended: bool,
    pending: bool | None = None,
    unwritten: StepRun | None = None,
    settles: Settles | None = None,
) -> None:
    """Set the enrollment's status from its steps. ``pending``: whether steps
    wait, when the caller ran every step the enrollment has and none failed, so
    no query is needed to tell. ``unwritten``: a completed step run whose row
    is written with the status. ``settles``: the write is held there, for the
    next enrollment's first statement (PostgreSQL)."""
    now = timezone.now()
    if unwritten is not None and not (
        prepared.enabled() and pending is not None and (not ended or pending is False)
    ):
        # The status is read from the steps: theirs first.
        _step_written(unwritten)
        unwritten = None

    def waiting() -> QuerySet[StepRun]:
        # Built only when asked: on the hot path ``pending`` answers without it.
        return StepRun.objects.filter(
            enrollment=enrollment, status__in=[StepStatus.WAITING, StepStatus.RETRYING]
        )

    if pending is None and (
        enrollment.status == EnrollmentStatus.FAILED
        or Enrollment.objects.filter(pk=enrollment.pk, status=EnrollmentStatus.FAILED).exists()
    ):
        return
    if ended:
        if pending is not False:
            waiting().update(status=StepStatus.COMPLETED, finished_at=now)
            Wakeup.objects.filter(step__enrollment=enrollment, claimed_at__isnull=True).delete()
        status, finished = EnrollmentStatus.COMPLETED, now
    elif pending if pending is not None else waiting().exists():
        status, finished = EnrollmentStatus.WAITING, None
    else:
        status, finished = EnrollmentStatus.COMPLETED, now
    settle = Settle(enrollment=enrollment.pk, status=status, finished_at=finished, step=unwritten)
    if settles is not None and prepared.enabled():
        settles.hold(settle)
    else:
        _settle_write(settle)
    enrollment.status = status


def _settle_write(settle: Settle) -> None:
    if settle.step is not None:
        _lean_update(
            Enrollment,
            settle.enrollment,
            prefix=_STEP_WRITTEN,
            before=[*_step_values(settle.step), settle.step.pk],
            status=settle.status,
            finished_at=settle.finished_at,
        )
    else:
        _lean_update(
            Enrollment, settle.enrollment, status=settle.status, finished_at=settle.finished_at
        )


def step_resume(*, step: StepRun, handle: str) -> None:
    """A waiting step is done (its time came, its event arrived, its delivery
    went out): go on through ``handle``. The caller holds the lead's lock."""
    enrollment = Enrollment.objects.select_related("version", "lead", "trigger_event").get(
        pk=step.enrollment_id
    )
    if enrollment.status in (EnrollmentStatus.COMPLETED, EnrollmentStatus.FAILED):
        return
    now = timezone.now()
    updated = StepRun.objects.filter(pk=step.pk, status=StepStatus.WAITING).update(
        status=StepStatus.COMPLETED, finished_at=now, output={**step.output, "handles": [handle]}
    )
    if not updated:
        return
    Wakeup.objects.filter(step=step).delete()
    _advance(enrollment, enrollment.lead, [(step.node_id, handle)], enrollment.trigger_event)


def _step_retry(step: StepRun) -> None:
    enrollment = Enrollment.objects.select_related("version", "lead", "trigger_event").get(
        pk=step.enrollment_id
    )
    node = graph_index(enrollment.version.graph).nodes[step.node_id]
    StepRun.objects.filter(pk=step.pk).update(attempts=F("attempts") + 1)
    step.refresh_from_db()
    result = _run_step(
        step,
        enrollment,
        enrollment.lead,
        REGISTRY[node["type"]],
        node.get("config", {}),
        enrollment.trigger_event,
        timezone.now(),
    )
    if result is None:
        return
    if result.end:
        _settle(enrollment, ended=True)
        return
    starts = (
        []
        if result.wait_until or result.wait_for_delivery
        else [(step.node_id, h) for h in result.follow]
    )
    nodes_edges = starts
    _advance(enrollment, enrollment.lead, nodes_edges, enrollment.trigger_event)


# Whether a lead has waits listening for events (most have none): the lock
# probe of the flows reaction, read by the statement that locks the lead
# (leads.services.reactions), else a prepared probe, either sparing the full
# read's planning, most of its cost.
LISTENING = (
    f"EXISTS (SELECT FROM {StepRun._meta.db_table} s "
    f"JOIN {Enrollment._meta.db_table} e ON e.id = s.enrollment_id "
    f"JOIN {Flow._meta.db_table} f ON f.id = e.flow_id "
    "WHERE e.lead_id = {lead} AND e.status IN ('active', 'waiting') AND f.status = 'active' "
    "AND s.node_type = 'wait.until' AND s.status = 'waiting')"
)
_LISTENING_PROBE = "SELECT " + LISTENING.replace("{lead}", "%s")


def listeners_probed(lead_id: int, listening: bool) -> None:
    """The lead's lock answered LISTENING: with no listening waits, its events
    need no read for them."""
    if not listening:
        event_scope_put(f"listeners:{lead_id}", [])


def _waits_for_events() -> bool:
    """Whether any version of an active flow has a wait-until step: read once
    per batch; without one, no lead's waits are read at all."""
    return (
        FlowVersion.objects.filter(flow__status=FlowStatus.ACTIVE)
        .annotate(text=Cast("graph", TextField()))
        .filter(text__contains='"wait.until"')
        .exists()
    )


def _listeners(lead: Lead) -> list[StepRun]:
    if not batch_cached("flows_wait_for_events", _waits_for_events):
        return []
    if prepared.enabled() and not prepared.fetch(_LISTENING_PROBE, [lead.pk])[0][0]:
        return []
    return list(
        StepRun.objects.filter(
            enrollment__lead=lead,
            enrollment__status__in=[EnrollmentStatus.ACTIVE, EnrollmentStatus.WAITING],
            enrollment__flow__status=FlowStatus.ACTIVE,
            node_type="wait.until",
            status=StepStatus.WAITING,
        ).select_related("enrollment__version")
    )


def _resume_listeners(*, event: Event, lead: Lead) -> None:
    """Resume this lead's wait-until steps that the event satisfies. The list is
    read once for an event and the events it derives (the lead is locked, so
    only this transaction adds to it, and it forgets the list when it does)."""
    waiting = event_scoped(f"listeners:{lead.pk}", lambda: _listeners(lead))
    for step in waiting:
        config = graph_index(step.enrollment.version.graph).nodes[step.node_id].get("config", {})
        started = step.started_at
        if event.occurred_at >= started and wait_until_matches(config, event):
            # Resuming runs steps that may add listeners; a resumed one is
            # skipped later by its status check.
            event_scope_forget(f"listeners:{lead.pk}")
            step_resume(step=step, handle="met")


# --- wake-ups ------------------------------------------------------------------------


# Wake-ups go to the workers in messages of this many ids: few messages, and
# still spread over the workers.
FIRE_CHUNK = 50


def wakeups_due(now: dt.datetime) -> QuerySet[Wakeup]:
    """Due, unclaimed wake-ups of active flows, oldest first: one walk of the
    due-time index (a paused flow's wake-ups are marked held)."""
    return Wakeup.objects.filter(claimed_at__isnull=True, held=False, due_at__lte=now).order_by(
        "due_at"
    )


def wakeups_claim(*, limit: int = 500) -> list[int]:
    """Claim due wake-ups of active flows and dispatch them after commit. SKIP
    LOCKED on the wake-up rows only: any number of beats or workers may claim
    side by side, and nothing else (steps, enrollments, flows) is locked."""
    now = timezone.now()
    with transaction.atomic():
        due = list(
            wakeups_due(now)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("id", flat=True)[:limit]
        )
        if due:
            Wakeup.objects.filter(pk__in=due).update(claimed_at=now)
            # With the broker out of reach the claims go stale and are claimed again.
            transaction.on_commit(lambda: wakeups_dispatch(due))
    return due


def wakeups_dispatch(wakeup_ids: list[int]) -> None:
    from flows.tasks import wakeups_fire_task

    for start in range(0, len(wakeup_ids), FIRE_CHUNK):
        if not task_send(wakeups_fire_task, wakeup_ids[start : start + FIRE_CHUNK]):
            return


# How long beat's claiming task goes on claiming, of its 2 s interval.
CLAIM_BUDGET_SECONDS = 1.5


def wakeups_claim_all(*, budget_seconds: float = CLAIM_BUDGET_SECONDS, limit: int = 500) -> int:
    """What beat runs: claim batch after batch while there are due wake-ups, for
    at most about ``budget_seconds`` (beat comes again soon)."""
    began = time.monotonic()
    claimed = 0
    while True:
        batch = wakeups_claim(limit=limit)
        claimed += len(batch)
        if len(batch) < limit or time.monotonic() - began >= budget_seconds:
            return claimed


def wakeups_fire(*, wakeup_ids: Sequence[int]) -> None:
    """Fire claimed wake-ups one by one; one that fails is logged and left
    claimed, to be claimed again when its claim goes stale."""
    for wakeup_id in wakeup_ids:
        try:
            wakeup_fire(wakeup_id=wakeup_id)
        except Exception as exc:
            if outage(exc):
                raise  # the task is retried once the database is back
            logger.exception("wake-up %s failed", wakeup_id)


def wakeup_fire(*, wakeup_id: int) -> None:
    """The wait is over: lock the lead, then resume (or retry) the step."""
    wakeup = Wakeup.objects.select_related("step__enrollment").filter(pk=wakeup_id).first()
    if wakeup is None:
        return
    with transaction.atomic():
        lead_id = wakeup.step.enrollment.lead_id
        Lead.objects.select_for_update().filter(pk=lead_id).first()
        flow_id = wakeup.step.enrollment.flow_id
        if not Flow.objects.filter(pk=flow_id, status=FlowStatus.ACTIVE).exists():
            # Paused since it was claimed: it waits for the flow to resume.
            Wakeup.objects.filter(pk=wakeup_id).update(claimed_at=None, held=True)
            return
        step = StepRun.objects.get(pk=wakeup.step_id)
        if step.status == StepStatus.RETRYING:
            Wakeup.objects.filter(pk=wakeup_id).delete()
            _step_retry(step)
        elif step.status == StepStatus.WAITING:
            handle = "timeout" if step.node_type == "wait.until" else "next"
            step_resume(step=step, handle=handle)
        else:
            Wakeup.objects.filter(pk=wakeup_id).delete()


def wakeups_release_stale(*, older_than: dt.timedelta = dt.timedelta(minutes=5)) -> int:
    """Claimed but never fired (a lost message): claim them again."""
    cutoff = timezone.now() - older_than
    return Wakeup.objects.filter(claimed_at__lt=cutoff).update(claimed_at=None)


def enrollments_trigger_release(ids_sql: str, params: list[Any]) -> None:
    """Forget the trigger event of enrollments whose event is about to be dropped
    by the events' retention (``ids_sql`` selects their ids): what a database
    foreign key's SET NULL would have done, had the partitioned table one."""
    # ids_sql is built by leads.services.partitions from table names, values bound.
    ids = RawSQL(ids_sql, params)  # noqa: S611
    Enrollment.objects.filter(trigger_event_id__in=ids).update(trigger_event=None)

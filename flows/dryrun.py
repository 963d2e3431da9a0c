"""Test a flow on a lead ("dry run"): the path an event would take the lead along,
and what each step would do, without doing any of it.

The walk follows the engine (``flows.services``): the trigger is matched as events
are routed (the subscription's event type and key, then ``matches``), entry obeys
the engine's own re-entry rule, and output handles are followed as ``_advance``
follows them. Nodes are not executed (``execute`` writes); each type's effect is
described from its config and a simulated copy of the lead instead.

What the simulation carries from step to step, and so what later conditions see:

- score, category scores and grade (with the MQL stage move), stage, owner, tags,
  static segment membership, and the fields a flow can set. A condition rule on
  one of these, once an earlier step changed it, is decided on the simulated
  value, with the compiler's semantics; every other rule (activity, dates,
  anything no step changed) goes to the segment compiler, on the stored lead. The
  one exception is a custom date field set along the path: rules on it read the
  stored value, and the condition says so.
- the clock: a wait is taken as if its time passed with nothing else happening,
  so later conditions, waits and due dates count from its end; a wait-until is
  assumed to time out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import BooleanField, Case, Q, Value, When
from django.utils import timezone

from flows.graph import graph_validate
from flows.models import Enrollment, Flow, Reentry
from flows.nodes import REGISTRY, NodeType
from flows.nodes.actions import SETTABLE_FIELDS, STAGE_ORDER, sales_round_robin, slack_target
from flows.nodes.base import Names, summarise, value_text
from flows.nodes.logic import amount_text, wait_due
from flows.nodes.summaries import Refs, config_refs, names_load, user_display
from flows.services import _may_enter
from leads.conditions.compiler import FALSE, TRUE, Compiler
from leads.conditions.schema import FIELD_TYPES
from leads.models import Event, FieldDefinition, FieldType, Lead, SegmentMembership, Stage
from leads.services.fields import custom_definitions, custom_value_clean
from scoring.models import LeadScore, ScoringSettings
from scoring.services import grade_for

# Outcomes of a step.
MATCHED = "matched"
WOULD_APPLY = "would_apply"
NO_CHANGE = "no_change"
YES = "yes"
NO = "no"
WAITED = "waited"
TIMEOUT = "timeout"
ENDED = "ended"

# Without an event given, the lead's latest events of the kinds the triggers listen
# to are tried, newest first, up to this many.
EVENT_SCAN_LIMIT = 500
# Standard fields a flow can set, evaluated on their simulated value once set.
SIMULATED_FIELDS = tuple(SETTABLE_FIELDS)
WHEN = "%Y-%m-%d %H:%M UTC"
OP_WORDS = {
    "is": "is",
    "is_not": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "in": "is one of",
    "is_set": "is set",
    "is_not_set": "is not set",
    "eq": "=",
    "ne": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "between": "is between",
    "before": "is before",
    "after": "is after",
    "on": "is on",
    "in_last_days": "is in the last",
    "more_than_days_ago": "is more than",
    "in_next_days": "is in the next",
}


def flow_dry_run(
    *,
    flow: Flow,
    graph: dict[str, Any],
    lead: Lead,
    event: dict[str, Any] | Event | None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Walk ``graph`` (a draft or a published graph of ``flow``) for ``lead`` as
    ``event`` would start it, and describe every step's effect without applying
    any. ``event``: a made-up ``{type, name, properties}``, a real event, or None
    for the lead's latest event that matches a trigger. Raises GraphError, with
    the problems by node, for a graph that could not be published."""
    graph_validate(graph)
    with transaction.atomic():
        result = _DryRun(flow, graph, lead, now or timezone.now()).run(event)
        # Nothing above writes; should that ever change, nothing is kept.
        transaction.set_rollback(True)
    return result


@dataclass
class LeadState:
    """The lead as the steps so far would leave it. ``changed``: the condition
    subjects (``score``, ``score.fit``, ``tags``, ``segment:12``, ``job_title``,
    ``custom.plan`` …) a step changed."""

    score: int
    grade: str
    stage: str
    owner_id: int | None
    categories: dict[str, int]
    tags: set[str]
    segments: set[int]
    fields: dict[str, Any]
    custom: dict[str, Any]
    now: dt.datetime
    changed: set[str] = field(default_factory=set)


@dataclass
class Step:
    node: str
    type: str
    outcome: str
    effect: str
    handle: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "type": self.type,
            "outcome": self.outcome,
            "effect": self.effect,
            "handle": self.handle,
        }


class _SimulatingCompiler(Compiler):
    """The segment compiler, with the rules whose truth the simulation decided
    replaced by that truth."""

    def __init__(self, now: dt.datetime, decided: dict[int, bool]):
        super().__init__(now, per_lead=True)
        self.decided = decided

    def node(self, node: dict[str, Any]) -> Q:
        if id(node) in self.decided:
            return TRUE if self.decided[id(node)] else FALSE
        return super().node(node)


def _lower_first(label: str) -> str:
    """ "Job title" as "job title"; "ARR" stays."""
    return label[:1].lower() + label[1:] if label[1:2].islower() else label


def _quoted(value: Any) -> str:
    if value is None or value == "":
        return "empty"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime(WHEN)
    return value_text(value)


def _leaves(tree: dict[str, Any]) -> list[dict[str, Any]]:
    if "all" in tree or "any" in tree:
        return [leaf for child in tree.get("all", tree.get("any", [])) for leaf in _leaves(child)]
    return [tree]


class _DryRun:
    # Set when the walk starts (after the trigger matched).
    state: LeadState
    settings: ScoringSettings

    def __init__(self, flow: Flow, graph: dict[str, Any], lead: Lead, now: dt.datetime):
        self.flow = flow
        self.lead = lead
        self.now = now
        self.nodes = {node["id"]: node for node in graph["nodes"]}
        self.edges: dict[tuple[str, str], tuple[str, str]] = {}
        for edge in graph.get("edges", []):
            handle = edge.get("sourceHandle") or "next"
            # Publishing refuses an output connected twice: one edge per handle.
            self.edges[(edge["source"], handle)] = (str(edge.get("id", "")), edge["target"])
        self.triggers = [
            node for node in graph["nodes"] if REGISTRY[node["type"]].kind == "trigger"
        ]
        self.names = self._names(graph)
        self.users: dict[int, User | None] = {}
        self.notes: list[str] = []

    # --- names -------------------------------------------------------------------

    def _names(self, graph: dict[str, Any]) -> Names:
        refs = Refs()
        for node in graph["nodes"]:
            config_refs(REGISTRY[node["type"]], node.get("config", {}), refs)
            if node["type"] == "condition":
                for rule in _leaves(node["config"]["conditions"]):
                    if "segment" in rule:
                        refs.segments.add(rule["segment"])
                    name = rule.get("field", "")
                    if name == "owner":
                        values = rule.get("value")
                        ids = values if isinstance(values, list) else [values]
                        refs.users.update(v for v in ids if isinstance(v, int))
                    elif name.startswith("score."):
                        refs.categories.add(name[6:])
                    elif name.startswith("custom."):
                        refs.custom_fields.add(name[7:])
        return names_load(refs)

    def _summary(self, node: dict[str, Any]) -> str:
        return summarise(REGISTRY[node["type"]], node.get("config", {}), self.names)

    @cached_property
    def definitions(self) -> dict[str, FieldDefinition]:
        return custom_definitions()

    def _user(self, user_id: int | None) -> User | None:
        if user_id is None:
            return None
        if user_id not in self.users:
            self.users[user_id] = User.objects.filter(pk=user_id).first()
        return self.users[user_id]

    def _user_name(self, user_id: int | None) -> str:
        user = self._user(user_id)
        if user is None:
            return "nobody" if user_id is None else f"user #{user_id}"
        return user_display(user.first_name, user.last_name, user.username)

    def _field_label(self, name: str) -> str:
        if name.startswith("score."):
            return f"{self.names.categories.get(name[6:], name[6:])} score"
        if name in ("score", "grade", "tags", "owner", "stage"):
            return name
        label = self.names.field_label(name)
        return _lower_first(label.replace("_", " ") if label == name else label)

    # --- the run -------------------------------------------------------------------

    def run(self, event: dict[str, Any] | Event | None) -> dict[str, Any]:
        trigger, matched_event, reason = self._match(event)
        entry = self._entry(trigger)
        result: dict[str, Any] = {
            "trigger": {"matched": False, "reason": reason, "event": _event_dict(matched_event)},
            "entry": entry,
            "steps": [],
            "path": [],
            "edges": [],
            "notes": self.notes,
        }
        if trigger is None or matched_event is None:
            return result
        result["trigger"] = {
            "matched": True,
            "node": trigger["id"],
            "type": trigger["type"],
            "summary": self._summary(trigger),
            "event": _event_dict(matched_event),
        }
        if not entry["allowed"]:
            self.notes.append(
                "The re-entry rule would keep this lead out now; the path shows what "
                "would happen if it came in."
            )
        steps, path, edges = self._walk(trigger, matched_event)
        result.update(steps=[s.as_dict() for s in steps], path=path, edges=edges)
        return result

    # --- the trigger -------------------------------------------------------------------

    def _match(
        self, event: dict[str, Any] | Event | None
    ) -> tuple[dict[str, Any] | None, Event | None, str]:
        """The trigger node the event starts, the event, and why not if none."""
        starts = "; ".join(self._summary(node) for node in self.triggers)
        if event is not None:
            if isinstance(event, dict):
                event = Event(
                    lead=self.lead,
                    type=str(event["type"]),
                    name=str(event.get("name") or ""),
                    properties=dict(event.get("properties") or {}),
                    occurred_at=self.now,
                    received_at=self.now,
                    source="dry-run",
                )
            node = self._trigger_for(event)
            if node is None:
                return (
                    None,
                    event,
                    f"No trigger matches {_event_text(event)}. The flow starts on: {starts}.",
                )
            return node, event, ""
        types = {self._subscription(node)[0] for node in self.triggers}
        recent = list(
            Event.objects.filter(lead=self.lead, type__in=types).order_by("-occurred_at", "-id")[
                :EVENT_SCAN_LIMIT
            ]
        )
        for candidate in recent:
            node = self._trigger_for(candidate)
            if node is not None:
                return node, candidate, ""
        kinds = f"of the kinds the triggers listen to ({', '.join(sorted(types))})"
        if not recent:
            reason = f"The lead has no events {kinds}."
        elif len(recent) == 1:
            reason = f"The lead's only event {kinds} matches no trigger."
        else:
            latest = "latest " if len(recent) == EVENT_SCAN_LIMIT else ""
            reason = f"None of the lead's {latest}{len(recent)} events {kinds} matches a trigger."
        return None, None, f"{reason} The flow starts on: {starts}."

    def _subscription(self, node: dict[str, Any]) -> tuple[str, str]:
        subscribe = REGISTRY[node["type"]].subscribe
        assert subscribe is not None
        return subscribe(node.get("config", {}))

    def _trigger_for(self, event: Event) -> dict[str, Any] | None:
        """The first trigger (in graph order) the engine would route the event to
        and that matches it: one enrollment per flow and event."""
        keys = {"", event.name}
        if "segment_id" in event.properties:
            keys.add(str(event.properties["segment_id"]))
        for node in self.triggers:
            event_type, key = self._subscription(node)
            matches = REGISTRY[node["type"]].matches
            assert matches is not None
            if event.type == event_type and key in keys and matches(event, node.get("config", {})):
                return node
        return None

    def _entry(self, trigger: dict[str, Any] | None) -> dict[str, Any]:
        """Whether the re-entry rule lets the lead in (the engine's own test), and
        why. Without a trigger, the flow's rule alone."""
        node = trigger or {"id": "", "config": {}}
        allowed = _may_enter(self.flow, self.lead, node, self.now)
        earlier = Enrollment.objects.filter(flow=self.flow, lead=self.lead)
        last = earlier.order_by("-created_at", "-id").values_list("created_at", flat=True).first()
        days = self.flow.reentry_days or 1
        if (
            node.get("config", {}).get("once_per_lead")
            and earlier.filter(trigger_node=node["id"]).exists()
        ):
            reason = "Already came in through this trigger, which lets each lead through once."
        elif self.flow.reentry == Reentry.ONCE:
            reason = (
                f"Already enrolled once (on {last:{WHEN}}); this flow lets a lead in once."
                if last
                else "Not enrolled before; this flow lets a lead in once."
            )
        elif self.flow.reentry == Reentry.DAYS:
            rule = f"this flow lets a lead in at most once per {amount_text(days, 'days')}"
            if last is None:
                reason = f"Not enrolled before; {rule}."
            elif allowed:
                reason = f"Last enrolled on {last:{WHEN}}; {rule}."
            else:
                again = last + dt.timedelta(days=days)
                reason = f"Enrolled on {last:{WHEN}}; {rule}, so again from {again:{WHEN}}."
        else:
            reason = "This flow lets a lead in every time."
        return {"allowed": allowed, "reason": reason}

    # --- the walk ------------------------------------------------------------------------

    def _state(self) -> LeadState:
        lead = self.lead
        return LeadState(
            score=lead.score,
            grade=lead.grade,
            stage=lead.stage,
            owner_id=lead.owner_id,
            categories=dict(
                LeadScore.objects.filter(lead=lead).values_list("category__key", "score")
            ),
            tags=set(lead.tags.values_list("name", flat=True)),
            segments=set(
                SegmentMembership.objects.filter(lead=lead, left_at__isnull=True).values_list(
                    "segment_id", flat=True
                )
            ),
            fields={name: getattr(lead, name) for name in SIMULATED_FIELDS},
            custom=dict(lead.custom_fields),
            now=self.now,
        )

    def _walk(
        self, trigger: dict[str, Any], event: Event
    ) -> tuple[list[Step], list[str], list[str]]:
        self.state = self._state()
        self.settings = ScoringSettings.objects.order_by("id").first() or ScoringSettings()
        steps = [
            Step(
                trigger["id"],
                trigger["type"],
                MATCHED,
                f"starts on {self._summary(trigger)}, by {_event_text(event)}",
                "next",
            )
        ]
        path, taken = [trigger["id"]], []
        current, handle = trigger["id"], "next"
        # The graph has no loops (validated), so this ends; the bound is a backstop.
        for _ in range(len(self.nodes)):
            if (current, handle) not in self.edges:
                break
            edge_id, target = self.edges[(current, handle)]
            taken.append(edge_id)
            path.append(target)
            step = self._step(self.nodes[target])
            steps.append(step)
            if step.handle is None:
                break
            current, handle = target, step.handle
        if any(s.outcome in (WAITED, TIMEOUT) for s in steps):
            self.notes.append(
                "Waits are taken as if their time passed with nothing else happening: "
                "later steps count from their end, and a wait-until times out."
            )
        return steps, path, taken

    def _step(self, node: dict[str, Any]) -> Step:
        describe = STEPS.get(node["type"])
        config = node.get("config", {})
        if describe is None:
            node_type: NodeType = REGISTRY[node["type"]]
            handle = "next" if "next" in node_type.outputs else None
            outcome, effect = WOULD_APPLY, _lower_first(self._summary(node))
        else:
            outcome, effect, handle = describe(self, config, node)
        return Step(node["id"], node["type"], outcome, effect, handle)

    # --- actions ---------------------------------------------------------------------------

    def _score(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        state, settings = self.state, self.settings
        points, key = config["points"], config["category"]
        before = state.score
        state.score += points
        state.categories[key] = state.categories.get(key, 0) + points
        state.changed.update({"score", f"score.{key}"})
        changes = [f"score {before} → {state.score}"]
        grade = grade_for(state.score, settings)
        if grade != state.grade:
            changes.append(f"grade {state.grade} → {grade}")
            state.grade = grade
            state.changed.add("grade")
        crossed = before < settings.mql_threshold <= state.score
        if crossed and settings.mql_moves_stage and state.stage in (Stage.SUBSCRIBER, Stage.LEAD):
            changes.append(f"stage {Stage(state.stage).label} → {Stage.MQL.label}")
            state.stage = Stage.MQL
            state.changed.add("stage")
        return WOULD_APPLY, f"{self._summary(node)} ({', '.join(changes)})", "next"

    def _notify(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        state = self.state
        if state.owner_id is not None:
            owner = self._user(state.owner_id)
            rep = owner if owner is not None and owner.is_active else None
            who = (
                f"{self._user_name(rep.pk)} (the owner)"
                if rep is not None
                else f"nobody (the owner, {self._user_name(state.owner_id)}, is inactive)"
            )
        else:
            rep = sales_round_robin()
            if rep is not None:
                self.users[rep.pk] = rep
                state.owner_id = rep.pk
                state.changed.add("owner")
                who = (
                    f"the next sales rep in turn: {self._user_name(rep.pk)}, who becomes the owner"
                )
            else:
                who = "nobody (no lead owner and no active sales rep)"
        fields = state.fields
        name = (
            f"{fields['first_name']} {fields['last_name']}".strip()
            or self.lead.email
            or f"lead #{self.lead.pk}"
        )
        effect = f"task '{config['title'].replace('{lead}', name)}' for {who}"
        if config.get("due_in"):
            amount, unit = config["due_in"]["amount"], config["due_in"]["unit"]
            due = state.now + dt.timedelta(seconds=amount * (3600 if unit == "hours" else 86400))
            effect += f", due in {amount_text(amount, unit)} ({due:{WHEN}})"
        if config.get("priority", "normal") != "normal":
            effect += f", {config['priority']} priority"
        if rep is not None:
            effect += "; in-app notification"
            if config.get("email", True) and rep.email:
                effect += f" and email to {rep.email}"
        slack = slack_target(config)
        if slack:
            effect += f"; Slack message to {urlsplit(slack).hostname}"
        elif config.get("slack"):
            effect += "; no Slack message (no Slack URL in Settings → Integrations)"
        return WOULD_APPLY, effect, "next"

    def _assign(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        state = self.state
        if config.get("user"):
            user = self._user(config["user"])
            rep = user if user is not None and user.is_active else None
            missing = f"user #{config['user']} is not an active user"
        else:
            rep = sales_round_robin()
            missing = "no active sales rep"
        current = self._user_name(state.owner_id)
        if rep is None:
            return NO_CHANGE, f"{missing}; the owner stays {current}", "next"
        self.users[rep.pk] = rep
        if rep.pk == state.owner_id:
            return NO_CHANGE, f"the owner is already {current}", "next"
        state.owner_id = rep.pk
        state.changed.add("owner")
        turn = "" if config.get("user") else " (the next sales rep in turn)"
        return WOULD_APPLY, f"owner: {current} → {self._user_name(rep.pk)}{turn}", "next"

    def _set_field(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        state, name, value = self.state, config["field"], config["value"]
        label = self._field_label(name)
        if name.startswith("custom."):
            key = name[7:]
            new = custom_value_clean(self.definitions[key], value, lenient=True)
            old = state.custom.get(key)
            if new is None:
                state.custom.pop(key, None)
            else:
                state.custom[key] = new
        else:
            old, new = state.fields.get(name, getattr(self.lead, name)), value
            state.fields[name] = new
        if old == new:
            return NO_CHANGE, f"{label} is already {_quoted(new)}", "next"
        state.changed.add(name)
        return WOULD_APPLY, f"{label}: {_quoted(old)} → {_quoted(new)}", "next"

    def _tag(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        state, tag = self.state, config["tag"].strip()
        if node["type"] == "tag.add":
            if tag in state.tags:
                return NO_CHANGE, f"already has tag {tag}", "next"
            state.tags.add(tag)
            effect = f"add tag {tag}"
        else:
            if tag not in state.tags:
                return NO_CHANGE, f"has no tag {tag} to remove", "next"
            state.tags.discard(tag)
            effect = f"remove tag {tag}"
        state.changed.add("tags")
        return WOULD_APPLY, effect, "next"

    def _stage(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        # The same rule as the node's execute (flows.nodes.actions._change_stage).
        state, stage = self.state, config["stage"]
        current, forward_only = state.stage, config.get("forward_only", True)
        label, current_label = Stage(stage).label, Stage(current).label
        if current == stage:
            return NO_CHANGE, f"stage is already {label}", "next"
        ordered = current in STAGE_ORDER and stage in STAGE_ORDER
        if forward_only and ordered and STAGE_ORDER.index(stage) <= STAGE_ORDER.index(current):
            return (
                NO_CHANGE,
                f"stage stays {current_label}: forward only, and {label} is behind it",
                "next",
            )
        if forward_only and current == Stage.DISQUALIFIED:
            return NO_CHANGE, f"stage stays {current_label}: forward only", "next"
        state.stage = stage
        state.changed.add("stage")
        return WOULD_APPLY, f"stage {current_label} → {label}", "next"

    def _disqualify(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        state, reason = self.state, config["reason"]
        if state.stage == Stage.DISQUALIFIED:
            return NO_CHANGE, f"already disqualified (reason: {reason})", "next"
        before = Stage(state.stage).label
        state.stage = Stage.DISQUALIFIED
        state.changed.add("stage")
        return WOULD_APPLY, f"stage {before} → {Stage.DISQUALIFIED.label} ({reason})", "next"

    def _segment(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        state, segment = self.state, config["segment"]
        name = self.names.segments.get(segment, f"#{segment}")
        if node["type"] == "segment.add":
            if segment in state.segments:
                return NO_CHANGE, f"already in static segment {name}", "next"
            state.segments.add(segment)
            effect = f"add to static segment {name}"
        else:
            if segment not in state.segments:
                return NO_CHANGE, f"not in static segment {name}; nothing to remove", "next"
            state.segments.discard(segment)
            effect = f"remove from static segment {name}"
        state.changed.add(f"segment:{segment}")
        return WOULD_APPLY, effect, "next"

    def _webhook(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        # The host only, as on the canvas: the rest of the URL often carries a token.
        host = urlsplit(config["url"]).hostname or config["url"]
        return WOULD_APPLY, f"POST to {host} (not sent)", "next"

    def _end(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, None]:
        return ENDED, "end of the flow", None

    # --- logic ------------------------------------------------------------------------------

    def _wait(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        due = wait_due(config, self.state.now)
        self.state.now = due
        return WAITED, f"{_lower_first(self._summary(node))} (until {due:{WHEN}})", "next"

    def _wait_until(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        awaited_type = REGISTRY[config["event"]["type"]]
        awaited = summarise(awaited_type, config["event"].get("config", {}), self.names)
        days = config["within_days"]
        due = self.state.now + dt.timedelta(days=days)
        self.state.now = due
        effect = (
            f"waits up to {amount_text(days, 'days')} for {awaited}; assumed not to happen, "
            f"so it times out ({due:{WHEN}})"
        )
        return TIMEOUT, effect, "timeout"

    def _condition(self, config: dict[str, Any], node: dict[str, Any]) -> tuple[str, str, str]:
        """Branch as the node would: rules on what the path changed are decided on
        the simulated lead, the rest by the segment compiler on the stored lead, in
        one query that also tells each rule's truth for the explanation."""
        tree = config["conditions"]
        leaves = _leaves(tree)
        decided = {id(rule): self._simulated(rule) for rule in leaves if self._simulates(rule)}
        compiler = _SimulatingCompiler(self.state.now, decided)
        columns: dict[str, Any] = {"met": _truth_column(compiler.node(tree))}
        queried = [rule for rule in leaves if id(rule) not in decided]
        for index, rule in enumerate(queried):
            columns[f"rule{index}"] = _truth_column(compiler.node(rule))
        row: dict[str, Any] = dict(Lead.objects.filter(pk=self.lead.pk).values(**columns).get())
        truths = dict(decided)
        truths.update({id(rule): bool(row[f"rule{index}"]) for index, rule in enumerate(queried)})
        met = bool(row["met"])
        return (YES if met else NO), self._why(tree, truths, met), "yes" if met else "no"

    def _simulates(self, rule: dict[str, Any]) -> bool:
        subject = _subject(rule)
        if subject is None or subject not in self.state.changed:
            return False
        if subject.startswith("custom."):
            # Custom dates compare as days against relative ranges: left to the compiler.
            return self.definitions[subject[7:]].type != FieldType.DATE
        return True

    def _simulated(self, rule: dict[str, Any]) -> bool:
        """The rule on the simulated lead, with the compiler's semantics."""
        state = self.state
        if "segment" in rule:
            member = rule["segment"] in state.segments
            return member if rule["op"] == "in" else not member
        name, op, value = rule["field"], rule["op"], rule.get("value")
        if name == "tags":
            return _tags_truth(state.tags, op, value)
        if name == "owner":
            return _choice_truth(state.owner_id, op, value)
        if name in ("stage", "grade"):
            return _choice_truth(getattr(state, name), op, value)
        if name == "score":
            return _number_truth(state.score, op, value)
        if name.startswith("score."):
            # A lead with no points in a category has 0 there.
            return _number_truth(state.categories.get(name[6:], 0), op, value)
        if name.startswith("custom."):
            current = state.custom.get(name[7:])
            # A custom value that is "" counts as missing, whatever the type.
            current = None if current == "" else current
            kind = self.definitions[name[7:]].type
            if kind == FieldType.NUMBER:
                return _number_truth(current, op, value)
            if kind == FieldType.BOOLEAN:
                return isinstance(current, bool) and current == value
            if kind == FieldType.CHOICE:
                return _choice_truth(current, op, value)
            return _text_truth(current, op, value)
        if FIELD_TYPES[name] == "number":
            return _number_truth(state.fields[name], op, value)
        return _text_truth(state.fields[name], op, value)

    def _why(self, tree: dict[str, Any], truths: dict[int, bool], met: bool) -> str:
        group = "all" if "all" in tree else "any"
        children = tree[group]
        if met:
            shown = children if group == "all" else [c for c in children if _holds(c, truths)]
            return "yes: " + ("; ".join(self._rule_text(c) for c in shown) or "no conditions")
        if group == "all":
            return "no: " + "; ".join(self._rule_text(c) for c in children if not _holds(c, truths))
        return "no: none of " + ("; ".join(self._rule_text(c) for c in children) or "no rules")

    def _rule_text(self, rule: dict[str, Any]) -> str:
        """A rule in words, with the value the lead has for a field rule."""
        if "all" in rule or "any" in rule:
            group = "all" if "all" in rule else "any"
            return f"{group} of ({'; '.join(self._rule_text(c) for c in rule[group])})"
        if "segment" in rule:
            name = self.names.segments.get(rule["segment"], f"#{rule['segment']}")
            return f"{'in' if rule['op'] == 'in' else 'not in'} segment {name}"
        if "activity" in rule:
            return _activity_text(rule)
        name, op, value = rule["field"], rule["op"], rule.get("value")
        if name == "tags":
            words = {
                "has": "has tag",
                "has_not": "does not have tag",
                "has_any": "has any of the tags",
                "has_all": "has all the tags",
            }[op]
            text = f"{words} {', '.join(value) if isinstance(value, list) else value}"
            shown = ", ".join(sorted(self.state.tags)) or "none"
            return f"{text} (tags: {shown}{self._after(name)})"
        text = f"{self._field_label(name)} {OP_WORDS[op]}"
        if op not in ("is_set", "is_not_set"):
            text += f" {self._value_text(name, op, value)}"
        if name.startswith("custom."):
            if name in self.state.changed and not self._simulates(rule):
                stored = _quoted(self.lead.custom_fields.get(name[7:]))
                return f"{text} ({stored} as stored; the change above is not counted)"
            return f"{text} ({_quoted(self.state.custom.get(name[7:]))}{self._after(name)})"
        return f"{text} ({self._current(name)}{self._after(name)})"

    def _after(self, subject: str) -> str:
        return " after the steps above" if subject in self.state.changed else ""

    def _current(self, name: str) -> str:
        state = self.state
        if name == "owner":
            return self._user_name(state.owner_id)
        if name == "score":
            return str(state.score)
        if name.startswith("score."):
            return str(state.categories.get(name[6:], 0))
        if name == "stage":
            return str(Stage(state.stage).label)
        if name == "grade":
            return state.grade
        if name in state.fields:
            return _quoted(state.fields[name])
        return _quoted(getattr(self.lead, name, None))

    def _value_text(self, name: str, op: str, value: Any) -> str:
        def one(item: Any) -> str:
            if name == "owner":
                return self.names.users.get(item, f"user #{item}")
            if name == "stage" and item in Stage.values:
                return str(Stage(item).label)
            return value_text(item)

        if op == "between":
            return f"{one(value[0])} and {one(value[1])}"
        if op == "in":
            return ", ".join(one(item) for item in value)
        if op == "more_than_days_ago":
            return f"{amount_text(value, 'days')} ago"
        if op in ("in_last_days", "in_next_days"):
            return amount_text(value, "days")
        return one(value)


def _truth_column(q: Q) -> Case:
    return Case(When(q, then=Value(True)), default=Value(False), output_field=BooleanField())


def _holds(node: dict[str, Any], truths: dict[int, bool]) -> bool:
    if "all" in node:
        return all(_holds(child, truths) for child in node["all"])
    if "any" in node:
        return any(_holds(child, truths) for child in node["any"])
    return truths[id(node)]


def _subject(rule: dict[str, Any]) -> str | None:
    """What a rule reads that a step may change: a field, or a segment."""
    if "field" in rule:
        name = rule["field"]
        simulated = ("score", "grade", "stage", "owner", "tags", *SIMULATED_FIELDS)
        return name if name in simulated or name.startswith(("score.", "custom.")) else None
    if "segment" in rule:
        return f"segment:{rule['segment']}"
    return None


# Rule semantics on simulated values, as leads.conditions.compiler has them: a
# missing value (None, or "" for text) fails every positive test and passes its
# negation; text compares without case.


def _number_truth(current: Any, op: str, value: Any) -> bool:
    present = current is not None
    if op in ("is_set", "is_not_set"):
        return present == (op == "is_set")
    if not present:
        return op == "ne"
    if op == "between":
        return bool(value[0] <= current <= value[1])
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    return compare[op](current, value)


def _text_truth(current: Any, op: str, value: Any) -> bool:
    present = current is not None and current != ""
    if op in ("is_set", "is_not_set"):
        return present == (op == "is_set")
    if not present:
        return op in ("is_not", "not_contains")
    got = str(current).lower()
    if op == "in":
        return got in {item.lower() for item in value}
    wanted = str(value).lower()
    holds = {
        "is": got == wanted,
        "is_not": got != wanted,
        "contains": wanted in got,
        "not_contains": wanted not in got,
        "starts_with": got.startswith(wanted),
        "ends_with": got.endswith(wanted),
    }
    return holds[op]


def _choice_truth(current: Any, op: str, value: Any) -> bool:
    if op in ("is_set", "is_not_set"):
        return (current is not None) == (op == "is_set")
    if op == "is":
        return current is not None and current == value
    if op == "is_not":
        return current is None or current != value
    return current is not None and current in value


def _tags_truth(tags: set[str], op: str, value: Any) -> bool:
    if op == "has":
        return value in tags
    if op == "has_not":
        return value not in tags
    if op == "has_any":
        return any(name in tags for name in value)
    return all(name in tags for name in value)


def _activity_text(rule: dict[str, Any]) -> str:
    text = rule["activity"] + (f" '{rule['name']}'" if rule.get("name") else "")
    filters = [
        f"{prop} {OP_WORDS.get(test['op'], test['op'])} {value_text(test['value'])}"
        for prop, test in rule.get("where", {}).items()
    ]
    if filters:
        text += " where " + " and ".join(filters)
    count = rule.get("count", {"op": "gte", "value": 1})
    op, n = count["op"], count["value"]
    if n == 0 and op in ("eq", "lte"):
        times = "never"
    elif op == "gte":
        times = "at least once" if n <= 1 else f"at least {n} times"
    else:
        times = f"{'exactly' if op == 'eq' else 'at most'} {n} time{'s' if n != 1 else ''}"
    if "within_days" in rule:
        window = f" in the last {amount_text(rule['within_days'], 'days')}"
    elif "between" in rule:
        window = f" between {rule['between'][0]} and {rule['between'][1]}"
    else:
        window = ""
    return f"{text}: {times}{window}"


def _event_text(event: Event) -> str:
    what = event.type + (f" '{event.name}'" if event.name else "")
    if event.pk is None:
        return f"the made-up event {what}"
    return f"event #{event.pk}, {what} of {event.occurred_at.astimezone(dt.UTC):{WHEN}}"


def _event_dict(event: Event | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {
        "id": event.pk,
        "type": event.type,
        "name": event.name,
        "properties": event.properties,
        "occurred_at": event.occurred_at.isoformat(),
        "made_up": event.pk is None,
    }


StepDescriber = Callable[[_DryRun, dict[str, Any], dict[str, Any]], tuple[str, str, str | None]]

# How each node type's effect is described; a type missing here is described by
# its canvas summary and goes on through "next".
STEPS: dict[str, StepDescriber] = {
    "score.adjust": _DryRun._score,
    "sales.notify": _DryRun._notify,
    "owner.assign": _DryRun._assign,
    "field.set": _DryRun._set_field,
    "tag.add": _DryRun._tag,
    "tag.remove": _DryRun._tag,
    "stage.change": _DryRun._stage,
    "lead.disqualify": _DryRun._disqualify,
    "segment.add": _DryRun._segment,
    "segment.remove": _DryRun._segment,
    "webhook.send": _DryRun._webhook,
    "flow.end": _DryRun._end,
    "exit": _DryRun._end,
    "wait": _DryRun._wait,
    "wait.until": _DryRun._wait_until,
    "condition": _DryRun._condition,
}

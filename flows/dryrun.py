"""Test a flow on a lead ("dry run"): the path an event would take the lead along,
and what each step would do, without doing any of it.

This module chooses the trigger, explains entry and walks the graph; it decides
nothing the engine decides. The trigger is matched as the engine routes events
(the subscription's event type, ``flows.rules.event_match_keys``, then
``matches``); entry is the engine's own ``entry_check``; output handles are
followed through the same ``graph_index``. Nodes are not executed (``execute``
writes): each type's ``simulate`` tells its effect on a simulated copy of the
lead (``flows.nodes.simulation``), from the same pure decisions (``flows.rules``,
``scoring.rules``) its ``execute`` takes.

What the simulation carries from step to step, and so what later conditions see:

- score, category scores and grade (with the MQL stage move), stage, owner, tags,
  static segment membership, and the fields a flow can set. A condition rule on
  one of these, once an earlier step changed it, is decided on the simulated
  value, with the compiler's semantics (``segments.conditions.truth``); every other
  rule (activity, dates, anything no step changed) goes to the segment compiler,
  on the stored lead. The one exception is a custom date field set along the
  path: rules on it read the stored value, and the condition says so.
- the clock: a wait is taken as if its time passed with nothing else happening,
  so later conditions, waits and due dates count from its end; a wait-until is
  assumed to time out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from flows.engine import entry_check
from flows.graph import graph_validate
from flows.models import Flow, Reentry
from flows.nodes import REGISTRY
from flows.nodes.base import TIMEOUT, WAITED, duration_text, summarise
from flows.nodes.simulation import WHEN, LeadState, Simulation
from flows.nodes.summaries import graph_refs, names_load
from flows.rules import SETTABLE_FIELDS, TRIGGER_ONCE, Entry, event_match_keys, graph_index
from leads.models import Event, Lead, SegmentMembership
from scoring.models import LeadScore, ScoringSettings
from segments.conditions.words import ACTIVITY_LABELS

# Outcome of the trigger step.
MATCHED = "matched"

# Without an event given, the lead's latest events of the kinds the triggers listen
# to are tried, newest first, up to this many.
EVENT_SCAN_LIMIT = 500


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


class _DryRun:
    def __init__(self, flow: Flow, graph: dict[str, Any], lead: Lead, now: dt.datetime):
        self.flow = flow
        self.lead = lead
        self.now = now
        self.index = graph_index(graph)
        self.triggers: list[dict[str, Any]] = [
            node for node in graph["nodes"] if REGISTRY[node["type"]].kind == "trigger"
        ]
        # Conditions' rules included: the explanations name what they check.
        self.names = names_load(graph_refs(graph["nodes"]))
        self.notes: list[str] = []

    def _summary(self, node: dict[str, Any]) -> str:
        return summarise(REGISTRY[node["type"]], node.get("config", {}), self.names)

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
                gettext(
                    "The re-entry rule would keep this lead out now; the path shows what "
                    "would happen if it came in."
                )
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
                    gettext(
                        "No trigger of this flow starts on %(event)s. It starts on: %(triggers)s."
                    )
                    % {"event": _event_text(event), "triggers": starts},
                )
            return node, event, ""
        types = {_subscription(node)[0] for node in self.triggers}
        recent = list(
            Event.objects.filter(lead=self.lead, type__in=types).order_by("-occurred_at", "-id")[
                :EVENT_SCAN_LIMIT
            ]
        )
        for candidate in recent:
            node = self._trigger_for(candidate)
            if node is not None:
                return node, candidate, ""
        kinds = {"types": ", ".join(sorted(types)), "count": len(recent)}
        if not recent:
            reason = gettext(
                "The lead has done nothing yet that a trigger of this flow listens for."
            )
        elif len(recent) == 1:
            reason = gettext(
                "The one thing the lead did that a trigger listens for does not fit its settings."
            )
        elif len(recent) == EVENT_SCAN_LIMIT:
            reason = gettext(
                "None of the latest %(count)s things the lead did that a trigger listens for "
                "fits its settings."
            )
        else:
            reason = gettext(
                "None of the %(count)s things the lead did that a trigger listens for "
                "fits its settings."
            )
        return (
            None,
            None,
            gettext("%(reason)s The flow starts on: %(triggers)s.")
            % {"reason": reason % kinds, "triggers": starts},
        )

    def _trigger_for(self, event: Event) -> dict[str, Any] | None:
        """The first trigger (in graph order) the engine would route the event to
        and that matches it: one enrollment per flow and event."""
        keys = event_match_keys(name=event.name, properties=event.properties)
        for node in self.triggers:
            event_type, key = _subscription(node)
            matches = REGISTRY[node["type"]].matches
            assert matches is not None
            if event.type == event_type and key in keys and matches(event, node.get("config", {})):
                return node
        return None

    # --- entry -------------------------------------------------------------------------

    def _entry(self, trigger: dict[str, Any] | None) -> dict[str, Any]:
        """Whether the re-entry rule lets the lead in (the engine's own check), and
        why. Without a trigger, the flow's rule alone."""
        node = trigger or {"id": "", "config": {}}
        entry = entry_check(flow=self.flow, lead=self.lead, node=node, now=self.now)
        return {"allowed": entry.allowed, "reason": _entry_reason(entry, self.flow)}

    # --- the walk ------------------------------------------------------------------------

    def _simulation(self, event: Event) -> Simulation:
        lead = self.lead
        state = LeadState(
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
            fields={name: getattr(lead, name) for name in SETTABLE_FIELDS},
            custom=dict(lead.custom_fields),
            now=self.now,
        )
        # Read, never created: the dry run writes nothing.
        settings = ScoringSettings.objects.order_by("id").first() or ScoringSettings()
        return Simulation(lead=lead, state=state, names=self.names, settings=settings, event=event)

    def _walk(
        self, trigger: dict[str, Any], event: Event
    ) -> tuple[list[Step], list[str], list[str]]:
        sim = self._simulation(event)
        steps = [
            Step(
                trigger["id"],
                trigger["type"],
                MATCHED,
                gettext("starts on %(trigger)s, by %(event)s")
                % {"trigger": self._summary(trigger), "event": _event_text(event)},
                "next",
            )
        ]
        path, taken = [trigger["id"]], []
        current, handle = trigger["id"], "next"
        # The graph has no loops (validated), so this ends; the bound is a backstop.
        for _ in range(len(self.index.nodes)):
            # Publishing refuses an output connected twice: one edge per handle.
            edges = self.index.edges.get((current, handle))
            if not edges:
                break
            edge_id, target = edges[0]
            taken.append(edge_id)
            path.append(target)
            node = self.index.nodes[target]
            simulate = REGISTRY[node["type"]].simulate
            assert simulate is not None  # registration insists on it
            done = simulate(sim, node)
            steps.append(Step(node["id"], node["type"], done.outcome, done.effect, done.handle))
            if done.handle is None:
                break
            current, handle = target, done.handle
        if any(s.outcome in (WAITED, TIMEOUT) for s in steps):
            self.notes.append(
                gettext(
                    "Waits are taken as if their time passed with nothing else happening: "
                    "later steps count from their end, and a wait-until times out."
                )
            )
        return steps, path, taken


def _subscription(node: dict[str, Any]) -> tuple[str, str]:
    subscribe = REGISTRY[node["type"]].subscribe
    assert subscribe is not None
    return subscribe(node.get("config", {}))


def _entry_reason(entry: Entry, flow: Flow) -> str:
    """The re-entry decision in words; the date of the last entry is read by the
    flow's rule when it counts (once, once per N days)."""
    last = entry.last_at
    if entry.rule == TRIGGER_ONCE:
        return gettext("Already came in through this trigger, which lets each lead through once.")
    if entry.rule == Reentry.ONCE:
        if last is None:
            return gettext("Not enrolled before; this flow lets a lead in once.")
        return gettext("Already enrolled once (on %(date)s); this flow lets a lead in once.") % {
            "date": f"{last:{WHEN}}"
        }
    if entry.rule == Reentry.DAYS:
        rule = gettext("this flow lets a lead in at most once per %(duration)s") % {
            "duration": duration_text(flow.reentry_days or 1, "days")
        }
        if last is None:
            return gettext("Not enrolled before; %(rule)s.") % {"rule": rule}
        if entry.allowed:
            return gettext("Last enrolled on %(date)s; %(rule)s.") % {
                "date": f"{last:{WHEN}}",
                "rule": rule,
            }
        return gettext("Enrolled on %(date)s; %(rule)s, so again from %(again)s.") % {
            "date": f"{last:{WHEN}}",
            "rule": rule,
            "again": f"{entry.again_at:{WHEN}}",
        }
    return gettext("This flow lets a lead in every time.")


def _event_words(event_type: str) -> str:
    """An event's type as the segment editor names it ("App event")."""
    derived = {
        "grade.changed": gettext("Grade changed"),
        "score.changed": gettext("Score changed"),
        "segment.entered": gettext("Entered a segment"),
        "segment.left": gettext("Left a segment"),
        "field.changed": gettext("Field changed"),
        "lead.created": gettext("Lead created"),
        "tag.added": gettext("Tag added"),
        "tag.removed": gettext("Tag removed"),
        "identify": gettext("Details updated"),
    }
    if event_type in ACTIVITY_LABELS:
        return str(ACTIVITY_LABELS[event_type])
    return derived.get(event_type, event_type)


def _event_text(event: Event) -> str:
    what = "“" + _event_words(event.type) + (f": {event.name}" if event.name else "") + "”"
    if event.pk is None:
        return gettext("the made-up event %(event)s") % {"event": what}
    return gettext("event #%(id)s, %(event)s of %(date)s") % {
        "id": event.pk,
        "event": what,
        "date": f"{event.occurred_at.astimezone(dt.UTC):{WHEN}}",
    }


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

"""Logic nodes: if / else on any segment-style condition, waits, and exit."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import BooleanField, Case, Q, Value, When
from django.utils.translation import gettext, gettext_lazy, ngettext

from flows.nodes.base import (
    CONDITION_TREE,
    NO,
    REGISTRY,
    TIME_WINDOW,
    TIMEOUT,
    TRIGGER,
    WAITED,
    WEEKDAYS,
    YES,
    Names,
    NodeType,
    SimResult,
    StepContext,
    StepResult,
    duration_text,
    obj,
    register,
    summarise,
)
from flows.nodes.explain import condition_why
from flows.nodes.simulation import WHEN, Simulation, lower_first, simulate_end
from leads.models import Lead
from segments.check import conditions_hold
from segments.conditions import ConditionError, validate
from segments.conditions.tree import group_children, rules_in
from segments.conditions.truth import DecidedCompiler
from segments.conditions.words import rule_words

UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}


def _tree_problems(config: dict[str, Any]) -> dict[str, list[str]]:
    try:
        validate(config.get("conditions"))
    except ConditionError as exc:
        return {f"conditions.{p}" if p else "conditions": m for p, m in exc.fields.items()}
    return {}


def _condition(ctx: StepContext) -> StepResult:
    met = conditions_hold(lead_id=ctx.lead.pk, tree=ctx.config["conditions"], now=ctx.now)
    return StepResult(follow=("yes",) if met else ("no",), output={"met": met})


def _simulate_condition(sim: Simulation, node: dict[str, Any]) -> SimResult:
    """Branch as the node would: rules on what the path changed are decided on
    the simulated lead, the rest by the segment compiler on the stored lead, in
    one query that also tells each rule's truth for the explanation."""
    tree = node["config"]["conditions"]
    rules = rules_in(tree)
    decided = {id(rule): sim.truth(rule) for rule in rules if sim.decides(rule)}
    compiler = DecidedCompiler(sim.state.now, decided)
    columns: dict[str, Any] = {"met": _truth_column(compiler.node(tree))}
    queried = [rule for rule in rules if id(rule) not in decided]
    for index, rule in enumerate(queried):
        columns[f"rule{index}"] = _truth_column(compiler.node(rule))
    row: dict[str, Any] = dict(Lead.objects.filter(pk=sim.lead.pk).values(**columns).get())
    truths = dict(decided)
    truths.update({id(rule): bool(row[f"rule{index}"]) for index, rule in enumerate(queried)})
    met = bool(row["met"])
    why = condition_why(sim, tree, truths, met)
    return SimResult(YES if met else NO, why, "yes" if met else "no")


def _truth_column(q: Q) -> Case:
    return Case(When(q, then=Value(True)), default=Value(False), output_field=BooleanField())


def _condition_summary(config: dict[str, Any], names: Names) -> str:
    """The first rule in words and how many more: "Job title contains “CEO” or
    4 more"."""
    tree = config["conditions"]
    if group_children(tree) is None:
        return ""
    rules = rules_in(tree)
    if not rules:
        return ""
    first = rule_words(rules[0], names)
    more = len(rules) - 1
    if not more:
        return first
    if "any" in tree:
        return ngettext("%(rule)s or %(count)d more", "%(rule)s or %(count)d more", more) % {
            "rule": first,
            "count": more,
        }
    return ngettext("%(rule)s and %(count)d more", "%(rule)s and %(count)d more", more) % {
        "rule": first,
        "count": more,
    }


register(
    NodeType(
        key="condition",
        kind="condition",
        label=gettext_lazy("If / else"),
        description=gettext_lazy(
            "Checks the lead against conditions (like a segment's) and goes on through yes or no."
        ),
        icon="git-branch",
        schema=obj({"conditions": {"type": "object"}}, ("conditions",)),
        outputs=("yes", "no"),
        execute=_condition,
        writes=False,
        simulate=_simulate_condition,
        check=_tree_problems,
        summary=_condition_summary,
        pickers={"conditions": CONDITION_TREE},
    )
)


def wait_due(config: dict[str, Any], now: dt.datetime) -> dt.datetime:
    """When a wait started ``now`` ends: the duration, then (optionally) the next
    moment inside the allowed weekdays and hours, in UTC."""
    due = now + dt.timedelta(seconds=config["amount"] * UNITS[config["unit"]])
    weekdays = config.get("weekdays")
    window = config.get("between")
    if not weekdays and not window:
        return due
    start_t, end_t = dt.time.min, dt.time.max
    if window:
        start_t = dt.time.fromisoformat(window[0])
        end_t = dt.time.fromisoformat(window[1])
    for offset in range(0, 8):
        day = (due + dt.timedelta(days=offset)).date()
        if weekdays and day.weekday() not in weekdays:
            continue
        opens = dt.datetime.combine(day, start_t, tzinfo=dt.UTC)
        closes = dt.datetime.combine(day, end_t, tzinfo=dt.UTC)
        if due <= opens:
            return opens
        if due < closes:
            return due
    return due


DAY_NAMES = (
    gettext_lazy("Mon"),
    gettext_lazy("Tue"),
    gettext_lazy("Wed"),
    gettext_lazy("Thu"),
    gettext_lazy("Fri"),
    gettext_lazy("Sat"),
    gettext_lazy("Sun"),
)


def _days_text(weekdays: list[int]) -> str:
    """[0, 1, 2, 3, 4, 6] as "Mon-Fri, Sun": runs of three or more days collapse."""
    runs: list[list[int]] = []
    for day in sorted(weekdays):
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(str(DAY_NAMES[day]) for day in run)
    return ", ".join(parts)


def _wait_summary(config: dict[str, Any], names: Names) -> str:
    text = gettext("Wait %(duration)s") % {
        "duration": duration_text(config["amount"], config["unit"])
    }
    if config.get("weekdays") or config.get("between"):
        text += gettext(", then")
    if config.get("weekdays"):
        text += f" {_days_text(config['weekdays'])}"
    if config.get("between"):
        text += f" {config['between'][0]}-{config['between'][1]} UTC"
    return text


def _wait(ctx: StepContext) -> StepResult:
    return StepResult(wait_until=wait_due(ctx.config, ctx.now))


def _simulate_wait(sim: Simulation, node: dict[str, Any]) -> SimResult:
    # Taken as if its time passed with nothing else happening.
    due = wait_due(node["config"], sim.state.now)
    sim.state.now = due
    effect = gettext("%(wait)s (until %(date)s)") % {
        "wait": lower_first(sim.summary(node)),
        "date": f"{due:{WHEN}}",
    }
    return SimResult(WAITED, effect)


def _window_problems(config: dict[str, Any]) -> dict[str, list[str]]:
    window = config.get("between")
    if window and window[0] >= window[1]:
        return {"between": [gettext("The window must end after it starts.")]}
    return {}


register(
    NodeType(
        key="wait",
        kind="wait",
        label=gettext_lazy("Wait"),
        description=gettext_lazy(
            "Waits for a while (seconds to weeks), optionally until a weekday "
            "and time window (UTC)."
        ),
        icon="clock",
        schema=obj(
            {
                "amount": {"type": "integer", "minimum": 1, "maximum": 10000},
                "unit": {"type": "string", "enum": list(UNITS)},
                "weekdays": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0, "maximum": 6},
                    "uniqueItems": True,
                    "minItems": 1,
                    "description": "0 is Monday.",
                },
                "between": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
            ("amount", "unit"),
        ),
        execute=_wait,
        writes=False,
        simulate=_simulate_wait,
        check=_window_problems,
        summary=_wait_summary,
        pickers={"weekdays": WEEKDAYS, "between": TIME_WINDOW},
    )
)


def _wait_until(ctx: StepContext) -> StepResult:
    # Met or timed out is decided later: by a matching event, or by the wake-up.
    return StepResult(wait_until=wait_until_due(ctx.config, ctx.now), output={"listening": True})


def wait_until_due(config: dict[str, Any], now: dt.datetime) -> dt.datetime:
    """When a wait-until started ``now`` times out."""
    return now + dt.timedelta(days=config["within_days"])


def _simulate_wait_until(sim: Simulation, node: dict[str, Any]) -> SimResult:
    # The awaited event is assumed not to happen: it times out.
    config = node["config"]
    awaited_type = REGISTRY[config["event"]["type"]]
    awaited = summarise(awaited_type, config["event"].get("config", {}), sim.names)
    due = wait_until_due(config, sim.state.now)
    sim.state.now = due
    effect = gettext(
        "waits up to %(duration)s for %(event)s; assumed not to happen, so it times out (%(date)s)"
    ) % {
        "duration": duration_text(config["within_days"], "days"),
        "event": awaited,
        "date": f"{due:{WHEN}}",
    }
    return SimResult(TIMEOUT, effect, "timeout")


def wait_until_matches(config: dict[str, Any], event: Any) -> bool:
    trigger = REGISTRY.get(config["event"]["type"])
    if trigger is None or trigger.kind != "trigger":
        return False
    assert trigger.subscribe is not None
    assert trigger.matches is not None
    event_type, _ = trigger.subscribe(config["event"].get("config", {}))
    return event.type == event_type and trigger.matches(event, config["event"].get("config", {}))


def _wait_until_problems(config: dict[str, Any]) -> dict[str, list[str]]:
    from flows.graph import config_problems

    spec = config.get("event", {})
    trigger = REGISTRY.get(spec.get("type", ""))
    if trigger is None or trigger.kind != "trigger":
        return {"event.type": [gettext("Choose the event to wait for.")]}
    return {
        f"event.config.{k}" if k else "event.config": v
        for k, v in config_problems(trigger, spec.get("config", {})).items()
    }


def _wait_until_summary(config: dict[str, Any], names: Names) -> str:
    trigger = REGISTRY.get(config["event"]["type"])
    if trigger is None or trigger.kind != "trigger":
        return ""
    awaited = summarise(trigger, config["event"].get("config", {}), names)
    if not awaited:
        return ""
    return gettext("Until %(event)s, at most %(duration)s") % {
        "event": awaited,
        "duration": duration_text(config["within_days"], "days"),
    }


register(
    NodeType(
        key="wait.until",
        kind="wait",
        label=gettext_lazy("Wait until"),
        description=gettext_lazy(
            "Waits for an event (matched like a trigger) for up to N days; goes on "
            "through met, or through timeout."
        ),
        icon="hourglass",
        schema=obj(
            {
                "event": obj({"type": {"type": "string"}, "config": {"type": "object"}}, ("type",)),
                "within_days": {"type": "integer", "minimum": 1, "maximum": 365},
            },
            ("event", "within_days"),
        ),
        outputs=("met", "timeout"),
        execute=_wait_until,
        writes=False,
        simulate=_simulate_wait_until,
        check=_wait_until_problems,
        summary=_wait_until_summary,
        pickers={"event.type": TRIGGER},
    )
)

register(
    NodeType(
        key="exit",
        kind="exit",
        label=gettext_lazy("Exit"),
        description=gettext_lazy("Ends the flow for this lead."),
        icon="log-out",
        schema=obj({}),
        outputs=(),
        execute=lambda ctx: StepResult(follow=(), end=True),
        writes=False,
        simulate=simulate_end,
        summary=lambda c, n: gettext("End of the flow"),
    )
)

"""An if / else decision in words, for the dry run: which rules held or failed,
each with the value the (simulated) lead has."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext, gettext_lazy, ngettext

from flows.nodes.base import duration_text, value_text
from flows.nodes.simulation import Simulation, quoted, user_number
from leads.models import Stage
from segments.conditions.truth import tree_truth

OP_WORDS: dict[str, Any] = {
    "is": gettext_lazy("is"),
    "is_not": gettext_lazy("is not"),
    "contains": gettext_lazy("contains"),
    "not_contains": gettext_lazy("does not contain"),
    "starts_with": gettext_lazy("starts with"),
    "ends_with": gettext_lazy("ends with"),
    "in": gettext_lazy("is one of"),
    "is_set": gettext_lazy("is set"),
    "is_not_set": gettext_lazy("is not set"),
    "eq": "=",
    "ne": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "between": gettext_lazy("is between"),
    "before": gettext_lazy("is before"),
    "after": gettext_lazy("is after"),
    "on": gettext_lazy("is on"),
    "in_last_days": gettext_lazy("is in the last"),
    "more_than_days_ago": gettext_lazy("is more than"),
    "in_next_days": gettext_lazy("is in the next"),
}


def condition_why(sim: Simulation, tree: dict[str, Any], truths: dict[int, bool], met: bool) -> str:
    """Why the tree is met or not: the rules that made it so (``truths``: each
    rule's, by ``id()``)."""
    group = "all" if "all" in tree else "any"
    children = tree[group]
    if met:
        shown = children if group == "all" else [c for c in children if tree_truth(c, truths)]
        rules = "; ".join(rule_text(sim, c) for c in shown) or gettext("no conditions")
        return gettext("yes: %(rules)s") % {"rules": rules}
    if group == "all":
        rules = "; ".join(rule_text(sim, c) for c in children if not tree_truth(c, truths))
        return gettext("no: %(rules)s") % {"rules": rules}
    rules = "; ".join(rule_text(sim, c) for c in children) or gettext("no rules")
    return gettext("no: none of %(rules)s") % {"rules": rules}


def rule_text(sim: Simulation, rule: dict[str, Any]) -> str:
    """A rule in words, with the value the lead has for a field rule."""
    if "all" in rule or "any" in rule:
        group = "all" if "all" in rule else "any"
        rules = "; ".join(rule_text(sim, c) for c in rule[group])
        if group == "all":
            return gettext("all of (%(rules)s)") % {"rules": rules}
        return gettext("any of (%(rules)s)") % {"rules": rules}
    if "segment" in rule:
        name = sim.names.segments.get(rule["segment"], f"#{rule['segment']}")
        if rule["op"] == "in":
            return gettext("in segment %(segment)s") % {"segment": name}
        return gettext("not in segment %(segment)s") % {"segment": name}
    if "activity" in rule:
        return activity_text(rule)
    state = sim.state
    name, op, value = rule["field"], rule["op"], rule.get("value")
    if name == "tags":
        words = {
            "has": gettext("has tag %(tags)s"),
            "has_not": gettext("does not have tag %(tags)s"),
            "has_any": gettext("has any of the tags %(tags)s"),
            "has_all": gettext("has all the tags %(tags)s"),
        }[op]
        text = words % {"tags": ", ".join(value) if isinstance(value, list) else value}
        shown = ", ".join(sorted(state.tags)) or gettext("none")
        return gettext("%(rule)s (tags: %(tags)s%(after)s)") % {
            "rule": text,
            "tags": shown,
            "after": _after(sim, name),
        }
    text = f"{sim.field_label(name)} {OP_WORDS[op]}"
    if op not in ("is_set", "is_not_set"):
        text += f" {_value_text(sim, name, op, value)}"
    if name.startswith("custom."):
        if name in state.changed and not sim.decides(rule):
            stored = quoted(sim.lead.custom_fields.get(name[7:]))
            return gettext("%(rule)s (%(stored)s as stored; the change above is not counted)") % {
                "rule": text,
                "stored": stored,
            }
        return f"{text} ({quoted(state.custom.get(name[7:]))}{_after(sim, name)})"
    return f"{text} ({_current(sim, name)}{_after(sim, name)})"


def _after(sim: Simulation, subject: str) -> str:
    return gettext(" after the steps above") if subject in sim.state.changed else ""


def _current(sim: Simulation, name: str) -> str:
    state = sim.state
    if name == "owner":
        return sim.user_name(state.owner_id)
    if name == "score":
        return str(state.score)
    if name.startswith("score."):
        return str(state.categories.get(name[6:], 0))
    if name == "stage":
        return str(Stage(state.stage).label)
    if name == "grade":
        return state.grade
    if name in state.fields:
        return quoted(state.fields[name])
    return quoted(getattr(sim.lead, name, None))


def _value_text(sim: Simulation, name: str, op: str, value: Any) -> str:
    def one(item: Any) -> str:
        if name == "owner":
            return sim.names.users.get(item, user_number(item))
        if name == "stage" and item in Stage.values:
            return str(Stage(item).label)
        return value_text(item)

    if op == "between":
        return gettext("%(low)s and %(high)s") % {"low": one(value[0]), "high": one(value[1])}
    if op == "in":
        return ", ".join(one(item) for item in value)
    if op == "more_than_days_ago":
        return gettext("%(duration)s ago") % {"duration": duration_text(value, "days")}
    if op in ("in_last_days", "in_next_days"):
        return duration_text(value, "days")
    return one(value)


def activity_text(rule: dict[str, Any]) -> str:
    """An activity rule in words: what, how often, when."""
    text = rule["activity"] + (f" '{rule['name']}'" if rule.get("name") else "")
    filters = [
        f"{prop} {OP_WORDS.get(test['op'], test['op'])} {value_text(test['value'])}"
        for prop, test in rule.get("where", {}).items()
    ]
    if filters:
        text += gettext(" where %(filters)s") % {"filters": gettext(" and ").join(filters)}
    count = rule.get("count", {"op": "gte", "value": 1})
    op, n = count["op"], count["value"]
    if n == 0 and op in ("eq", "lte"):
        times = gettext("never")
    elif op == "gte":
        times = gettext("at least once") if n <= 1 else gettext("at least %(count)s times")
    elif op == "eq":
        times = ngettext("exactly %(count)s time", "exactly %(count)s times", n)
    else:
        times = ngettext("at most %(count)s time", "at most %(count)s times", n)
    times = times.replace("%(count)s", str(n))
    if "within_days" in rule:
        window = gettext(" in the last %(duration)s") % {
            "duration": duration_text(rule["within_days"], "days")
        }
    elif "between" in rule:
        window = gettext(" between %(start)s and %(end)s") % {
            "start": rule["between"][0],
            "end": rule["between"][1],
        }
    else:
        window = ""
    return f"{text}: {times}{window}"

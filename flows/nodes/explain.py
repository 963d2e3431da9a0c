"""An if / else decision in words, for the dry run: which rules held or failed,
each with the value the (simulated) lead has."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from flows.nodes.simulation import Simulation, lower_first, quoted
from leads.models import Stage
from segments.conditions.truth import tree_truth
from segments.conditions.words import rule_words


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
    if "segment" in rule or "activity" in rule:
        return lower_first(rule_words(rule, sim.names))
    state = sim.state
    name = rule["field"]
    text = rule_words(rule, sim.names, subject=sim.field_label(name))
    if name == "tags":
        shown = ", ".join(sorted(state.tags)) or gettext("none")
        return gettext("%(rule)s (tags: %(tags)s%(after)s)") % {
            "rule": text,
            "tags": shown,
            "after": _after(sim, name),
        }
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
    if name in ("fit_grade", "engagement_grade"):
        # Not simulated: a score step's points are not graded by the dry run.
        return str(getattr(sim.lead, name))
    if name in state.fields:
        return quoted(state.fields[name])
    return quoted(getattr(sim.lead, name, None))

"""The scoring review's part in flows: what the active flows give today for each
suggested attribute or activity, and a draft flow made from accepted suggestions
(the marketer reviews it on the canvas and publishes it, or not)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext, ngettext

from flows.lifecycle import flow_create, flow_name_free
from flows.models import Flow, Reentry
from flows.selectors import ScoringStep, scoring_steps
from flows.templates_catalog import Canvas
from scoring.services import review_log_record
from scoring.suggestions import ATTRIBUTE, Feature, Suggestion


@dataclass(frozen=True)
class CurrentPoints:
    """What the active flows give for a feature: the points of the matching
    steps, summed, and the flows they are in."""

    points: int
    flows: tuple[str, ...]


def _rules(tree: Any) -> list[dict[str, Any]]:
    """The field rules of a condition tree, flattened."""
    if not isinstance(tree, dict):
        return []
    if "field" in tree:
        return [tree]
    out = []
    for key in ("all", "any"):
        for child in tree.get(key, []) or []:
            out += _rules(child)
    return out


def _rule_matches(feature_rule: dict[str, Any], rule: dict[str, Any]) -> bool:
    if feature_rule["field"] != rule.get("field"):
        return False
    wanted, value = feature_rule["value"], rule.get("value")
    if feature_rule["field"] == "company_size":
        low, high = wanted if isinstance(wanted, list) else (wanted, None)
        if rule.get("op") == "between" and isinstance(value, list) and len(value) == 2:
            return bool(value[0] <= (high if high is not None else value[1]) and low <= value[1])
        if rule.get("op") in ("gte", "gt") and isinstance(value, int | float):
            return high is None or high >= value
        return False
    if isinstance(value, list):
        return any(str(v).lower() == str(wanted).lower() for v in value)
    return str(value).lower() == str(wanted).lower()


def _step_matches(feature: Feature, step: ScoringStep) -> bool:
    if feature.trigger is None:
        return False
    if feature.kind == ATTRIBUTE:
        wanted = _rules(feature.condition)
        passed = [r for tree, handle in step.conditions if handle == "yes" for r in _rules(tree)]
        return any(_rule_matches(w, r) for w in wanted for r in passed)
    if step.conditions:
        return False
    for trigger in step.triggers:
        if trigger["type"] != feature.trigger["type"]:
            continue
        config, wanted = trigger.get("config", {}), feature.trigger["config"]
        if trigger["type"] == "page.visited":
            url = config.get("url", {})
            if str(url.get("value", "")).lower() in wanted["url"]["value"].lower():
                return True
        elif trigger["type"] == "form.submitted" or all(
            config.get(key) == value for key, value in wanted.items()
        ):
            return True
    return False


def current_points(
    *, suggestions: list[Suggestion], steps: list[ScoringStep]
) -> dict[str, CurrentPoints]:
    """Per suggested feature (by key): what today's active scoring flows give it."""
    out = {}
    for suggestion in suggestions:
        matching = [step for step in steps if _step_matches(suggestion.feature, step)]
        out[suggestion.feature.key] = CurrentPoints(
            points=sum(step.points for step in matching),
            flows=tuple(dict.fromkeys(step.flow_name for step in matching)),
        )
    return out


def suggestions_graph(
    accepted: list[tuple[Feature, int]], reasons: dict[str, str] | None = None
) -> dict[str, Any]:
    """A graph giving each accepted feature its points: the attributes checked one
    after the other from one "lead created" trigger (a flow enrolls a lead once
    per event, whichever trigger matched), each activity its own trigger.
    ``reasons``: a step's reason by feature key (else the feature's label)."""
    canvas = Canvas()
    reasons = reasons or {}
    attributes = [(f, p) for f, p in accepted if f.kind == ATTRIBUTE and f.trigger]
    activities = [(f, p) for f, p in accepted if f.kind != ATTRIBUTE and f.trigger]
    column = 0
    if attributes:
        start = canvas.node("new-lead", "lead.created", {}, row=0)
        previous = [(start, "next")]
        for index, (feature, points) in enumerate(attributes):
            check = canvas.node(
                f"check-{index + 1}",
                "condition",
                {"conditions": feature.condition},
                row=1 + 2 * index,
            )
            for source, handle in previous:
                canvas.edge(source, check, handle)
            score = canvas.node(
                f"check-{index + 1}-score",
                "score.adjust",
                {
                    "points": points,
                    "category": feature.category,
                    "reason": reasons.get(feature.key, feature.label)[:255],
                },
                row=2 + 2 * index,
                column=1,
            )
            canvas.edge(check, score, "yes")
            previous = [(score, "next"), (check, "no")]
        column = 2
    for index, (feature, points) in enumerate(activities):
        assert feature.trigger is not None
        trigger = canvas.node(
            f"activity-{index + 1}",
            feature.trigger["type"],
            feature.trigger["config"],
            row=0,
            column=column + index,
        )
        score = canvas.node(
            f"activity-{index + 1}-score",
            "score.adjust",
            {
                "points": points,
                "category": feature.category,
                "reason": reasons.get(feature.key, feature.label)[:255],
            },
            row=1,
            column=column + index,
        )
        canvas.edge(trigger, score)
    return canvas.graph()


@transaction.atomic
def suggestions_draft_create(
    *, accepted: list[tuple[Feature, int]], user: User | None, month: str = ""
) -> Flow:
    """A draft flow bringing the accepted features to their points (``(feature,
    points)``; features no flow can express are left out): each step gives the
    difference between the suggested points and what the active flows give the
    feature today (publishing the draft adds to them), a feature they already
    give exactly is left out. A review log entry says so. Nothing is live until
    the marketer publishes it."""
    steps = scoring_steps()
    usable: list[tuple[Feature, int]] = []
    reasons: dict[str, str] = {}
    for feature, points in accepted:
        if not feature.trigger:
            continue
        today = sum(step.points for step in steps if _step_matches(feature, step))
        difference = points - today
        if not difference:
            continue
        usable.append((feature, difference))
        if today:
            reasons[feature.key] = gettext(
                "%(difference)s to reach the suggested %(points)s for %(feature)s"
            ) % {"difference": f"{difference:+d}", "points": points, "feature": feature.label}
    if not usable:
        raise ValueError(
            gettext(
                "Pick at least one suggestion that a flow can give points for and that "
                "today's flows do not give already."
            )
        )
    name = gettext("Suggested scoring %(month)s") % {"month": month} if month else ""
    flow = flow_create(
        name=flow_name_free(base=name.strip() or gettext("Suggested scoring")),
        description=gettext("Made from the scoring review's suggestions; review and publish."),
        reentry=Reentry.ALWAYS,
        graph=suggestions_graph(usable, reasons),
        created_by=user,
    )
    review_log_record(
        user=user,
        subject="flow",
        summary=ngettext(
            "Draft flow “%(name)s” made from %(count)s suggestion",
            "Draft flow “%(name)s” made from %(count)s suggestions",
            len(usable),
        )
        % {"name": flow.name, "count": len(usable)},
        changes={
            "flow": flow.pk,
            "points": {feature.key: points for feature, points in usable},
        },
    )
    return flow

"""What a node's ``simulate`` sees: the lead as the steps so far would leave it,
and the dry run's helpers for telling an effect in words.

Nothing here writes. A simulating node reads the stored lead (and the users,
settings and definitions it needs) and updates ``Simulation.state`` as its
``execute`` would update the lead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.contrib.auth.models import User
from django.utils.translation import gettext

from flows.nodes.base import (
    ENDED,
    REGISTRY,
    WOULD_APPLY,
    Names,
    SimResult,
    summarise,
    value_text,
)
from flows.rules import SETTABLE_FIELDS
from leads.models import Event, FieldDefinition, FieldType, Lead
from leads.services.fields import custom_definitions
from scoring.models import ScoringSettings
from segments.conditions.schema import FIELD_TYPES
from segments.conditions.truth import field_rule_truth, segment_rule_truth
from segments.names import user_display

WHEN = "%Y-%m-%d %H:%M UTC"


@dataclass
class LeadState:
    """The lead as the steps so far would leave it. ``changed``: the condition
    subjects (``score``, ``score.fit``, ``tags``, ``segment:12``, ``job_title``,
    ``custom.plan`` …) a step changed. ``now``: the simulated clock, which waits
    move on."""

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


class Simulation:
    """One dry run's view: the stored ``lead`` (never written), its simulated
    ``state``, the display ``names`` of what the graph refers to, and the scoring
    settings, and the ``event`` the run starts on. Users are read once each."""

    def __init__(
        self,
        *,
        lead: Lead,
        state: LeadState,
        names: Names,
        settings: ScoringSettings,
        event: Event | None = None,
    ) -> None:
        self.lead = lead
        self.event = event
        # When the lead enters: the clock before any wait moves it on.
        self.started_at = state.now
        self.state = state
        self.names = names
        self.settings = settings
        self.users: dict[int, User | None] = {}

    @cached_property
    def definitions(self) -> dict[str, FieldDefinition]:
        return custom_definitions()

    def summary(self, node: dict[str, Any]) -> str:
        """The node's canvas summary."""
        return summarise(REGISTRY[node["type"]], node.get("config", {}), self.names)

    def user(self, user_id: int | None) -> User | None:
        if user_id is None:
            return None
        if user_id not in self.users:
            self.users[user_id] = User.objects.filter(pk=user_id).first()
        return self.users[user_id]

    def remember(self, user: User) -> None:
        """A user read elsewhere (the next rep in turn), so it is not read again."""
        self.users[user.pk] = user

    def user_name(self, user_id: int | None) -> str:
        user = self.user(user_id)
        if user is None:
            return gettext("nobody") if user_id is None else user_number(user_id)
        return user_display(user.first_name, user.last_name, user.username)

    def field_label(self, name: str) -> str:
        """A condition subject or a field as it reads in a sentence."""
        if name.startswith("score."):
            return gettext("%(category)s score") % {
                "category": self.names.categories.get(name[6:], name[6:])
            }
        subjects = {
            "score": gettext("score"),
            "grade": gettext("grade"),
            "tags": gettext("tags"),
            "owner": gettext("owner"),
            "stage": gettext("stage"),
        }
        if name in subjects:
            return subjects[name]
        label = self.names.field_label(name)
        return lower_first(label.replace("_", " ") if label == name else label)

    # --- condition rules on the simulated lead ------------------------------------------

    def decides(self, rule: dict[str, Any]) -> bool:
        """Whether the rule is decided on the simulated lead: it reads something an
        earlier step changed. Custom dates compare as days against relative
        ranges: those are left to the compiler, on the stored lead."""
        subject = rule_subject(rule)
        if subject is None or subject not in self.state.changed:
            return False
        if subject.startswith("custom."):
            return self.definitions[subject[7:]].type != FieldType.DATE
        return True

    def truth(self, rule: dict[str, Any]) -> bool:
        """The rule on the simulated lead (segments.conditions.truth)."""
        state = self.state
        if "segment" in rule:
            return segment_rule_truth(rule, state.segments)
        name = rule["field"]
        current: Any
        if name == "tags":
            current, kind = state.tags, "tags"
        elif name == "owner":
            current, kind = state.owner_id, "owner"
        elif name in ("stage", "grade"):
            current, kind = getattr(state, name), "choice"
        elif name == "score":
            current, kind = state.score, "number"
        elif name.startswith("score."):
            current, kind = state.categories.get(name[6:], 0), "number"
        elif name.startswith("custom."):
            current = state.custom.get(name[7:])
            # A custom value that is "" counts as missing, whatever the type.
            current = None if current == "" else current
            kind = str(self.definitions[name[7:]].type)
        else:
            current = state.fields[name]
            kind = "number" if FIELD_TYPES[name] == "number" else "text"
        return field_rule_truth(rule, current, kind)


def rule_subject(rule: dict[str, Any]) -> str | None:
    """What a rule reads that a step may change: a field, or a segment."""
    if "field" in rule:
        name = rule["field"]
        simulated = ("score", "grade", "stage", "owner", "tags", *SETTABLE_FIELDS)
        return name if name in simulated or name.startswith(("score.", "custom.")) else None
    if "segment" in rule:
        return f"segment:{rule['segment']}"
    return None


def simulate_summary(sim: Simulation, node: dict[str, Any]) -> SimResult:
    """For a node with nothing to simulate: its summary, then on through "next"."""
    return SimResult(WOULD_APPLY, lower_first(sim.summary(node)))


def simulate_end(sim: Simulation, node: dict[str, Any]) -> SimResult:
    """An end (or exit) node: the walk stops there."""
    return SimResult(ENDED, gettext("end of the flow"), None)


# --- words ------------------------------------------------------------------------------


def lower_first(label: str) -> str:
    """ "Job title" as "job title"; "ARR" stays."""
    return label[:1].lower() + label[1:] if label[1:2].islower() else label


def quoted(value: Any) -> str:
    if value is None or value == "":
        return gettext("empty")
    if isinstance(value, str):
        return f"“{value}”"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime(WHEN)
    return value_text(value)


def user_number(user_id: Any) -> str:
    return gettext("user #%(id)s") % {"id": user_id}


def stage_change(before: Any, after: Any) -> str:
    return gettext("stage %(before)s → %(after)s") % {"before": before, "after": after}

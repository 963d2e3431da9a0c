"""What a node type is. Each type is declared once: the palette, the config form,
server-side validation, the API schema and the engine all read that declaration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext
from jsonschema import Draft202012Validator

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    from flows.models import Enrollment, StepRun
    from leads.models import Event, Lead

KINDS = ("trigger", "action", "condition", "wait", "exit")

# Pickers: what a config value is chosen from. The first kinds name a record (or
# a trigger type), which the config form offers as a select and a summary shows
# by name; the next are free text with suggestions from data seen; the last two
# are widgets.
SEGMENT = "segment"
STATIC_SEGMENT = "static_segment"
SALES_USER = "sales_user"
SCORE_CATEGORY = "score_category"
LEAD_FIELD = "lead_field"  # standard fields, owner, and custom fields by bare key
SETTABLE_FIELD = "settable_field"  # standard fields a flow may set, custom as custom.<key>
TRIGGER = "trigger"  # a trigger type; its config sits next to it under "config"
EVENT_NAME = "event_name"
PAGE_URL = "page_url"
FORM_NAME = "form_name"
TAG = "tag"
WEEKDAYS = "weekdays"
TIME_WINDOW = "time_window"


@dataclass
class StepContext:
    """What an executing node sees. ``lead`` is locked for the transaction."""

    enrollment: Enrollment
    step: StepRun
    lead: Lead
    config: dict[str, Any]
    trigger_event: Event | None
    now: dt.datetime


class StepError(Exception):
    """A step cannot run (its configuration names something gone, …), raised
    before it wrote anything: the step fails (and is retried), the event's other
    effects stand."""


@dataclass
class StepResult:
    """``follow``: the output handles to go on through. ``wait_until``: park the
    step until then (a wake-up). ``end``: the enrollment is over."""

    follow: tuple[str, ...] = ("next",)
    wait_until: dt.datetime | None = None
    wait_for_delivery: bool = False
    end: bool = False
    output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Names:
    """Display names of the records configs point at, loaded before summarising
    so that a whole graph costs one query per kind. A missing id raises KeyError,
    which makes the summary empty: the config names something that is gone."""

    segments: dict[int, str] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)
    # Bare field key (``job_title``, a custom key) to its label.
    fields: dict[str, str] = field(default_factory=dict)

    def field_label(self, key: str) -> str:
        bare = key.removeprefix("custom.")
        return self.fields.get(bare, bare)


@dataclass(frozen=True)
class NodeType:
    key: str
    kind: str
    label: StrOrPromise
    description: StrOrPromise
    icon: str
    schema: dict[str, Any]
    outputs: tuple[str, ...] = ("next",)
    # Triggers: the (event type, match key) a config subscribes to, and the full
    # test of an event against the config.
    subscribe: Callable[[dict[str, Any]], tuple[str, str]] | None = None
    matches: Callable[[Event, dict[str, Any]], bool] | None = None
    # Everything else: what it does.
    execute: Callable[[StepContext], StepResult] | None = None
    # Server-side checks JSON Schema cannot express (ids that must exist …):
    # returns {config path: [messages]}.
    check: Callable[[dict[str, Any]], dict[str, list[str]]] | None = None
    # The canvas label for a valid config, e.g. "Entered segment: Hot leads".
    summary: Callable[[dict[str, Any], Names], str] | None = None
    # Config path (dotted for nested objects) to picker kind, see above.
    pickers: dict[str, str] = field(default_factory=dict)
    # Runs in a savepoint, so that any failure undoes only its own writes and
    # fails only the step. A node that is not isolated raises StepError before
    # its first write; any other failure fails the whole event, which is
    # retried. It saves two round trips on the hottest steps.
    isolated: bool = True

    def describe(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "label": str(self.label),
            "description": str(self.description),
            "icon": self.icon,
            "outputs": list(self.outputs) if self.kind != "exit" else [],
            "config_schema": self.schema,
        }


REGISTRY: dict[str, NodeType] = {}


def register(node: NodeType) -> NodeType:
    if node.key in REGISTRY:
        raise ValueError(f"Node type {node.key!r} is declared twice.")
    if node.kind not in KINDS:
        raise ValueError(f"Unknown kind {node.kind!r}.")
    if node.kind == "trigger" and (node.subscribe is None or node.matches is None):
        raise ValueError(f"Trigger {node.key!r} needs subscribe and matches.")
    if node.kind != "trigger" and node.execute is None:
        raise ValueError(f"Node {node.key!r} needs execute.")
    REGISTRY[node.key] = node
    return node


_validators: dict[str, Draft202012Validator] = {}


def summarise(node_type: NodeType, config: Any, names: Names) -> str:
    """The node's canvas summary, or "" when the config does not fit its schema
    or names a record that is gone."""
    validator = _validators.get(node_type.key)
    if validator is None:
        validator = _validators[node_type.key] = Draft202012Validator(node_type.schema)
    if node_type.summary is None or not validator.is_valid(config):
        return ""
    try:
        return node_type.summary(config, names)
    except KeyError:
        return ""


def once_suffix(config: dict[str, Any]) -> str:
    return gettext(", once per lead") if config.get("once_per_lead") else ""


def text_match_phrase(test: dict[str, Any]) -> str:
    """``{"op": "contains", "value": "/pricing"}`` as "containing /pricing"."""
    phrases = {
        "contains": gettext("containing %(value)s"),
        "starts_with": gettext("starting with %(value)s"),
    }
    return phrases.get(test["op"], "%(value)s") % {"value": test["value"]}


def value_text(value: Any) -> str:
    if value is None:
        return gettext("empty")
    if isinstance(value, bool):
        return gettext("true") if value else gettext("false")
    return str(value)


def obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON Schema object with no other keys allowed."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


TEXT_MATCH = obj(
    {
        "op": {"type": "string", "enum": ["is", "contains", "starts_with"], "default": "contains"},
        "value": {"type": "string", "minLength": 1, "maxLength": 500},
    },
    ("op", "value"),
)


def text_matches(test: dict[str, Any] | None, value: Any) -> bool:
    if not test:
        return True
    if not isinstance(value, str):
        return False
    wanted, got = test["value"].lower(), value.lower()
    if test["op"] == "is":
        return got == wanted
    if test["op"] == "starts_with":
        return got.startswith(wanted)
    return wanted in got

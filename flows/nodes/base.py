"""What a node type is. Each type is declared once: the palette, the config form,
server-side validation, the API schema and the engine all read that declaration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.models import Enrollment, StepRun
    from leads.models import Event, Lead

KINDS = ("trigger", "action", "condition", "wait", "exit")


@dataclass
class StepContext:
    """What an executing node sees. ``lead`` is locked for the transaction."""

    enrollment: Enrollment
    step: StepRun
    lead: Lead
    config: dict[str, Any]
    trigger_event: Event | None
    now: dt.datetime


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
class NodeType:
    key: str
    kind: str
    label: str
    description: str
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
    summary: Callable[[dict[str, Any]], str] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "label": self.label,
            "description": self.description,
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

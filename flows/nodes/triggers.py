"""Trigger nodes: what starts an enrollment. Each says which events to route to
it (``subscribe``) and tests each routed event fully (``matches``)."""

from __future__ import annotations

from typing import Any

from flows.nodes.base import (
    EVENT_NAME,
    FORM_NAME,
    LEAD_FIELD,
    PAGE_URL,
    SCORE_CATEGORY,
    SEGMENT,
    TAG,
    TEXT_MATCH,
    Names,
    NodeType,
    obj,
    once_suffix,
    register,
    text_match_phrase,
    text_matches,
    value_text,
)
from leads.models import Event, Segment, Stage

ONCE = {
    "once_per_lead": {
        "type": "boolean",
        "default": False,
        "description": "Let each lead through this trigger only once, ever.",
    }
}
EMAIL_ACTIVITIES = [
    "delivered",
    "opened",
    "clicked",
    "replied",
    "bounced",
    "unsubscribed",
    "complained",
]


def _segment_exists(config: dict[str, Any]) -> dict[str, list[str]]:
    if not Segment.objects.filter(pk=config.get("segment") or 0).exists():
        return {"segment": [f"No segment {config.get('segment')}."]}
    return {}


def _segment_trigger(key: str, event_type: str, label: str, verb: str) -> NodeType:
    return register(
        NodeType(
            key=key,
            kind="trigger",
            label=label,
            description=f"Starts when a lead {verb} a segment.",
            icon="users",
            schema=obj({"segment": {"type": "integer", "minimum": 1}, **ONCE}, ("segment",)),
            subscribe=lambda c: (event_type, str(c["segment"])),
            matches=lambda e, c: e.properties.get("segment_id") == c["segment"],
            check=_segment_exists,
            summary=lambda c, n: f"{label}: {n.segments[c['segment']]}{once_suffix(c)}",
            pickers={"segment": SEGMENT},
        )
    )


_segment_trigger("segment.entered", "segment.entered", "Entered segment", "enters")
_segment_trigger("segment.left", "segment.left", "Left segment", "leaves")


def _email_matches(event: Event, config: dict[str, Any]) -> bool:
    if config.get("campaign") and event.name != config["campaign"]:
        return False
    return text_matches(config.get("url"), event.properties.get("url"))


def _email_summary(config: dict[str, Any], names: Names) -> str:
    text = f"Email {config['activity']}"
    if config.get("campaign"):
        text += f": {config['campaign']}"
    if config.get("url"):
        text += f", link {text_match_phrase(config['url'])}"
    return text + once_suffix(config)


register(
    NodeType(
        key="email.activity",
        kind="trigger",
        label="Email activity",
        description="Starts when a lead's email is delivered, opened, clicked, replied to, "
        "bounces, or they unsubscribe or complain; optionally for one email or link.",
        icon="mail",
        schema=obj(
            {
                "activity": {"type": "string", "enum": EMAIL_ACTIVITIES},
                "campaign": {"type": "string", "maxLength": 255},
                "url": TEXT_MATCH,
                **ONCE,
            },
            ("activity",),
        ),
        subscribe=lambda c: (f"email.{c['activity']}", ""),
        matches=_email_matches,
        summary=_email_summary,
    )
)


def _properties_match(where: dict[str, Any], properties: dict[str, Any]) -> bool:
    for prop, test in where.items():
        value = properties.get(prop)
        op, wanted = test["op"], test["value"]
        if op in ("gt", "gte", "lt", "lte"):
            if not isinstance(value, int | float) or isinstance(value, bool):
                return False
            if not {
                "gt": value > wanted,
                "gte": value >= wanted,
                "lt": value < wanted,
                "lte": value <= wanted,
            }[op]:
                return False
        elif op == "is":
            if isinstance(wanted, str) and isinstance(value, str):
                if value.lower() != wanted.lower():
                    return False
            elif value != wanted:
                return False
        elif not text_matches({"op": op, "value": str(wanted)}, value):
            return False
    return True


PROPERTY_FILTERS = {
    "type": "object",
    "maxProperties": 10,
    "propertyNames": {"pattern": "^[A-Za-z0-9_\\-]{1,64}$"},
    "additionalProperties": obj(
        {
            "op": {
                "type": "string",
                "enum": ["is", "contains", "starts_with", "gt", "gte", "lt", "lte"],
            },
            "value": {"type": ["string", "number", "boolean"]},
        },
        ("op", "value"),
    ),
}

PROPERTY_OPS = {
    "is": "is",
    "contains": "contains",
    "starts_with": "starts with",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
}


def _app_event_summary(config: dict[str, Any], names: Names) -> str:
    text = f"App event: {config['event']}"
    filters = [
        f"{prop} {PROPERTY_OPS[test['op']]} {value_text(test['value'])}"
        for prop, test in config.get("where", {}).items()
    ]
    if filters:
        text += " where " + " and ".join(filters)
    return text + once_suffix(config)


register(
    NodeType(
        key="app.event",
        kind="trigger",
        label="App event",
        description="Starts when your app tracks an event, such as 'Signed up for trial'.",
        icon="zap",
        schema=obj(
            {
                "event": {"type": "string", "minLength": 1, "maxLength": 255},
                "where": PROPERTY_FILTERS,
                **ONCE,
            },
            ("event",),
        ),
        subscribe=lambda c: ("track", c["event"]),
        matches=lambda e, c: (
            e.name == c["event"] and _properties_match(c.get("where", {}), e.properties)
        ),
        summary=_app_event_summary,
        pickers={"event": EVENT_NAME},
    )
)

register(
    NodeType(
        key="page.visited",
        kind="trigger",
        label="Page visited",
        description="Starts when a lead visits a page whose URL matches.",
        icon="globe",
        schema=obj({"url": TEXT_MATCH, **ONCE}, ("url",)),
        subscribe=lambda c: ("page", ""),
        matches=lambda e, c: text_matches(c["url"], e.properties.get("url")),
        summary=lambda c, n: f"Visited page {text_match_phrase(c['url'])}{once_suffix(c)}",
        pickers={"url.value": PAGE_URL},
    )
)


def _field_changed_matches(event: Event, config: dict[str, Any]) -> bool:
    if "from" in config and event.properties.get("from") != config["from"]:
        return False
    return "to" not in config or event.properties.get("to") == config["to"]


def _field_changed_summary(config: dict[str, Any], names: Names) -> str:
    def shown(value: Any) -> str:
        if config["field"] == "stage" and value in Stage.values:
            return str(Stage(value).label)
        return value_text(value)

    text = f"{names.field_label(config['field'])} changed"
    if "from" in config:
        text += f" from {shown(config['from'])}"
    if "to" in config:
        text += f" to {shown(config['to'])}"
    return text + once_suffix(config)


register(
    NodeType(
        key="field.changed",
        kind="trigger",
        label="Field changed",
        description="Starts when a lead field changes, optionally from or to a value.",
        icon="edit",
        schema=obj(
            {
                "field": {"type": "string", "minLength": 1, "maxLength": 64},
                "from": {"type": ["string", "number", "boolean", "null"]},
                "to": {"type": ["string", "number", "boolean", "null"]},
                **ONCE,
            },
            ("field",),
        ),
        subscribe=lambda c: ("field.changed", c["field"]),
        matches=_field_changed_matches,
        summary=_field_changed_summary,
        pickers={"field": LEAD_FIELD},
    )
)


def _tag_trigger(key: str, label: str, verb: str) -> None:
    register(
        NodeType(
            key=key,
            kind="trigger",
            label=label,
            description=f"Starts when a lead {verb} a tag.",
            icon="tag",
            schema=obj(
                {"tag": {"type": "string", "minLength": 1, "maxLength": 100}, **ONCE}, ("tag",)
            ),
            subscribe=lambda c: (key, c["tag"]),
            matches=lambda e, c: e.name == c["tag"],
            summary=lambda c, n: f"{label}: {c['tag']}{once_suffix(c)}",
            pickers={"tag": TAG},
        )
    )


_tag_trigger("tag.added", "Tag added", "gets")
_tag_trigger("tag.removed", "Tag removed", "loses")

register(
    NodeType(
        key="lead.created",
        kind="trigger",
        label="Lead created",
        description="Starts for every new lead.",
        icon="user-plus",
        schema=obj({**ONCE}),
        subscribe=lambda c: ("lead.created", ""),
        matches=lambda e, c: True,
        summary=lambda c, n: f"Every new lead{once_suffix(c)}",
    )
)

register(
    NodeType(
        key="form.submitted",
        kind="trigger",
        label="Form submitted",
        description="Starts when a lead submits a form (any, or the one named).",
        icon="clipboard",
        schema=obj({"form": {"type": "string", "maxLength": 255}, **ONCE}),
        subscribe=lambda c: ("form.submitted", c.get("form") or ""),
        matches=lambda e, c: not c.get("form") or e.name == c["form"],
        summary=lambda c, n: (
            (f"Form submitted: {c['form']}" if c.get("form") else "Any form submitted")
            + once_suffix(c)
        ),
        pickers={"form": FORM_NAME},
    )
)


def _crossed(event: Event, config: dict[str, Any]) -> bool:
    props = event.properties
    category = config.get("category") or ""
    if category:
        if props.get("category") != category:
            return False
        before, after = props.get("category_from"), props.get("category_to")
    else:
        before, after = props.get("from"), props.get("to")
    if not isinstance(before, int) or not isinstance(after, int):
        return False
    threshold = config["threshold"]
    if config.get("direction", "up") == "up":
        return before < threshold <= after
    return before >= threshold > after


def _threshold_summary(config: dict[str, Any], names: Names) -> str:
    category = config.get("category")
    # An unknown category key is not an error here (the trigger just never fires).
    score = f"{names.categories.get(category, category)} score" if category else "Score"
    if config.get("direction", "up") == "up":
        return f"{score} reaches {config['threshold']}{once_suffix(config)}"
    return f"{score} drops below {config['threshold']}{once_suffix(config)}"


register(
    NodeType(
        key="score.threshold",
        kind="trigger",
        label="Score crossed a threshold",
        description="Starts when the total score (or one category's) crosses a value, "
        "upwards or downwards.",
        icon="trending-up",
        schema=obj(
            {
                "threshold": {"type": "integer", "minimum": -100000, "maximum": 100000},
                "category": {"type": "string", "maxLength": 40},
                "direction": {"type": "string", "enum": ["up", "down"], "default": "up"},
                **ONCE,
            },
            ("threshold",),
        ),
        subscribe=lambda c: ("score.changed", ""),
        matches=_crossed,
        summary=_threshold_summary,
        pickers={"category": SCORE_CATEGORY},
    )
)

register(
    NodeType(
        key="grade.changed",
        kind="trigger",
        label="Grade changed",
        description="Starts when a lead becomes hot, warm or cold.",
        icon="thermometer",
        schema=obj(
            {"grade": {"type": "string", "enum": ["cold", "warm", "hot"]}, **ONCE}, ("grade",)
        ),
        subscribe=lambda c: ("grade.changed", c["grade"]),
        matches=lambda e, c: e.name == c["grade"],
        summary=lambda c, n: f"Grade became {c['grade']}{once_suffix(c)}",
    )
)

"""Trigger nodes: what starts an enrollment. Each says which events to route to
it (``subscribe``) and tests each routed event fully (``matches``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext, gettext_lazy

from core.scope import event_scoped
from core.vocabulary import EngagementGrade, FitGrade, Grade
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
from flows.rules import (
    DELIVERED,
    EMAIL_STREAK_TYPES,
    IGNORED_MAX,
    IGNORED_MIN,
    grade_reached,
    unopened_streak_reached,
)
from leads.models import Event, Segment, Stage
from leads.services.email_events import machine_flagged

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

ONCE = {
    "once_per_lead": {
        "type": "boolean",
        "default": False,
        "description": "Let each lead through this trigger only once, ever.",
    }
}
# Summary words, lower case as they read inside a sentence.
EMAIL_ACTIVITY_WORDS = {
    "delivered": gettext_lazy("delivered"),
    "opened": gettext_lazy("opened"),
    "clicked": gettext_lazy("clicked"),
    "replied": gettext_lazy("replied"),
    "bounced": gettext_lazy("bounced"),
    "unsubscribed": gettext_lazy("unsubscribed"),
    "complained": gettext_lazy("complained"),
}
GRADE_WORDS = {
    "cold": gettext_lazy("cold"),
    "warm": gettext_lazy("warm"),
    "hot": gettext_lazy("hot"),
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
        return {
            "segment": [
                gettext("The segment chosen (%(id)s) was deleted: choose another.")
                % {"id": config.get("segment")}
            ]
        }
    return {}


def _segment_trigger(
    key: str, event_type: str, label: StrOrPromise, description: StrOrPromise
) -> NodeType:
    return register(
        NodeType(
            key=key,
            kind="trigger",
            label=label,
            description=description,
            icon="users",
            schema=obj({"segment": {"type": "integer", "minimum": 1}, **ONCE}, ("segment",)),
            subscribe=lambda c: (event_type, str(c["segment"])),
            matches=lambda e, c: e.properties.get("segment_id") == c["segment"],
            check=_segment_exists,
            summary=lambda c, n: f"{label}: {n.segments[c['segment']]}{once_suffix(c)}",
            pickers={"segment": SEGMENT},
        )
    )


_segment_trigger(
    "segment.entered",
    "segment.entered",
    gettext_lazy("Entered segment"),
    gettext_lazy("Starts when a lead enters a segment."),
)
_segment_trigger(
    "segment.left",
    "segment.left",
    gettext_lazy("Left segment"),
    gettext_lazy("Starts when a lead leaves a segment."),
)


def _email_matches(event: Event, config: dict[str, Any]) -> bool:
    if machine_flagged(event):
        # A proxy's or scanner's open: recorded on the timeline, never a reaction.
        return False
    if config.get("campaign") and event.name != config["campaign"]:
        return False
    return text_matches(config.get("url"), event.properties.get("url"))


def _email_summary(config: dict[str, Any], names: Names) -> str:
    text = gettext("Email %(activity)s") % {"activity": EMAIL_ACTIVITY_WORDS[config["activity"]]}
    if config.get("campaign"):
        text += f": {config['campaign']}"
    if config.get("url"):
        text += gettext(", link %(match)s") % {"match": text_match_phrase(config["url"])}
    return text + once_suffix(config)


register(
    NodeType(
        key="email.activity",
        kind="trigger",
        label=gettext_lazy("Email activity"),
        description=gettext_lazy(
            "Starts when a lead's email is delivered, opened, clicked, replied to, "
            "bounces, or they unsubscribe or complain; optionally for one email or link."
        ),
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


def _email_streak(event: Event, lead_id: int) -> list[str]:
    """The lead's email deliveries, opens and clicks, newest first, from ``event``
    back, as many as the longest streak needs: one query on the timeline index
    (lead, occurred_at). A made-up event (the dry run's) is put in front of the
    stored ones."""
    # Up to and including this event: a backfilled delivery is judged by what came
    # before it, not by what is stored after it. The bound on the time is the
    # index's (the tie on the id only a filter), so the scan starts at the event.
    recent = Event.objects.filter(
        lead_id=lead_id, type__in=EMAIL_STREAK_TYPES, occurred_at__lte=event.occurred_at
    ).exclude(type="email.opened", properties__has_key="machine")
    if event.pk is not None:
        recent = recent.exclude(occurred_at=event.occurred_at, id__gt=event.pk)
    kinds = list(
        recent.order_by("-occurred_at", "-id").values_list("type", flat=True)[: IGNORED_MAX + 1]
    )
    return [event.type, *kinds] if event.pk is None else kinds


def _ignored_matches(event: Event, config: dict[str, Any]) -> bool:
    lead_id = event.lead_id
    if event.type != DELIVERED or lead_id is None:
        return False
    if event.pk is None:
        recent = _email_streak(event, lead_id)
    else:
        # Read once per event, however many flows listen for a streak.
        recent = event_scoped(f"email-streak:{event.pk}", lambda: _email_streak(event, lead_id))
    return unopened_streak_reached(recent=recent, count=config["count"])


register(
    NodeType(
        key="email.ignored",
        kind="trigger",
        label=gettext_lazy("Emails not opened"),
        description=gettext_lazy(
            "Starts when a lead has had a number of emails delivered in a row without "
            "opening or clicking any: once, at the last of them; an open starts the count again."
        ),
        icon="mail",
        schema=obj(
            {
                "count": {
                    "type": "integer",
                    "minimum": IGNORED_MIN,
                    "maximum": IGNORED_MAX,
                    "default": 3,
                },
                **ONCE,
            },
            ("count",),
        ),
        subscribe=lambda c: (DELIVERED, ""),
        matches=_ignored_matches,
        summary=lambda c, n: (
            gettext("%(count)s emails in a row not opened") % {"count": c["count"]} + once_suffix(c)
        ),
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
    "is": gettext_lazy("is"),
    "contains": gettext_lazy("contains"),
    "starts_with": gettext_lazy("starts with"),
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
}


def _app_event_summary(config: dict[str, Any], names: Names) -> str:
    text = gettext("App event: %(event)s") % {"event": config["event"]}
    filters = [
        f"{prop} {PROPERTY_OPS[test['op']]} {value_text(test['value'])}"
        for prop, test in config.get("where", {}).items()
    ]
    if filters:
        text += gettext(" where %(filters)s") % {"filters": gettext(" and ").join(filters)}
    return text + once_suffix(config)


register(
    NodeType(
        key="app.event",
        kind="trigger",
        label=gettext_lazy("App event"),
        description=gettext_lazy(
            "Starts when your app tracks an event, such as 'Signed up for trial'."
        ),
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
        label=gettext_lazy("Page visited"),
        description=gettext_lazy("Starts when a lead visits a page whose URL matches."),
        icon="globe",
        schema=obj({"url": TEXT_MATCH, **ONCE}, ("url",)),
        subscribe=lambda c: ("page", ""),
        matches=lambda e, c: text_matches(c["url"], e.properties.get("url")),
        summary=lambda c, n: (
            gettext("Visited page %(match)s") % {"match": text_match_phrase(c["url"])}
            + once_suffix(c)
        ),
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

    text = gettext("%(field)s changed") % {"field": names.field_label(config["field"])}
    if "from" in config:
        text += gettext(" from %(value)s") % {"value": shown(config["from"])}
    if "to" in config:
        text += gettext(" to %(value)s") % {"value": shown(config["to"])}
    return text + once_suffix(config)


register(
    NodeType(
        key="field.changed",
        kind="trigger",
        label=gettext_lazy("Field changed"),
        description=gettext_lazy(
            "Starts when a lead field changes, optionally from or to a value."
        ),
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


def _tag_trigger(key: str, label: StrOrPromise, description: StrOrPromise) -> None:
    register(
        NodeType(
            key=key,
            kind="trigger",
            label=label,
            description=description,
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


_tag_trigger("tag.added", gettext_lazy("Tag added"), gettext_lazy("Starts when a lead gets a tag."))
_tag_trigger(
    "tag.removed", gettext_lazy("Tag removed"), gettext_lazy("Starts when a lead loses a tag.")
)

register(
    NodeType(
        key="lead.created",
        kind="trigger",
        label=gettext_lazy("Lead created"),
        description=gettext_lazy("Starts for every new lead."),
        icon="user-plus",
        schema=obj({**ONCE}),
        subscribe=lambda c: ("lead.created", ""),
        matches=lambda e, c: True,
        summary=lambda c, n: gettext("Every new lead") + once_suffix(c),
    )
)

register(
    NodeType(
        key="form.submitted",
        kind="trigger",
        label=gettext_lazy("Form submitted"),
        description=gettext_lazy("Starts when a lead submits a form (any, or the one named)."),
        icon="clipboard",
        schema=obj({"form": {"type": "string", "maxLength": 255}, **ONCE}),
        subscribe=lambda c: ("form.submitted", c.get("form") or ""),
        matches=lambda e, c: not c.get("form") or e.name == c["form"],
        summary=lambda c, n: (
            (
                gettext("Form submitted: %(form)s") % {"form": c["form"]}
                if c.get("form")
                else gettext("Any form submitted")
            )
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
    threshold: int = config["threshold"]
    if config.get("direction", "up") == "up":
        return before < threshold <= after
    return before >= threshold > after


def _threshold_summary(config: dict[str, Any], names: Names) -> str:
    category = config.get("category")
    # An unknown category key is not an error here (the trigger just never fires).
    score = (
        gettext("%(category)s score") % {"category": names.categories.get(category, category)}
        if category
        else gettext("Score")
    )
    values = {"score": score, "threshold": config["threshold"]}
    if config.get("direction", "up") == "up":
        return gettext("%(score)s reaches %(threshold)s") % values + once_suffix(config)
    return gettext("%(score)s drops below %(threshold)s") % values + once_suffix(config)


register(
    NodeType(
        key="score.threshold",
        kind="trigger",
        label=gettext_lazy("Score crossed a threshold"),
        description=gettext_lazy(
            "Starts when the total score (or one category's) crosses a value, upwards or downwards."
        ),
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


def _grade_config(config: dict[str, Any]) -> dict[str, str | None]:
    return {
        "grade": config.get("grade") or None,
        "fit": config.get("fit") or None,
        "engagement": config.get("engagement") or None,
    }


def _grade_asked(config: dict[str, Any]) -> dict[str, list[str]]:
    if not any(_grade_config(config).values()):
        return {"grade": [gettext("Choose a grade, a fit grade or an engagement grade.")]}
    return {}


def _grade_summary(config: dict[str, Any], names: Names) -> str:
    asked = _grade_config(config)
    parts = []
    if asked["grade"]:
        parts.append(gettext("Grade became %(grade)s") % {"grade": GRADE_WORDS[asked["grade"]]})
    if asked["fit"]:
        parts.append(gettext("fit reached %(fit)s or better") % {"fit": asked["fit"]})
    if asked["engagement"]:
        parts.append(
            gettext("engagement reached %(engagement)s or better")
            % {"engagement": asked["engagement"]}
        )
    text = gettext(" and ").join(parts)
    return text[:1].upper() + text[1:] + once_suffix(config)


register(
    NodeType(
        key="grade.changed",
        kind="trigger",
        label=gettext_lazy("Grade changed"),
        description=gettext_lazy(
            "Starts when a lead becomes hot, warm or cold, or when its fit or engagement "
            "grade reaches a grade or better (fit A to D, engagement 1 to 4); with more "
            "than one, when the lead comes to meet all of them."
        ),
        icon="thermometer",
        schema=obj(
            {
                "grade": {"type": "string", "enum": list(Grade.values)},
                "fit": {"type": "string", "enum": list(FitGrade.values)},
                "engagement": {"type": "string", "enum": list(EngagementGrade.values)},
                **ONCE,
            },
        ),
        subscribe=lambda c: ("grade.changed", c.get("grade") or ""),
        matches=lambda e, c: grade_reached(properties=e.properties, **_grade_config(c)),
        check=_grade_asked,
        summary=_grade_summary,
    )
)

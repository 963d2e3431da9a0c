"""A step's configuration problems as sentences a marketer understands, from
the JSON Schema errors of the node registry's schemas: "Choose how many
points." rather than "'points' is required". Every field is named by the label
the side panel shows for it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.utils.text import capfirst
from django.utils.translation import gettext, gettext_lazy, ngettext

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# What to ask for when a setting is missing or empty, by "<node type>:<path>",
# then by path, then by the last part of the path.
ASK: dict[str, StrOrPromise] = {
    "score.adjust:points": gettext_lazy("Choose how many points."),
    "score.adjust:category": gettext_lazy("Choose a score category."),
    "score.adjust:reason": gettext_lazy(
        "Say why the lead gets the points: the reason is shown on its profile."
    ),
    "lead.disqualify:reason": gettext_lazy("Say why the lead is disqualified."),
    "segment": gettext_lazy("Choose a segment."),
    "title": gettext_lazy("Give the task a title."),
    "due_in": gettext_lazy("Say when the task is due."),
    "due_in.amount": gettext_lazy("Say in how long the task is due."),
    "user": gettext_lazy("Choose a sales rep."),
    "field": gettext_lazy("Choose a field."),
    "value": gettext_lazy("Give a value."),
    "tag": gettext_lazy("Choose a tag."),
    "stage": gettext_lazy("Choose a stage."),
    "conditions": gettext_lazy("Set the conditions a lead must meet."),
    "wait:amount": gettext_lazy("Say how long to wait."),
    "amount": gettext_lazy("Give an amount."),
    "unit": gettext_lazy("Choose a unit: minutes, hours, days …"),
    "activity": gettext_lazy("Choose what the lead did with the email."),
    "count": gettext_lazy("Say how many emails in a row."),
    "url": gettext_lazy("Give the address, or a part of it."),
    "url.value": gettext_lazy("Give the address, or a part of it."),
    "url.op": gettext_lazy("Choose how the address is matched."),
    "webhook.send:url": gettext_lazy("Give the address to send the lead to."),
    "app.event:event": gettext_lazy("Give the name of the app event."),
    "event": gettext_lazy("Choose the event to wait for."),
    "event.type": gettext_lazy("Choose the event to wait for."),
    "within_days": gettext_lazy("Say for how many days at most to wait."),
    "threshold": gettext_lazy("Give the score to reach."),
    "direction": gettext_lazy("Choose whether the score rises to it or drops below it."),
    "property": gettext_lazy("Give the property's name."),
    "op": gettext_lazy("Choose how to compare."),
    "grade": gettext_lazy("Choose a grade."),
}


def _lookup(table: dict[str, Any], node_type: str, path: str) -> Any:
    last = path.rsplit(".", 1)[-1]
    for key in (f"{node_type}:{path}", path, f"{node_type}:{last}", last):
        if key in table:
            return table[key]
    return None


def field_label(node_type: str, path: str) -> str:
    """The label the side panel gives the setting at ``path``."""
    # The config form owns the labels; it imports the validation that imports this.
    from flows.forms import LABELS

    parts = [p for p in path.split(".") if not p.isdigit()]
    found = _lookup(LABELS, node_type, ".".join(parts)) if parts else None
    if found is None:
        return capfirst(parts[-1].replace("_", " ")) if parts else gettext("This step")
    return str(found)


def _value_words(node_type: str, values: list[Any]) -> str:
    from flows.forms import ENUM_LABELS

    return ", ".join(str(ENUM_LABELS.get(str(v), v)) for v in values)


def _type_sentence(types: list[str], words: dict[str, Any]) -> str:
    if "integer" in types:
        return gettext("“%(label)s” takes a whole number.") % words
    if "number" in types:
        return gettext("“%(label)s” takes a number.") % words
    if "string" in types:
        return gettext("“%(label)s” takes text.") % words
    if "boolean" in types:
        return gettext("“%(label)s” is either yes or no.") % words
    return gettext("“%(label)s” is not in the form it needs: set it again.") % words


def _size_sentence(keyword: str, words: dict[str, Any]) -> str | None:
    """Lengths and counts: too long, too short, too many, too few."""
    limit = words["limit"]
    if keyword == "maxLength":
        return (
            ngettext(
                "“%(label)s” is too long: at most %(limit)d character.",
                "“%(label)s” is too long: at most %(limit)d characters.",
                limit,
            )
            % words
        )
    if keyword == "minLength":
        return (
            ngettext(
                "“%(label)s” needs at least %(limit)d character.",
                "“%(label)s” needs at least %(limit)d characters.",
                limit,
            )
            % words
        )
    if keyword == "maxItems":
        return gettext("“%(label)s” takes at most %(limit)s entries.") % words
    if keyword == "minItems":
        return gettext("“%(label)s” needs at least %(limit)s entries.") % words
    return None


def problem_sentence(node_type: str, path: str, error: Any) -> str:
    """One JSON Schema error of a node's config (``jsonschema.ValidationError``)
    at ``path`` as a sentence naming the setting."""
    keyword, limit = error.validator, error.validator_value
    words = {"label": field_label(node_type, path), "limit": limit}
    if keyword == "required" or (keyword in ("minLength", "minItems") and limit == 1):
        asked = _lookup(ASK, node_type, path)
        return str(asked) if asked else gettext("Fill in “%(label)s”.") % words
    if keyword == "type":
        return _type_sentence(limit if isinstance(limit, list) else [limit], words)
    if keyword == "enum":
        return gettext("Choose one of these for “%(label)s”: %(values)s.") % {
            **words,
            "values": _value_words(node_type, list(limit)),
        }
    if keyword == "additionalProperties":
        names = error.message.split("(")[-1].rstrip(")")
        return gettext("This step has settings it does not know: %(names)s. Delete them.") % {
            "names": re.sub(r" (was|were) unexpected$", "", names)
        }
    sentences = {
        "not": gettext("“%(label)s” cannot be 0."),
        "minimum": gettext("“%(label)s” must be at least %(limit)s."),
        "maximum": gettext("“%(label)s” must be at most %(limit)s."),
        "exclusiveMinimum": gettext("“%(label)s” must be more than %(limit)s."),
        "exclusiveMaximum": gettext("“%(label)s” must be less than %(limit)s."),
        "pattern": gettext("“%(label)s” is not in the form it needs."),
        "format": gettext("“%(label)s” is not in the form it needs."),
        "const": gettext("“%(label)s” must be %(limit)s."),
    }
    if keyword in sentences:
        return sentences[keyword] % words
    return _size_sentence(keyword, words) or gettext("“%(label)s” is not valid.") % words

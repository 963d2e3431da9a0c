"""The segment editor's form and its condition builder.

The builder keeps the whole tree in the form, one set of fields per node, named
by the node's place: ``c`` is the root group, ``c-0`` its first child, ``c-0-2``
the third child of that, and so on (``c-0-kind``, ``c-0-field``, ``c-0-op``, …).
The server reads the tree back from those fields, applies an edit (add a rule or
a group, remove a node), and renders the builder again, renumbered. What the
builder cannot show (an activity rule's ``between`` or other property filters,
made through the API) rides along as JSON in a hidden field, so an edit in the
browser never loses it."""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.http import QueryDict
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.vocabulary import COUNTABLE_TYPES
from leads.models import FieldDefinition, FieldType, Segment, SegmentKind, Stage
from leads.people import person_name
from leads.services.ingest import json_loads_limited
from segments.conditions.schema import (
    COUNT_OPERATORS,
    FIELD_TYPES,
    NO_VALUE,
    OPERATORS,
    RELATIVE,
)
from segments.conditions.tree import group_children, rules_in
from segments.conditions.words import (
    CHOICE_LABELS,
    FIELD_LABELS,
    OP_LABELS,
    as_text,
)

ROOT = "c"
NEW_RULE: dict[str, Any] = {"field": "job_title", "op": "contains"}
# A new activity rule waits for its activity to be chosen: until then the live
# count leaves it out (see ``segments.views._without_blank_rules``).
NEW_ACTIVITY: dict[str, Any] = {
    "activity": "",
    "count": {"op": "gte", "value": 1},
    "within_days": 30,
}

KIND_LABELS = {
    "field": _("Field"),
    "activity": _("Activity"),
    "segment": _("Segment"),
}


class SegmentForm(forms.Form):
    """Name, description and (for a new segment) kind. The conditions are the
    builder's fields, read by ``tree_from_form``."""

    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    kind = forms.ChoiceField(
        label=_("Kind"),
        choices=[
            (SegmentKind.DYNAMIC, _("Dynamic: leads that match the conditions")),
            (SegmentKind.STATIC, _("Static: leads added by hand or by import")),
        ],
        initial=SegmentKind.DYNAMIC,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args: Any, segment: Segment | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.segment = segment
        if segment is not None:
            # The kind of a segment never changes.
            del self.fields["kind"]

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        taken = Segment.objects.filter(name=name)
        if self.segment is not None:
            taken = taken.exclude(pk=self.segment.pk)
        if taken.exists():
            raise forms.ValidationError(gettext("Another segment already has this name."))
        return name

    def chosen_kind(self) -> str:
        if self.segment is not None:
            return str(self.segment.kind)
        kind = self.data.get("kind") if self.is_bound else None
        return SegmentKind.STATIC if kind == SegmentKind.STATIC else SegmentKind.DYNAMIC


class EmailsForm(forms.Form):
    emails = forms.CharField(
        label=_("Emails"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One or more emails, separated by commas, spaces or new lines."),
    )

    def clean_emails(self) -> list[str]:
        words = [w for w in re.split(r"[\s,;]+", self.cleaned_data["emails"]) if w]
        if len(words) > 1000:
            raise forms.ValidationError(gettext("At most 1,000 emails at a time."))
        bad = [w for w in words if "@" not in w or len(w) > 254]
        if bad:
            raise forms.ValidationError(
                gettext("Not an email: %(values)s") % {"values": ", ".join(bad[:5])}
            )
        return sorted({w.lower() for w in words})


# --- reading the tree from the form ----------------------------------------------------


def _number(text: str) -> Any:
    """A typed number as int or float; anything else stays text for the schema to
    refuse with its own words."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _children(data: QueryDict) -> dict[str, list[str]]:
    """Each group's child paths, in order, from the ``<path>-kind`` fields."""
    children: dict[str, list[tuple[int, str]]] = {}
    for key in data:
        if not key.endswith("-kind") or not key.startswith(f"{ROOT}-"):
            continue
        path = key[: -len("-kind")]
        parent, _sep, index = path.rpartition("-")
        if index.isdigit() and len(index) < 6:
            children.setdefault(parent, []).append((int(index), path))
    return {parent: [p for _i, p in sorted(items)] for parent, items in children.items()}


def tree_from_form(data: QueryDict, *, definitions: dict[str, FieldDefinition]) -> dict[str, Any]:
    """The condition tree the builder's fields describe."""
    children = _children(data)

    def node(path: str, depth: int) -> dict[str, Any]:
        kind = data.get(f"{path}-kind", "group") if path != ROOT else "group"
        if kind == "group":
            match = "any" if data.get(f"{path}-match") == "any" else "all"
            # Deeper than the schema allows is refused there; stop reading anyway.
            kids = children.get(path, []) if depth <= 12 else []
            return {match: [node(child, depth + 1) for child in kids]}
        if kind == "activity":
            return _activity_from_form(data, path)
        if kind == "segment":
            segment = data.get(f"{path}-segment", "").strip()
            return {
                "segment": int(segment) if segment.isdigit() and len(segment) < 19 else None,
                "op": "not_in" if data.get(f"{path}-segop") == "not_in" else "in",
            }
        return _field_from_form(data, path, definitions)

    return node(ROOT, 0)


def field_kind(name: str, definitions: dict[str, FieldDefinition]) -> str | None:
    """The type of a field rule's field, without a query per rule."""
    if name in FIELD_TYPES:
        return FIELD_TYPES[name]
    if name.startswith("score."):
        return "number"
    if name.startswith("custom.") and name[7:] in definitions:
        return str(definitions[name[7:]].type)
    return None


def _field_from_form(
    data: QueryDict, path: str, definitions: dict[str, FieldDefinition]
) -> dict[str, Any]:
    name = data.get(f"{path}-field") or NEW_RULE["field"]
    kind = field_kind(name, definitions)
    op = data.get(f"{path}-op", "")
    rule: dict[str, Any] = {"field": name, "op": op}
    if kind is None:
        return rule
    if op not in OPERATORS[kind]:
        # Another field was chosen: its first operator, and no value yet.
        rule["op"] = OPERATORS[kind][0]
        return rule
    if op in NO_VALUE:
        return rule
    text = data.get(f"{path}-value", "").strip()
    text2 = data.get(f"{path}-value2", "").strip()
    values = [v for v in data.getlist(f"{path}-values") if v]
    value = _value_from_form(kind, op, text, text2, values)
    if value is not None:
        rule["value"] = value
    return rule


def _value_from_form(kind: str, op: str, text: str, text2: str, values: list[str]) -> Any:
    """A field rule's value from its inputs (one or two text boxes, or a list of
    choices); None when there is none yet."""
    if kind == "text":
        if op == "in":
            return [v.strip() for v in text.split(",") if v.strip()] or None
        return text or None
    if kind == "number":
        if op == "between":
            return [_number(text), _number(text2)] if text or text2 else None
        return _number(text) if text else None
    if kind == "date":
        return _date_from_form(op, text, text2)
    if kind == "boolean":
        return {"true": True, "false": False}.get(text)
    if kind == "owner":
        if op == "in":
            return [int(v) for v in values if v.isdigit() and len(v) < 19] or None
        return int(text) if text.isdigit() and len(text) < 19 else None
    if op in ("in", "has_any", "has_all"):
        return values or None
    return text or None


def _date_from_form(op: str, text: str, text2: str) -> Any:
    if op in RELATIVE:
        return _number(text) if text else None
    if op == "between":
        return [text, text2] if text or text2 else None
    return text or None


def _activity_from_form(data: QueryDict, path: str) -> dict[str, Any]:
    activity = data.get(f"{path}-activity", "")
    chosen = activity if activity in COUNTABLE_TYPES else "page"
    rule: dict[str, Any] = {"activity": chosen if activity else ""}
    name = data.get(f"{path}-name", "").strip()
    if name:
        rule["name"] = name
    count_op = data.get(f"{path}-count_op", "gte")
    count_text = data.get(f"{path}-count", "").strip()
    rule["count"] = {
        "op": count_op if count_op in COUNT_OPERATORS else "gte",
        "value": _number(count_text) if count_text else None,
    }
    days = data.get(f"{path}-days", "").strip()
    if days:
        rule["within_days"] = _number(days)
    try:
        extra = json_loads_limited(data.get(f"{path}-extra") or "{}")
    except ValueError:
        extra = {}
    where = dict(extra.get("where") or {}) if isinstance(extra, dict) else {}
    url = data.get(f"{path}-url", "").strip()
    if url:
        where["url"] = {"op": "contains", "value": url}
    if where:
        rule["where"] = where
    if isinstance(extra, dict) and "between" in extra:
        rule["between"] = extra["between"]
    return rule


# --- editing the tree ------------------------------------------------------------------


def _find(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    parts = path.split("-")
    if parts[0] != ROOT:
        return None
    node: Any = tree
    for part in parts[1:]:
        kids = group_children(node) if isinstance(node, dict) else None
        if kids is None or not part.isdigit() or int(part) >= len(kids):
            return None
        node = kids[int(part)]
    return node if isinstance(node, dict) else None


def _new_node(verb: str) -> dict[str, Any]:
    """The child ``add-rule`` / ``add-activity`` / ``add-group`` adds: a copy, so
    that editing it never changes the templates."""
    if verb == "add-rule":
        return dict(NEW_RULE)
    if verb == "add-activity":
        return copy.deepcopy(NEW_ACTIVITY)
    return {"any": [dict(NEW_RULE)]}


def builder_apply(tree: dict[str, Any], action: str) -> dict[str, Any]:
    """``add-rule:<path>`` / ``add-group:<path>`` to a group, ``remove:<path>``;
    anything else (``refresh``) leaves the tree as it is."""
    verb, _sep, path = action.partition(":")
    if verb in ("add-rule", "add-activity", "add-group"):
        group = _find(tree, path)
        kids = group_children(group) if group is not None else None
        if kids is not None:
            kids.append(_new_node(verb))
    elif verb == "remove" and path != ROOT:
        parent_path, _sep, index = path.rpartition("-")
        parent = _find(tree, parent_path)
        kids = group_children(parent) if parent is not None else None
        if kids is not None and index.isdigit() and int(index) < len(kids):
            del kids[int(index)]
    return tree


# --- rendering the builder ---------------------------------------------------------------


@dataclass
class BuilderChoices:
    """Everything the rule rows offer, read once per render."""

    definitions: dict[str, FieldDefinition]
    categories: list[tuple[str, str]]
    owners: list[User]
    tags: list[str]
    segments: list[tuple[int, str]]
    event_names: dict[str, list[str]]

    def field_choices(self) -> list[tuple[str, list[tuple[str, str]]]]:
        standard = [(name, str(label)) for name, label in FIELD_LABELS.items()]
        scores = [
            (f"score.{key}", gettext("Score: %(category)s") % {"category": label})
            for key, label in self.categories
        ]
        custom = [(f"custom.{d.key}", d.label) for d in self.definitions.values()]
        groups = [(gettext("Lead"), standard)]
        if scores:
            groups.append((gettext("Score categories"), scores))
        if custom:
            groups.append((gettext("Custom fields"), custom))
        return groups


@dataclass
class BuilderNode:
    path: str
    kind: str
    depth: int = 0
    match: str = "all"
    children: list[BuilderNode] = field(default_factory=list)
    rule: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    invalid: set[str] = field(default_factory=set)
    # Field rules.
    field_name: str = ""
    known_field: bool = True
    op_choices: list[tuple[str, str]] = field(default_factory=list)
    input: str = "none"
    value: str = ""
    value2: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    selected: set[str] = field(default_factory=set)
    # Activity rules.
    count_op: str = "gte"
    count: str = ""
    days: str = ""
    url: str = ""
    extra: str = ""

    @property
    def value_invalid(self) -> bool:
        return "value" in self.invalid or "rule" in self.invalid

    @property
    def number(self) -> str:
        """The node's place for people: 1, 1.2, 1.2.1 (the root has none)."""
        return ".".join(str(int(p) + 1) for p in self.path.split("-")[1:])


def error_paths(errors: dict[str, list[str]]) -> dict[str, tuple[list[str], set[str]]]:
    """Schema error paths (``all[0].any[1].value``) as builder paths
    (``c-0-1``) with their messages and the parts that are wrong."""
    out: dict[str, tuple[list[str], set[str]]] = {}
    for path, messages in errors.items():
        indexes: list[str] = []
        rest = path
        while match := re.match(r"^\.?(?:all|any)\[(\d+)\]", rest):
            indexes.append(match[1])
            rest = rest[match.end() :]
        key = "-".join([ROOT, *indexes])
        found = out.setdefault(key, ([], set()))
        found[0].extend(messages)
        found[1].add(rest.lstrip(".").split(".")[0] or "rule")
    return out


def builder_nodes(
    tree: dict[str, Any], choices: BuilderChoices, errors: dict[str, list[str]] | None = None
) -> BuilderNode:
    """The view of ``tree`` the builder templates render."""
    marks = error_paths(errors or {})

    def node(rule: Any, path: str, depth: int) -> BuilderNode:
        messages, invalid = marks.get(path, ([], set()))
        if not isinstance(rule, dict):
            rule = dict(NEW_RULE)
        kids = group_children(rule)
        if kids is not None or path == ROOT:
            group = BuilderNode(
                path=path,
                kind="group",
                depth=depth,
                match="any" if "any" in rule else "all",
                errors=messages,
                invalid=invalid,
            )
            group.children = [
                node(child, f"{path}-{index}", depth + 1) for index, child in enumerate(kids or [])
            ]
            return group
        if "activity" in rule:
            return _activity_node(rule, path, depth, messages, invalid)
        if "segment" in rule:
            return BuilderNode(
                path=path,
                kind="segment",
                depth=depth,
                rule=rule,
                value=as_text(rule.get("segment")),
                errors=messages,
                invalid=invalid,
            )
        return _field_node(rule, path, depth, messages, invalid, choices)

    return node(tree, ROOT, 0)


def _activity_node(
    rule: dict[str, Any], path: str, depth: int, messages: list[str], invalid: set[str]
) -> BuilderNode:
    count = rule.get("count") if isinstance(rule.get("count"), dict) else {}
    where = dict(rule.get("where") or {}) if isinstance(rule.get("where"), dict) else {}
    url = where.get("url")
    url_text = ""
    if isinstance(url, dict) and url.get("op") == "contains" and isinstance(url.get("value"), str):
        url_text = url["value"]
        del where["url"]
    extra: dict[str, Any] = {}
    if where:
        extra["where"] = where
    if "between" in rule:
        extra["between"] = rule["between"]
    return BuilderNode(
        path=path,
        kind="activity",
        depth=depth,
        rule=rule,
        value=as_text(rule.get("activity")),
        value2=as_text(rule.get("name")),
        count_op=as_text(count.get("op", "gte")) if count else "gte",
        count=as_text(count.get("value", 1)) if count else "1",
        days=as_text(rule.get("within_days")),
        url=url_text,
        extra=json.dumps(extra) if extra else "",
        errors=messages,
        invalid=invalid,
    )


def _field_node(
    rule: dict[str, Any],
    path: str,
    depth: int,
    messages: list[str],
    invalid: set[str],
    choices: BuilderChoices,
) -> BuilderNode:
    name = as_text(rule.get("field"))
    kind = field_kind(name, choices.definitions)
    op = as_text(rule.get("op"))
    value = rule.get("value")
    result = BuilderNode(
        path=path,
        kind="field",
        depth=depth,
        rule=rule,
        field_name=name,
        known_field=kind is not None,
        errors=messages,
        invalid=invalid,
    )
    if kind is None:
        result.op_choices = [(op, op)]
        return result
    result.op_choices = [(o, str(OP_LABELS[o])) for o in OPERATORS[kind]]
    if op in NO_VALUE:
        return result
    pair = value if isinstance(value, list) else [value, None]
    listed = value if isinstance(value, list) else [] if value is None else [value]
    if kind == "text":
        result.input = "list" if op == "in" else "text"
        result.value = ", ".join(map(as_text, listed)) if op == "in" else as_text(value)
    elif kind == "number":
        result.input = "number_range" if op == "between" else "number"
        if op == "between":
            result.value, result.value2 = (
                as_text(pair[0]),
                as_text(pair[1] if len(pair) > 1 else None),
            )
        else:
            result.value = as_text(value)
    elif kind == "date":
        if op in RELATIVE:
            result.input, result.value = "days", as_text(value)
        elif op == "between":
            result.input = "date_range"
            result.value, result.value2 = (
                as_text(pair[0]),
                as_text(pair[1] if len(pair) > 1 else None),
            )
        else:
            result.input, result.value = "date", as_text(value)
    elif kind == "boolean":
        result.input = "select"
        result.options = [("true", gettext("yes")), ("false", gettext("no"))]
        result.value = as_text(value)
    else:
        result.options = _options(name, kind, choices)
        multiple = op in ("in", "has_any", "has_all")
        result.input = "multiselect" if multiple else "select"
        result.selected = {as_text(v) for v in listed}
        result.value = as_text(value) if not multiple else ""
        known = {v for v, _label in result.options}
        # A value the lists no longer hold (a deleted tag, a former user) stays.
        for missing in sorted((result.selected | {result.value}) - known - {""}):
            result.options.append((missing, missing))
    return result


def _options(name: str, kind: str, choices: BuilderChoices) -> list[tuple[str, str]]:
    if kind == "owner":
        return [(str(u.pk), person_name(u)) for u in choices.owners]
    if kind == "tags":
        return [(t, t) for t in choices.tags]
    if name == "stage":
        return [(str(v), str(label)) for v, label in Stage.choices]
    if name in CHOICE_LABELS:
        return [(value, str(label)) for value, label in CHOICE_LABELS[name].items()]
    definition = choices.definitions.get(name[7:]) if name.startswith("custom.") else None
    if definition is not None and definition.type == FieldType.CHOICE:
        return [(str(o), str(o)) for o in definition.options]
    return []


def activity_types_in(tree: Any) -> set[str]:
    """The activity types a tree's activity rules name."""
    return {r["activity"] for r in rules_in(tree) if r.get("activity") in COUNTABLE_TYPES}

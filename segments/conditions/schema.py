"""The shape of a condition tree, and its validation.

A tree is a group, ``{"all": [...]}`` or ``{"any": [...]}``, of rules and groups,
nested to any depth. Rules:

- field: ``{"field": "job_title", "op": "contains", "value": "CEO"}``; custom
  fields as ``"custom.<key>"``; ``owner`` takes user ids; ``tags`` takes names;
  ``score``, ``score.<category>`` and ``grade`` (cold, warm, hot),
  ``fit_grade`` (A to D) and ``engagement_grade`` (1 to 4).
- activity: ``{"activity": "page", "name": "...", "where": {"url": {"op":
  "contains", "value": "/pricing"}}, "count": {"op": "gte", "value": 2},
  "within_days": 30}`` (or ``"between": ["2026-01-01", "2026-03-31"]``; neither
  means ever). ``count`` defaults to at least once; ``{"op": "eq", "value": 0}``
  is "has not".
- segment: ``{"segment": 12, "op": "in"}`` or ``"not_in"``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from core.vocabulary import COUNTABLE_TYPES, EngagementGrade, FitGrade, Grade
from leads.models import ConsentState, FieldDefinition, FieldType, LeadSource, Stage
from leads.services.partitions import event_retention_days
from scoring.models import ScoreCategory

FIELD_TYPES: dict[str, str] = {
    "email": "text",
    "external_id": "text",
    "first_name": "text",
    "last_name": "text",
    "phone": "text",
    "job_title": "text",
    "company_name": "text",
    "industry": "text",
    "country": "text",
    "city": "text",
    "company_size": "number",
    "stage": "choice",
    "unsubscribed": "boolean",
    "created_at": "date",
    "updated_at": "date",
    "last_activity_at": "date",
    "owner": "owner",
    "tags": "tags",
    "score": "number",
    "grade": "choice",
    "fit_grade": "choice",
    "engagement_grade": "choice",
    "source": "choice",
    "consent_state": "choice",
}
# Choice columns stored blank ("") when unknown: blank counts as not set.
BLANK_CHOICE_FIELDS = ("source",)
WHOLE_NUMBER_FIELDS = ("company_size", "score")
OPERATORS: dict[str, tuple[str, ...]] = {
    "text": (
        "is",
        "is_not",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "in",
        "is_set",
        "is_not_set",
    ),
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"),
    "date": (
        "before",
        "after",
        "on",
        "between",
        "in_last_days",
        "more_than_days_ago",
        "in_next_days",
        "is_set",
        "is_not_set",
    ),
    "boolean": ("is",),
    "choice": ("is", "is_not", "in", "is_set", "is_not_set"),
    "owner": ("is", "is_not", "in", "is_set", "is_not_set"),
    "tags": ("has", "has_not", "has_any", "has_all"),
}
# Operators on event properties (``where``).
PROPERTY_OPERATORS = (
    "is",
    "is_not",
    "contains",
    "starts_with",
    "ends_with",
    "gt",
    "gte",
    "lt",
    "lte",
)
COUNT_OPERATORS = ("gte", "lte", "eq")
NO_VALUE = ("is_set", "is_not_set")
RELATIVE = ("in_last_days", "more_than_days_ago", "in_next_days")
PROPERTY_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
MAX_DEPTH = 10
MAX_RULES = 200
MAX_DAYS = 36_500


class ConditionError(ValueError):
    """A bad tree; ``fields`` maps the path of each bad rule to its messages."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("; ".join(f"{p}: {' '.join(m)}" for p, m in fields.items()))
        self.fields = fields


class _Checker:
    def __init__(self, definitions: dict[str, FieldDefinition], segment_ids: set[int] | None):
        self.definitions = definitions
        self.segment_ids = segment_ids
        self.errors: dict[str, list[str]] = {}
        self.rules = 0

    def fail(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def node(self, node: Any, path: str, depth: int) -> None:
        if not isinstance(node, dict):
            self.fail(path, gettext("Expected an object: a group or a rule."))
            return
        if "all" in node or "any" in node:
            self.group(node, path, depth)
        elif "field" in node:
            self.field_rule(node, path)
        elif "activity" in node:
            self.activity_rule(node, path)
        elif "segment" in node:
            self.segment_rule(node, path)
        else:
            self.fail(
                path, gettext("Expected a group (all / any) or a field, activity or segment rule.")
            )

    def group(self, node: dict[str, Any], path: str, depth: int) -> None:
        keys = set(node)
        if len(keys & {"all", "any"}) != 1 or keys - {"all", "any"}:
            self.fail(path, gettext("A group has exactly one key: all or any."))
            return
        key = "all" if "all" in node else "any"
        children = node[key]
        if depth > MAX_DEPTH:
            self.fail(path, gettext("Groups nest at most %(depth)s deep.") % {"depth": MAX_DEPTH})
            return
        if not isinstance(children, list):
            self.fail(f"{path}.{key}" if path else key, gettext("Expected a list of rules."))
            return
        for index, child in enumerate(children):
            prefix = f"{path}.{key}" if path else key
            self.node(child, f"{prefix}[{index}]", depth + 1)

    def count_rule(self, path: str) -> bool:
        self.rules += 1
        if self.rules > MAX_RULES:
            if self.rules == MAX_RULES + 1:
                self.fail(
                    path, gettext("A tree holds at most %(count)s rules.") % {"count": MAX_RULES}
                )
            return False
        return True

    def field_rule(self, node: dict[str, Any], path: str) -> None:
        if not self.count_rule(path):
            return
        unknown = set(node) - {"field", "op", "value"}
        if unknown:
            self.fail(path, _unknown_keys(unknown))
        name = node.get("field")
        kind = field_type(name, self.definitions) if isinstance(name, str) else None
        if kind is None:
            self.fail(
                f"{path}.field",
                (
                    gettext("There is no field called “%(name)s”.") % {"name": name}
                    if isinstance(name, str) and name
                    else gettext("Choose a field.")
                ),
            )
            return
        op = node.get("op")
        if op not in OPERATORS[kind]:
            self.fail(
                f"{path}.op",
                gettext("Choose how to compare this field.")
                if op in ("", None)
                else gettext("“%(op)s” does not work with this field; choose one of: %(ops)s.")
                % {"op": op, "ops": _operator_words(OPERATORS[kind])},
            )
            return
        if op in NO_VALUE:
            if node.get("value") is not None:
                self.fail(f"{path}.value", gettext("This comparison takes no value."))
            return
        if "value" not in node:
            self.fail(f"{path}.value", gettext("Enter a value."))
            return
        message = value_problem(kind, op, node["value"], str(name), self.definitions)
        if message:
            self.fail(f"{path}.value", message)

    def activity_rule(self, node: dict[str, Any], path: str) -> None:
        if not self.count_rule(path):
            return
        unknown = set(node) - {"activity", "name", "where", "count", "within_days", "between"}
        if unknown:
            self.fail(path, _unknown_keys(unknown))
        if node.get("activity") in ("", None):
            self.fail(f"{path}.activity", gettext("Choose an activity."))
        elif node.get("activity") not in COUNTABLE_TYPES:
            self.fail(f"{path}.activity", gettext("Choose an activity from the list."))
        if "name" in node and not (isinstance(node["name"], str) and node["name"]):
            self.fail(f"{path}.name", gettext("Enter some text."))
        where = node.get("where", {})
        if not isinstance(where, dict):
            self.fail(f"{path}.where", gettext("Expected an object of property filters."))
        else:
            for prop, test in where.items():
                self.property_filter(prop, test, f"{path}.where.{prop}")
        if _bad_count(node.get("count", {"op": "gte", "value": 1})):
            self.fail(
                f"{path}.count",
                gettext("Choose how many times: at least, at most or exactly a whole number."),
            )
        self.activity_window(node, path)

    def activity_window(self, node: dict[str, Any], path: str) -> None:
        """The days an activity rule counts in: the last ``within_days``, or the
        dates ``between``, or (neither) all time."""
        problems = sum(len(messages) for messages in self.errors.values())
        if "within_days" in node and "between" in node:
            self.fail(
                path,
                gettext("Use %(first)s or %(second)s, not both.")
                % {"first": "within_days", "second": "between"},
            )
        if "within_days" in node:
            days = node["within_days"]
            if not _is_int(days) or not 1 <= days <= MAX_DAYS:
                self.fail(
                    f"{path}.within_days",
                    gettext("Enter a whole number of days from 1 to %(max)s.") % {"max": MAX_DAYS},
                )
        if "between" in node:
            problem = value_problem("date", "between", node["between"], "between", {})
            if problem:
                self.fail(f"{path}.between", problem)
        window_ok = sum(len(messages) for messages in self.errors.values()) == problems
        if settings.EVENT_RETENTION_MONTHS and window_ok:
            self.retention_window(node, path, settings.EVENT_RETENTION_MONTHS)

    def retention_window(self, node: dict[str, Any], path: str, months: int) -> None:
        """With retention set, older events are gone: a rule that counts further
        back would count less than it says, so it is refused."""
        days = event_retention_days(months)
        kept = ngettext(
            "Events are kept for %(months)s month.",
            "Events are kept for %(months)s months.",
            months,
        ) % {"months": months}
        if "within_days" in node:
            if node["within_days"] > days:
                self.fail(
                    f"{path}.within_days",
                    kept
                    + " "
                    + gettext("Count in the last %(days)s days at most.") % {"days": days},
                )
        elif "between" in node:
            earliest = timezone.localdate() - dt.timedelta(days=days)
            start = parse_date(node["between"][0])
            if start is not None and start < earliest:
                self.fail(
                    f"{path}.between",
                    kept
                    + " "
                    + gettext("Choose dates from %(date)s on.") % {"date": earliest.isoformat()},
                )
        else:
            self.fail(
                path,
                kept
                + " "
                + gettext(
                    "A rule cannot count them ever: count them in the last %(days)s days at most."
                )
                % {"days": days},
            )

    def property_filter(self, prop: Any, test: Any, path: str) -> None:
        if not isinstance(prop, str) or not PROPERTY_NAME.match(prop):
            self.fail(path, gettext("A property name is 1 to 64 letters, digits, - or _."))
            return
        if not isinstance(test, dict) or set(test) != {"op", "value"}:
            self.fail(path, gettext("Expected %(shape)s.") % {"shape": '{"op": ..., "value": ...}'})
            return
        op, value = test["op"], test["value"]
        if op not in PROPERTY_OPERATORS:
            self.fail(f"{path}.op", _expected_one_of(PROPERTY_OPERATORS))
        elif op in ("gt", "gte", "lt", "lte"):
            if not _is_number(value):
                self.fail(f"{path}.value", gettext("Enter a number."))
        elif op in ("contains", "starts_with", "ends_with"):
            if not isinstance(value, str) or not value:
                self.fail(f"{path}.value", gettext("Enter some text."))
        elif not isinstance(value, str | int | float | bool) or value is None:
            self.fail(f"{path}.value", gettext("Expected a string, number or boolean."))

    def segment_rule(self, node: dict[str, Any], path: str) -> None:
        if not self.count_rule(path):
            return
        unknown = set(node) - {"segment", "op"}
        if unknown:
            self.fail(path, _unknown_keys(unknown))
        segment = node.get("segment")
        if not _is_int(segment):
            self.fail(f"{path}.segment", gettext("Choose a segment."))
        elif self.segment_ids is not None and segment not in self.segment_ids:
            self.fail(f"{path}.segment", gettext("The chosen segment does not exist any more."))
        if node.get("op") not in ("in", "not_in"):
            self.fail(
                f"{path}.op",
                gettext("Choose “in the segment” or “not in the segment”."),
            )


def _operator_words(ops: tuple[str, ...] | list[str]) -> str:
    from segments.conditions.words import OP_LABELS  # words reads this module

    return ", ".join(f"“{OP_LABELS.get(op, op)}”" for op in ops)


def _unknown_keys(keys: set[str]) -> str:
    return gettext("Unknown keys: %(keys)s.") % {"keys": ", ".join(sorted(keys))}


def _expected_one_of(options: tuple[str, ...]) -> str:
    return gettext("Expected one of: %(options)s.") % {"options": ", ".join(options)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_date(value: Any) -> dt.date | None:
    """A rule's date, within the years rules can compute with (a day before and
    after must exist)."""
    if not isinstance(value, str):
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return day if 1900 <= day.year <= 9000 else None


def field_type(name: str, definitions: dict[str, FieldDefinition]) -> str | None:
    if name in FIELD_TYPES:
        return FIELD_TYPES[name]
    if name.startswith("score."):
        return "number" if ScoreCategory.objects.filter(key=name[6:]).exists() else None
    if name.startswith("custom."):
        definition = definitions.get(name[7:])
        return str(definition.type) if definition is not None else None
    return None


def value_problem(
    kind: str, op: str, value: Any, name: str, definitions: dict[str, FieldDefinition]
) -> str | None:
    """Why ``value`` does not fit ``op`` on a field of ``kind``, or None."""
    if kind == "text":
        return _text_problem(op, value)
    if kind == "number":
        return _number_problem(op, value, name)
    if kind == "date":
        return _date_problem(op, value)
    if kind == "boolean":
        return None if isinstance(value, bool) else gettext("Choose yes or no.")
    if kind == "choice":
        return _choice_problem(op, value, _choice_options(name, definitions))
    if kind == "owner":
        return _owner_problem(op, value)
    if kind == "tags":
        return _tags_problem(op, value)
    return gettext("Unknown field type %(kind)s.") % {"kind": repr(kind)}


def _text_problem(op: str, value: Any) -> str | None:
    if op == "in":
        ok = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        return None if ok else gettext("Enter at least one value.")
    if isinstance(value, str) and value != "":
        return None
    return gettext("Enter some text.")


def _number_problem(op: str, value: Any, name: str) -> str | None:
    # Whole-number columns compare with whole numbers only (2.5 would be cut to 2).
    whole = name in WHOLE_NUMBER_FIELDS or name.startswith("score.")
    check = _is_int if whole else _is_number
    if op == "between":
        ok = isinstance(value, list) and len(value) == 2 and all(map(check, value))
        if not ok:
            if whole:
                return gettext("Enter two whole numbers, the lower one first.")
            return gettext("Enter two numbers, the lower one first.")
        if value[0] > value[1]:
            return gettext("The first number is larger than the second.")
        return None
    if check(value):
        return None
    return gettext("Enter a whole number.") if whole else gettext("Enter a number.")


def _date_problem(op: str, value: Any) -> str | None:
    if op in RELATIVE:
        ok = _is_int(value) and 0 <= value <= MAX_DAYS
        if ok:
            return None
        return gettext("Enter a whole number of days from 0 to %(max)s.") % {"max": MAX_DAYS}
    if op == "between":
        if not (isinstance(value, list) and len(value) == 2):
            return gettext("Choose a first and a last day.")
        first, last = parse_date(value[0]), parse_date(value[1])
        if first is None or last is None:
            return gettext("Choose a first and a last day.")
        return None if first <= last else gettext("The first day is after the last day.")
    if parse_date(value):
        return None
    return gettext("Choose a date between the years 1900 and 9000.")


def _choice_problem(op: str, value: Any, options: list[str]) -> str | None:
    values = value if op == "in" else [value]
    if op == "in" and (not isinstance(value, list) or not value):
        return gettext("Choose at least one option.")
    bad = [v for v in values if v not in options]
    return gettext("Choose from: %(options)s.") % {"options": ", ".join(options)} if bad else None


def _owner_problem(op: str, value: Any) -> str | None:
    if op == "in":
        ok = isinstance(value, list) and value and all(map(_is_int, value))
        return None if ok else gettext("Choose at least one person.")
    return None if _is_int(value) else gettext("Choose a person.")


def _tags_problem(op: str, value: Any) -> str | None:
    if op in ("has", "has_not"):
        return None if isinstance(value, str) and value else gettext("Enter a tag.")
    ok = isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
    return None if ok else gettext("Enter at least one tag.")


def _bad_count(count: Any) -> bool:
    """Whether an activity rule's ``count`` is not ``{"op": ..., "value": n}``
    with a known op and a whole n ≥ 0."""
    return bool(
        not isinstance(count, dict)
        or count.get("op") not in COUNT_OPERATORS
        or not _is_int(count.get("value"))
        or count["value"] < 0
        or set(count) - {"op", "value"}
    )


def _choice_options(name: str, definitions: dict[str, FieldDefinition]) -> list[str]:
    if name == "stage":
        return list(Stage.values)
    if name == "grade":
        return list(Grade.values)
    if name == "fit_grade":
        return list(FitGrade.values)
    if name == "engagement_grade":
        return list(EngagementGrade.values)
    if name == "source":
        return list(LeadSource.values)
    if name == "consent_state":
        return list(ConsentState.values)
    definition = definitions.get(name[7:]) if name.startswith("custom.") else None
    return list(definition.options) if definition and definition.type == FieldType.CHOICE else []


def validate(tree: Any, *, segment_ids: set[int] | None = None) -> dict[str, Any]:
    """Return ``tree`` if it is a valid condition tree, else raise ConditionError.

    ``segment_ids``, when given, are the segments a segment rule may name.
    """
    definitions = {d.key: d for d in FieldDefinition.objects.all()}
    checker = _Checker(definitions, segment_ids)
    if not isinstance(tree, dict) or not ("all" in tree or "any" in tree):
        checker.fail(
            "",
            gettext("The root is a group: %(all)s or %(any)s.")
            % {"all": '{"all": [...]}', "any": '{"any": [...]}'},
        )
        raise ConditionError(checker.errors)
    checker.node(tree, "", 0)
    if checker.errors:
        raise ConditionError(checker.errors)
    return tree


def _rules(tree: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if "all" in node or "any" in node:
            stack.extend(node.get("all", node.get("any", [])))
        else:
            out.append(node)
    return out


def referenced_segments(tree: dict[str, Any]) -> set[int]:
    return {rule["segment"] for rule in _rules(tree) if "segment" in rule}


def is_time_relative(tree: dict[str, Any]) -> bool:
    """Whether membership can change with time alone (needs periodic refresh)."""
    for rule in _rules(tree):
        if "activity" in rule and "within_days" in rule:
            return True
        if "field" in rule and rule.get("op") in RELATIVE:
            return True
    return False


def dependencies(tree: dict[str, Any]) -> set[str]:
    """What a change must touch to possibly change the tree's outcome for a lead:
    ``field:<name>``, ``activity:<type>``, ``segment:<id>``."""
    keys: set[str] = set()
    for rule in _rules(tree):
        if "field" in rule:
            keys.add(f"field:{rule['field']}")
        elif "activity" in rule:
            keys.add(f"activity:{rule['activity']}")
        elif "segment" in rule:
            keys.add(f"segment:{rule['segment']}")
    return keys

"""A plain-Python reading of the condition-tree semantics, to check the compiler by.

It works on values read back from the rows (dicts, lists, sets) and never builds a
query, so when it disagrees with ``compile_tree`` one of the two has the semantics
wrong. The rules it follows are the ones the compiler's module docstring states:
text comparisons ignore case; a missing value fails every positive test and passes
its negation; absolute dates compare by UTC day; relative ranges are measured from
``now``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

# Kept apart from the schema's table so that a field added there without a thought
# for its semantics makes the property test fail instead of being guessed at.
STANDARD_FIELDS: dict[str, str] = {
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
SUPPORTED_OPERATORS: dict[str, frozenset[str]] = {
    "text": frozenset(
        {
            "is",
            "is_not",
            "contains",
            "not_contains",
            "starts_with",
            "ends_with",
            "in",
            "is_set",
            "is_not_set",
        }
    ),
    "number": frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"}),
    "date": frozenset(
        {
            "before",
            "after",
            "on",
            "between",
            "in_last_days",
            "more_than_days_ago",
            "in_next_days",
            "is_set",
            "is_not_set",
        }
    ),
    "boolean": frozenset({"is"}),
    "choice": frozenset({"is", "is_not", "in", "is_set", "is_not_set"}),
    "owner": frozenset({"is", "is_not", "in", "is_set", "is_not_set"}),
    "tags": frozenset({"has", "has_not", "has_any", "has_all"}),
}
SUPPORTED_PROPERTY_OPERATORS = frozenset(
    {"is", "is_not", "contains", "starts_with", "ends_with", "gt", "gte", "lt", "lte"}
)
# The operators a missing value passes: each is the negation of a positive test.
NEGATIONS = frozenset({"is_not", "not_contains", "ne", "has_not", "is_not_set"})


def evaluate(
    tree: Mapping[str, Any],
    lead: Mapping[str, Any],
    events: Iterable[Mapping[str, Any]],
    tags: set[str],
    memberships: set[int],
    now: dt.datetime,
    *,
    custom_types: Mapping[str, str] | None = None,
) -> bool:
    """Whether ``lead`` matches ``tree``.

    ``lead`` holds the standard fields by name (``owner`` as a user id or None),
    ``custom_fields`` and ``category_scores`` (category key to points); ``events``
    are the lead's events as dicts with ``type``, ``name``, ``properties`` and
    ``occurred_at``; ``tags`` are tag names; ``memberships`` the ids of the
    segments the lead is in now. ``custom_types`` maps each custom field key to its
    type; only trees with custom field rules need it.
    """
    return _Evaluation(lead, list(events), tags, memberships, now, custom_types or {}).node(tree)


class _Evaluation:
    def __init__(
        self,
        lead: Mapping[str, Any],
        events: list[Mapping[str, Any]],
        tags: set[str],
        memberships: set[int],
        now: dt.datetime,
        custom_types: Mapping[str, str],
    ):
        self.lead = lead
        self.events = events
        self.tags = tags
        self.memberships = memberships
        self.now = now.astimezone(dt.UTC)
        self.today = self.now.date()
        self.custom_types = custom_types

    def node(self, node: Mapping[str, Any]) -> bool:
        if "all" in node:
            return all(self.node(child) for child in node["all"])
        if "any" in node:
            return any(self.node(child) for child in node["any"])
        if "field" in node:
            return self.field(node["field"], node["op"], node.get("value"))
        if "activity" in node:
            return self.activity(node)
        if node["op"] == "in":
            return node["segment"] in self.memberships
        return node["segment"] not in self.memberships

    # --- field rules -------------------------------------------------------------
    def field(self, name: str, op: str, value: Any) -> bool:
        if name == "tags":
            return tags_match(op, value, self.tags)
        custom = name.startswith("custom.")
        kind, stored, missing = self.stored(name)
        if op not in SUPPORTED_OPERATORS[kind]:
            raise ValueError(f"No operator {op!r} for {kind} fields.")
        if op == "is_set":
            return not missing
        if op == "is_not_set":
            return missing
        if missing:
            return op in NEGATIONS
        if kind == "text":
            return text_match(op, value, stored)
        if kind == "number":
            return number_match(op, value, stored)
        if kind == "date":
            if custom:
                return self.day_match(op, value, dt.date.fromisoformat(stored))
            return self.moment_match(op, value, stored)
        if kind == "boolean":
            return isinstance(stored, bool) and stored is value
        # Choice values and owner ids are identifiers, compared exactly, not as text.
        if op == "in":
            return stored in value
        return (stored == value) == (op == "is")

    def stored(self, name: str) -> tuple[str, Any, bool]:
        """(the field's kind, the lead's value, whether it counts as unset)."""
        if name.startswith("score."):
            # A category the lead has no points in counts as 0 points, not unset.
            return "number", self.lead["category_scores"].get(name.removeprefix("score."), 0), False
        if name.startswith("custom."):
            key = name.removeprefix("custom.")
            stored = self.lead["custom_fields"].get(key)
            # Custom values are JSON: an empty string is as unset as an absent key,
            # whatever the field's type.
            return self.custom_types[key], stored, stored is None or stored == ""
        kind = STANDARD_FIELDS[name]
        stored = self.lead[name]
        # Text, and the one choice stored blank when unknown (the source): an
        # empty string is unset.
        blank = kind == "text" or name == "source"
        return kind, stored, stored is None or (blank and stored == "")

    def day_match(self, op: str, value: Any, day: dt.date) -> bool:
        """Custom dates are days, so relative ranges count whole days from today."""
        if op in ("in_last_days", "more_than_days_ago", "in_next_days"):
            days = dt.timedelta(days=value)
            if op == "in_last_days":
                return self.today - days <= day <= self.today
            if op == "more_than_days_ago":
                return day < self.today - days
            return self.today <= day <= self.today + days
        return absolute_day_match(op, value, day)

    def moment_match(self, op: str, value: Any, moment: dt.datetime) -> bool:
        """Date-time fields: relative ranges are moments measured from now, both ends
        included; absolute ones compare the UTC day."""
        if op in ("in_last_days", "more_than_days_ago", "in_next_days"):
            days = dt.timedelta(days=value)
            if op == "in_last_days":
                return self.now - days <= moment <= self.now
            if op == "more_than_days_ago":
                return moment < self.now - days
            return self.now <= moment <= self.now + days
        return absolute_day_match(op, value, moment.astimezone(dt.UTC).date())

    # --- activity rules ----------------------------------------------------------
    def activity(self, rule: Mapping[str, Any]) -> bool:
        where: Mapping[str, Mapping[str, Any]] = rule.get("where", {})
        matching = [
            event
            for event in self.events
            if event["type"] == rule["activity"]
            and ("name" not in rule or event["name"] == rule["name"])
            and all(
                property_match(test["op"], test["value"], event["properties"], prop)
                for prop, test in where.items()
            )
            and self.in_window(rule, event["occurred_at"])
        ]
        count = rule.get("count", {"op": "gte", "value": 1})
        if count["op"] == "gte":
            return len(matching) >= count["value"]
        if count["op"] == "lte":
            return len(matching) <= count["value"]
        return len(matching) == count["value"]

    def in_window(self, rule: Mapping[str, Any], occurred_at: dt.datetime) -> bool:
        if "within_days" in rule:
            # Only the start of the window is bounded: an event stamped a little in
            # the future (a sender's clock running fast) still counts as recent.
            return occurred_at >= self.now - dt.timedelta(days=rule["within_days"])
        if "between" in rule:
            first, last = (dt.date.fromisoformat(day) for day in rule["between"])
            return first <= occurred_at.astimezone(dt.UTC).date() <= last
        return True


def absolute_day_match(op: str, value: Any, day: dt.date) -> bool:
    if op == "between":
        first, last = (dt.date.fromisoformat(v) for v in value)
        return first <= day <= last
    other = dt.date.fromisoformat(value)
    if op == "before":
        return day < other
    if op == "after":
        return day > other
    return day == other


def text_match(op: str, value: Any, stored: str) -> bool:
    text = stored.lower()
    if op == "in":
        return text in {item.lower() for item in value}
    needle = value.lower()
    if op in ("is", "is_not"):
        return (text == needle) == (op == "is")
    if op in ("contains", "not_contains"):
        return (needle in text) == (op == "contains")
    if op == "starts_with":
        return text.startswith(needle)
    return text.endswith(needle)


def number_match(op: str, value: Any, stored: float) -> bool:
    if op == "between":
        return value[0] <= stored <= value[1]
    return {
        "eq": stored == value,
        "ne": stored != value,
        "gt": stored > value,
        "gte": stored >= value,
        "lt": stored < value,
        "lte": stored <= value,
    }[op]


def tags_match(op: str, value: Any, tags: set[str]) -> bool:
    if op == "has":
        return value in tags
    if op == "has_not":
        return value not in tags
    if op == "has_any":
        return any(name in tags for name in value)
    return all(name in tags for name in value)


def property_match(op: str, value: Any, properties: Mapping[str, Any], prop: str) -> bool:
    """One ``where`` filter on an event's properties. A missing (absent or null)
    property fails every test but ``is_not``; a property of another JSON type than
    the filter's value does not equal it, and numeric comparisons need a number."""
    stored = properties.get(prop)
    if stored is None:
        return op == "is_not"
    if op in ("gt", "gte", "lt", "lte"):
        if not _is_number(stored):
            return False
        return number_match(op, value, stored)
    if isinstance(value, str):
        if not isinstance(stored, str):
            return op == "is_not"
        return text_match(op, value, stored)
    same = type(stored) is type(value) or (_is_number(stored) and _is_number(value))
    equal = same and stored == value
    return equal == (op == "is")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

"""A rule's truth on values held in memory, with the compiler's semantics.

The dry run of a flow decides in Python the rules on what earlier steps would
change (a score, a tag, a field), since those changes are never written; the
rest still goes to the compiler. Both must agree, which a property test checks
(tests/flows/test_dry_run.py). The semantics are the compiler's (see its module
docstring): a missing value (None, or "" for text) fails every positive test and
passes its negation; text compares without case; a lead with no points in a
category has 0 there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.db.models import Q

from segments.conditions.compiler import FALSE, TRUE, Compiler

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def number_truth(current: Any, op: str, value: Any) -> bool:
    """A number rule on ``current`` (None: missing)."""
    present = current is not None
    if op in ("is_set", "is_not_set"):
        return present == (op == "is_set")
    if not present:
        return op == "ne"
    if op == "between":
        return bool(value[0] <= current <= value[1])
    return _COMPARE[op](current, value)


def text_truth(current: Any, op: str, value: Any) -> bool:
    """A text rule on ``current`` (None or "": missing); case is ignored."""
    present = current is not None and current != ""
    if op in ("is_set", "is_not_set"):
        return present == (op == "is_set")
    if not present:
        return op in ("is_not", "not_contains")
    got = str(current).lower()
    if op == "in":
        return got in {item.lower() for item in value}
    wanted = str(value).lower()
    holds = {
        "is": got == wanted,
        "is_not": got != wanted,
        "contains": wanted in got,
        "not_contains": wanted not in got,
        "starts_with": got.startswith(wanted),
        "ends_with": got.endswith(wanted),
    }
    return holds[op]


def choice_truth(current: Any, op: str, value: Any) -> bool:
    """A choice rule (stage, grade, owner, a custom choice) on ``current``."""
    if op in ("is_set", "is_not_set"):
        return (current is not None) == (op == "is_set")
    if op == "is":
        return current is not None and current == value
    if op == "is_not":
        return current is None or current != value
    return current is not None and current in value


def tags_truth(tags: set[str], op: str, value: Any) -> bool:
    """A tags rule on the lead's tag names (exact names, as stored)."""
    if op == "has":
        return value in tags
    if op == "has_not":
        return value not in tags
    if op == "has_any":
        return any(name in tags for name in value)
    return all(name in tags for name in value)


def boolean_truth(current: Any, op: str, value: Any) -> bool:
    """A yes/no rule: only a stored boolean equal to ``value`` holds."""
    return isinstance(current, bool) and current == value


TRUTHS: dict[str, Callable[[Any, str, Any], bool]] = {
    "number": number_truth,
    "text": text_truth,
    "choice": choice_truth,
    "owner": choice_truth,
    "tags": tags_truth,
    "boolean": boolean_truth,
}


def field_rule_truth(rule: dict[str, Any], current: Any, kind: str) -> bool:
    """A field rule on the value ``current`` of a field of ``kind`` (the schema's
    types: text, number, choice, boolean, owner, tags; dates are not decided in
    memory). ``current`` is what the lead holds: for tags, the set of names; for
    a category score, 0 when it has none."""
    return TRUTHS[kind](current, rule["op"], rule.get("value"))


def segment_rule_truth(rule: dict[str, Any], segments: set[int]) -> bool:
    """A segment rule on the ids of the segments the lead is in."""
    member = rule["segment"] in segments
    return member if rule["op"] == "in" else not member


def tree_truth(node: dict[str, Any], truths: dict[int, bool]) -> bool:
    """A tree's truth from its rules' (``truths``: by ``id()`` of each rule)."""
    if "all" in node:
        return all(tree_truth(child, truths) for child in node["all"])
    if "any" in node:
        return any(tree_truth(child, truths) for child in node["any"])
    return truths[id(node)]


class DecidedCompiler(Compiler):
    """The compiler, with some rules' truth already known (``decided``: by
    ``id()`` of the rule): those compile to true or false."""

    def __init__(self, now: dt.datetime, decided: dict[int, bool], *, per_lead: bool = True):
        super().__init__(now, per_lead=per_lead)
        self.decided = decided

    def node(self, node: dict[str, Any]) -> Q:
        if id(node) in self.decided:
            return TRUE if self.decided[id(node)] else FALSE
        return super().node(node)

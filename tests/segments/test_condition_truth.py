"""The in-memory truth of rules (segments.conditions.truth) on exact values; its
agreement with the compiler is property-tested in tests/flows/test_dry_run.py."""

import datetime as dt

import pytest

from segments.conditions.compiler import FALSE, TRUE
from segments.conditions.tree import rules_in
from segments.conditions.truth import (
    DecidedCompiler,
    boolean_truth,
    choice_truth,
    field_rule_truth,
    number_truth,
    segment_rule_truth,
    tags_truth,
    text_truth,
    tree_truth,
)


@pytest.mark.parametrize(
    ("current", "op", "value", "holds"),
    [
        (10, "eq", 10, True),
        (10, "ne", 10, False),
        (10, "gt", 9, True),
        (10, "gte", 10, True),
        (10, "lt", 10, False),
        (10, "lte", 10, True),
        (10, "between", [10, 20], True),
        (21, "between", [10, 20], False),
        (0, "is_set", None, True),
        (None, "is_set", None, False),
        (None, "is_not_set", None, True),
        # Missing fails every test but its negation.
        (None, "eq", 0, False),
        (None, "lt", 5, False),
        (None, "ne", 5, True),
    ],
)
def test_number_truth(current, op, value, holds):
    assert number_truth(current, op, value) is holds


@pytest.mark.parametrize(
    ("current", "op", "value", "holds"),
    [
        ("Co-CEO", "contains", "ceo", True),
        ("CEO", "is", "ceo", True),
        ("CEO", "is_not", "ceo", False),
        ("Head of Sales", "not_contains", "ceo", True),
        ("Head of Sales", "starts_with", "HEAD", True),
        ("Head of Sales", "ends_with", "sales", True),
        ("cto", "in", ["CEO", "CTO"], True),
        ("cfo", "in", ["CEO", "CTO"], False),
        ("", "is_set", None, False),
        ("x", "is_set", None, True),
        ("", "is_not_set", None, True),
        ("", "is", "", False),
        (None, "is_not", "ceo", True),
        (None, "not_contains", "ceo", True),
        ("", "contains", "", False),
    ],
)
def test_text_truth(current, op, value, holds):
    assert text_truth(current, op, value) is holds


@pytest.mark.parametrize(
    ("current", "op", "value", "holds"),
    [
        ("mql", "is", "mql", True),
        ("mql", "is_not", "mql", False),
        (None, "is", "mql", False),
        (None, "is_not", "mql", True),
        ("lead", "in", ["lead", "mql"], True),
        (None, "in", ["lead"], False),
        (3, "is_set", None, True),
        (None, "is_not_set", None, True),
    ],
)
def test_choice_truth(current, op, value, holds):
    assert choice_truth(current, op, value) is holds


def test_tags_truth_names_are_exact():
    tags = {"vip", "trial"}
    assert tags_truth(tags, "has", "vip") is True
    assert tags_truth(tags, "has", "VIP") is False
    assert tags_truth(tags, "has_not", "VIP") is True
    assert tags_truth(tags, "has_any", ["x", "trial"]) is True
    assert tags_truth(tags, "has_all", ["vip", "x"]) is False
    assert tags_truth(tags, "has_all", ["vip", "trial"]) is True
    assert tags_truth(set(), "has_all", []) is True


def test_boolean_truth_needs_a_stored_boolean():
    assert boolean_truth(True, "is", True) is True
    assert boolean_truth(False, "is", True) is False
    assert boolean_truth("true", "is", True) is False
    assert boolean_truth(None, "is", False) is False


def test_field_rule_truth_by_kind_and_segment_rules():
    assert field_rule_truth({"field": "score", "op": "gte", "value": 15}, 17, "number") is True
    assert field_rule_truth({"field": "owner", "op": "is_not", "value": 3}, None, "owner") is True
    assert field_rule_truth({"field": "tags", "op": "has", "value": "vip"}, {"vip"}, "tags") is True
    assert field_rule_truth({"field": "job_title", "op": "is_set"}, "", "text") is False
    assert segment_rule_truth({"segment": 12, "op": "in"}, {12, 13}) is True
    assert segment_rule_truth({"segment": 12, "op": "not_in"}, {12, 13}) is False
    assert segment_rule_truth({"segment": 14, "op": "not_in"}, {12, 13}) is True


def test_leaves_and_tree_truth():
    a = {"field": "score", "op": "gte", "value": 1}
    b = {"segment": 3, "op": "in"}
    c = {"activity": "page", "within_days": 7}
    tree = {"all": [a, {"any": [b, c]}]}

    assert rules_in(tree) == [a, b, c]
    assert tree_truth(tree, {id(a): True, id(b): False, id(c): True}) is True
    assert tree_truth(tree, {id(a): True, id(b): False, id(c): False}) is False
    assert tree_truth({"all": []}, {}) is True
    assert tree_truth({"any": []}, {}) is False


def test_decided_rules_compile_to_their_truth():
    a = {"field": "score", "op": "gte", "value": 1}
    b = {"field": "score", "op": "lt", "value": 1}
    compiler = DecidedCompiler(dt.datetime(2026, 3, 2, tzinfo=dt.UTC), {id(a): True, id(b): False})

    assert compiler.node(a) == TRUE
    assert compiler.node(b) == FALSE
    assert compiler.node({"field": "score", "op": "gte", "value": 1}) not in (TRUE, FALSE)

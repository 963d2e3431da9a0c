"""The segment rule on where a lead came from (``source``): a choice, and a
lead whose source is not known yet (stored blank) counts as not set."""

from __future__ import annotations

import pytest

from leads.models import Lead
from segments.conditions import ConditionError, compile_tree, validate
from segments.conditions.words import rule_words
from segments.names import Names
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people() -> dict[str, Lead]:
    return {
        "paid": LeadFactory.create(source="paid", source_detail="google / cpc"),
        "fair": LeadFactory.create(source="event"),
        "unknown": LeadFactory.create(source=""),
    }


def _matching(tree: dict, people: dict[str, Lead]) -> list[str]:
    ids = set(Lead.objects.filter(compile_tree(validate(tree))).values_list("pk", flat=True))
    return sorted(name for name, lead in people.items() if lead.pk in ids)


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("is", "paid", ["paid"]),
        ("is_not", "paid", ["fair", "unknown"]),
        ("in", ["paid", "event"], ["fair", "paid"]),
        ("is_set", None, ["fair", "paid"]),
        ("is_not_set", None, ["unknown"]),
    ],
)
def test_source_rules(people, op, value, expected):
    rule = {"field": "source", "op": op, **({"value": value} if value is not None else {})}
    assert _matching({"all": [rule]}, people) == expected


def test_an_unknown_source_is_refused():
    with pytest.raises(ConditionError):
        validate({"all": [{"field": "source", "op": "is", "value": "pigeon"}]})


def test_the_rule_in_words_names_the_channel():
    rule = {"field": "source", "op": "in", "value": ["paid", "event"]}
    assert rule_words(rule, Names()) == "Source is one of Paid and Event / trade fair"

"""Each operator of each field type, and activity and segment rules, compiled and
run on the real database (SQLite or PostgreSQL, whichever the suite runs on)."""

import datetime as dt

import pytest
from django.utils import timezone

from leads.models import Lead, Tag
from segments.conditions import ConditionError, compile_tree, validate
from tests.factories import (
    EventFactory,
    FieldDefinitionFactory,
    LeadFactory,
    TagFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def emails(tree):
    validate(tree)
    return sorted(
        str(e)
        for e in Lead.objects.filter(compile_tree(tree, now=NOW)).values_list("email", flat=True)
    )


def rule(field, op, value=None):
    node = {"field": field, "op": op}
    if value is not None:
        node["value"] = value
    return {"all": [node]}


@pytest.fixture
def people():
    ann = LeadFactory.create(
        email="ann@a.example",
        job_title="Chief Executive Officer",
        company_size=30,
        stage="mql",
        city="",
    )
    bob = LeadFactory.create(
        email="bob@b.example", job_title="Engineer", company_size=None, stage="lead", city="Berlin"
    )
    cid = LeadFactory.create(
        email="cid@c.example",
        job_title="",
        company_size=5,
        stage="customer",
        city="Bern",
        unsubscribed=True,
    )
    return ann, bob, cid


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("is", "engineer", ["bob@b.example"]),
        ("is_not", "engineer", ["ann@a.example", "cid@c.example"]),
        ("contains", "EXEC", ["ann@a.example"]),
        ("not_contains", "exec", ["bob@b.example", "cid@c.example"]),
        ("starts_with", "chief", ["ann@a.example"]),
        ("ends_with", "NEER", ["bob@b.example"]),
        ("in", ["engineer", "cto"], ["bob@b.example"]),
        ("is_set", None, ["ann@a.example", "bob@b.example"]),
        ("is_not_set", None, ["cid@c.example"]),
    ],
)
def test_text_operators(people, op, value, expected):
    assert emails(rule("job_title", op, value)) == expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", 30, ["ann@a.example"]),
        ("ne", 30, ["bob@b.example", "cid@c.example"]),
        ("gt", 5, ["ann@a.example"]),
        ("gte", 5, ["ann@a.example", "cid@c.example"]),
        ("lt", 30, ["cid@c.example"]),
        ("lte", 30, ["ann@a.example", "cid@c.example"]),
        ("between", [5, 29], ["cid@c.example"]),
        ("is_set", None, ["ann@a.example", "cid@c.example"]),
        ("is_not_set", None, ["bob@b.example"]),
    ],
)
def test_number_operators(people, op, value, expected):
    assert emails(rule("company_size", op, value)) == expected


def test_choice_boolean_owner_and_tags(people):
    ann, bob, _ = people
    rep = UserFactory.create(username="rep")
    Lead.objects.filter(pk=ann.pk).update(owner=rep)
    bob.tags.add(TagFactory.create(name="vip"), TagFactory.create(name="beta"))
    ann.tags.add(Tag.objects.get(name="beta"))
    assert emails(rule("stage", "is", "mql")) == ["ann@a.example"]
    assert emails(rule("stage", "is_not", "mql")) == ["bob@b.example", "cid@c.example"]
    assert emails(rule("stage", "in", ["lead", "customer"])) == ["bob@b.example", "cid@c.example"]
    assert emails(rule("unsubscribed", "is", True)) == ["cid@c.example"]
    assert emails(rule("owner", "is", rep.pk)) == ["ann@a.example"]
    assert emails(rule("owner", "is_not", rep.pk)) == ["bob@b.example", "cid@c.example"]
    assert emails(rule("owner", "is_not_set")) == ["bob@b.example", "cid@c.example"]
    assert emails(rule("tags", "has", "vip")) == ["bob@b.example"]
    assert emails(rule("tags", "has_not", "vip")) == ["ann@a.example", "cid@c.example"]
    assert emails(rule("tags", "has_any", ["vip", "beta"])) == ["ann@a.example", "bob@b.example"]
    assert emails(rule("tags", "has_all", ["vip", "beta"])) == ["bob@b.example"]


def test_date_operators(people):
    ann, bob, _ = people
    Lead.objects.filter(pk=ann.pk).update(last_activity_at=NOW - dt.timedelta(days=2))
    Lead.objects.filter(pk=bob.pk).update(last_activity_at=NOW - dt.timedelta(days=40))
    day = (NOW - dt.timedelta(days=2)).date().isoformat()
    assert emails(rule("last_activity_at", "in_last_days", 7)) == ["ann@a.example"]
    assert emails(rule("last_activity_at", "more_than_days_ago", 30)) == ["bob@b.example"]
    assert emails(rule("last_activity_at", "on", day)) == ["ann@a.example"]
    assert emails(rule("last_activity_at", "before", day)) == ["bob@b.example"]
    assert emails(rule("last_activity_at", "after", day)) == []
    assert emails(
        rule("last_activity_at", "between", [(NOW - dt.timedelta(days=50)).date().isoformat(), day])
    ) == [
        "ann@a.example",
        "bob@b.example",
    ]
    assert emails(rule("last_activity_at", "is_not_set")) == ["cid@c.example"]


def test_custom_fields(people):
    ann, bob, _ = people
    FieldDefinitionFactory.create(key="plan", type="choice", options=["free", "pro"])
    FieldDefinitionFactory.create(key="seats", type="number")
    FieldDefinitionFactory.create(key="renewal", type="date")
    FieldDefinitionFactory.create(key="nickname")
    Lead.objects.filter(pk=ann.pk).update(
        custom_fields={"plan": "pro", "seats": 12, "renewal": "2026-05-01", "nickname": "Annie"}
    )
    Lead.objects.filter(pk=bob.pk).update(custom_fields={"plan": "free", "seats": 3})
    assert emails(rule("custom.plan", "is", "pro")) == ["ann@a.example"]
    assert emails(rule("custom.plan", "is_not", "pro")) == ["bob@b.example", "cid@c.example"]
    assert emails(rule("custom.seats", "gte", 10)) == ["ann@a.example"]
    assert emails(rule("custom.seats", "is_not_set")) == ["cid@c.example"]
    assert emails(rule("custom.renewal", "before", "2026-06-01")) == ["ann@a.example"]
    assert emails(rule("custom.nickname", "contains", "ANN")) == ["ann@a.example"]
    assert emails(rule("custom.nickname", "not_contains", "ann")) == [
        "bob@b.example",
        "cid@c.example",
    ]


def test_activity_rules(people):
    ann, bob, cid = people
    for days in (1, 3):
        EventFactory.create(
            lead=ann,
            type="page",
            name="Pricing",
            properties={"url": "https://x.example/pricing"},
            occurred_at=NOW - dt.timedelta(days=days),
        )
    EventFactory.create(
        lead=bob,
        type="page",
        name="Pricing",
        properties={"url": "https://x.example/PRICING?a=1"},
        occurred_at=NOW - dt.timedelta(days=45),
    )
    EventFactory.create(
        lead=bob, type="email.opened", name="Newsletter", occurred_at=NOW - dt.timedelta(days=10)
    )
    EventFactory.create(
        lead=cid,
        type="track",
        name="Created project",
        properties={"seats": 4},
        occurred_at=NOW - dt.timedelta(days=1),
    )
    pricing = {"activity": "page", "where": {"url": {"op": "contains", "value": "/pricing"}}}
    assert emails(
        {"all": [{**pricing, "count": {"op": "gte", "value": 2}, "within_days": 30}]}
    ) == ["ann@a.example"]
    assert emails({"all": [pricing]}) == ["ann@a.example", "bob@b.example"]
    assert emails({"all": [{**pricing, "count": {"op": "eq", "value": 1}}]}) == ["bob@b.example"]
    assert emails({"all": [{**pricing, "count": {"op": "lte", "value": 1}}]}) == [
        "bob@b.example",
        "cid@c.example",
    ]
    no_opens = {"activity": "email.opened", "within_days": 60, "count": {"op": "eq", "value": 0}}
    assert emails({"all": [no_opens]}) == ["ann@a.example", "cid@c.example"]
    assert emails(
        {
            "all": [
                {
                    "activity": "track",
                    "name": "Created project",
                    "where": {"seats": {"op": "gte", "value": 3}},
                }
            ]
        }
    ) == ["cid@c.example"]
    assert emails(
        {
            "all": [
                {
                    "activity": "page",
                    "between": [
                        (NOW - dt.timedelta(days=50)).date().isoformat(),
                        (NOW - dt.timedelta(days=40)).date().isoformat(),
                    ],
                }
            ]
        }
    ) == ["bob@b.example"]


def test_nested_groups(people):
    tree = {
        "any": [
            {
                "all": [
                    {"field": "company_size", "op": "gte", "value": 25},
                    {"field": "stage", "op": "is", "value": "mql"},
                ]
            },
            {"field": "city", "op": "starts_with", "value": "ber"},
        ]
    }
    assert emails(tree) == ["ann@a.example", "bob@b.example", "cid@c.example"]
    assert emails({"all": [tree, {"field": "unsubscribed", "op": "is", "value": False}]}) == [
        "ann@a.example",
        "bob@b.example",
    ]
    assert emails({"any": []}) == []
    assert emails({"all": []}) == ["ann@a.example", "bob@b.example", "cid@c.example"]


def test_validation_names_the_path_of_each_bad_rule():
    tree = {
        "all": [
            {"field": "shoe_size", "op": "is", "value": "9"},
            {"field": "company_size", "op": "contains", "value": "big"},
            {
                "any": [
                    {"field": "company_size", "op": "gt", "value": "ten"},
                    {"field": "job_title", "op": "is"},
                ]
            },
            {"activity": "email.opened", "count": {"op": "eq", "value": -1}, "within_days": 0},
            {"segment": "x", "op": "member"},
        ]
    }
    with pytest.raises(ConditionError) as caught:
        validate(tree, segment_ids=set())
    assert caught.value.fields == {
        "all[0].field": ["There is no field called “shoe_size”."],
        "all[1].op": [
            "“contains” does not work with this field; choose one of: “equals”, "
            "“does not equal”, “is more than”, “is at least”, “is less than”, "
            "“is at most”, “is between”, “is set”, “is not set”."
        ],
        "all[2].any[0].value": ["Enter a whole number."],
        "all[2].any[1].value": ["Enter a value."],
        "all[3].count": ["Choose how many times: at least, at most or exactly a whole number."],
        "all[3].within_days": ["Enter a whole number of days from 1 to 36500."],
        "all[4].segment": ["Choose a segment."],
        "all[4].op": ["Choose “in the segment” or “not in the segment”."],
    }
    with pytest.raises(ConditionError) as caught:
        validate({"field": "x"})
    assert caught.value.fields == {"": ['The root is a group: {"all": [...]} or {"any": [...]}.']}


def test_whole_number_fields_and_date_range_are_validated():
    with pytest.raises(ConditionError) as caught:
        validate(
            {
                "all": [
                    {"field": "company_size", "op": "eq", "value": 2.5},
                    {"field": "last_activity_at", "op": "after", "value": "9999-12-31"},
                    {"activity": "page", "between": ["2026-01-01", "9999-12-31"]},
                ]
            }
        )
    assert caught.value.fields == {
        "all[0].value": ["Enter a whole number."],
        "all[1].value": ["Choose a date between the years 1900 and 9000."],
        "all[2].between": ["Choose a first and a last day."],
    }


def test_json_null_event_property_counts_as_missing(people):
    ann, bob, _ = people
    EventFactory.create(lead=ann, type="page", properties={"url": None, "seats": None})
    EventFactory.create(lead=bob, type="page", properties={"url": "/pricing", "seats": 9})
    assert emails(
        {"all": [{"activity": "page", "where": {"seats": {"op": "gt", "value": 5}}}]}
    ) == ["bob@b.example"]
    assert (
        emails({"all": [{"activity": "page", "where": {"url": {"op": "contains", "value": "ul"}}}]})
        == []
    )
    assert emails(
        {"all": [{"activity": "page", "where": {"url": {"op": "is_not", "value": "/pricing"}}}]}
    ) == ["ann@a.example"]


def test_per_lead_compilation_agrees_with_the_set_form(people):
    from django.db.models import BooleanField, ExpressionWrapper

    ann, bob, cid = people
    for n, lead in enumerate((ann, ann, ann, bob)):
        EventFactory.create(
            lead=lead, type="page", properties={"url": "/pricing"}, idempotency_key=f"k{n}"
        )
    trees = [
        {"all": [{"activity": "page", "count": {"op": op, "value": value}}]}
        for op in ("gte", "eq", "lte")
        for value in (0, 1, 2, 3)
    ]
    for tree in trees:
        in_set = set(Lead.objects.filter(compile_tree(tree, now=NOW)).values_list("id", flat=True))
        for lead in (ann, bob, cid):
            column = ExpressionWrapper(
                compile_tree(tree, now=NOW, per_lead=True), output_field=BooleanField()
            )
            row = Lead.objects.filter(pk=lead.pk).values(m=column).get()
            assert bool(row["m"]) == (lead.pk in in_set), (tree, lead.email)

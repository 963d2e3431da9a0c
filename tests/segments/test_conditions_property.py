"""The compiled condition tree selects exactly the leads the plain-Python evaluator
selects, for random leads, events, tags, segment memberships and trees (the whole
tree and each of its groups and rules alone), on whichever database the suite runs
on.

Values come from small pools so that rules hit and miss often: case variants of the
same text, empty and NULL values, numbers on both sides of each bound, moments at
midnight, a second either side of ``NOW`` and exactly N days away.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.vocabulary import EngagementGrade, FitGrade, Grade
from leads.models import (
    Event,
    Lead,
    SegmentMembership,
    Stage,
)
from scoring.models import LeadScore, ScoreCategory
from segments.check import Watched, _activity_names, _evaluate
from segments.conditions import FIELD_TYPES, OPERATORS, Compiler, compile_tree, validate
from segments.conditions.schema import PROPERTY_OPERATORS
from tests.factories import FieldDefinitionFactory, SegmentFactory, TagFactory, UserFactory
from tests.segments.evaluator import (
    STANDARD_FIELDS,
    SUPPORTED_OPERATORS,
    SUPPORTED_PROPERTY_OPERATORS,
    evaluate,
)

# One moment for the whole run, so that the compiler and the evaluator measure from
# the same instant and a replayed example sees the same dates.
NOW = dt.datetime.now(dt.UTC)
TODAY = NOW.date()

CUSTOM_FIELDS: dict[str, tuple[str, list[str]]] = {
    "nickname": ("text", []),
    "seats": ("number", []),
    "renewal": ("date", []),
    "beta": ("boolean", []),
    "plan": ("choice", ["free", "pro", "team"]),
}
CUSTOM_TYPES = {key: kind for key, (kind, _) in CUSTOM_FIELDS.items()}
RULE_FIELDS: dict[str, str] = {
    "external_id": "text",
    "job_title": "text",
    "city": "text",
    "company_size": "number",
    "score": "number",
    "score.fit": "number",
    "score.engagement": "number",
    "stage": "choice",
    "grade": "choice",
    "fit_grade": "choice",
    "engagement_grade": "choice",
    "source": "choice",
    "unsubscribed": "boolean",
    "last_activity_at": "date",
    "owner": "owner",
    "tags": "tags",
    **{f"custom.{key}": kind for key, kind in CUSTOM_TYPES.items()},
}

# Stored values and the strings rules look for in them, per text field.
JOB_TITLES = ["", "CEO", "ceo", "Chief Executive Officer", "Head of Sales", "Sales Engineer"]
CITIES = ["", "Berlin", "bERLIN", "Bern", "Paris"]
NICKNAMES = ["", "Annie", "ann", "Bob"]
EXTERNAL_PREFIXES = ["ab", "AB", "cd"]
NEEDLES = {
    "job_title": ["ceo", "CEO", "chief", "OFFICER", "sales", "head of sales", "Engineer", "e", "x"],
    "city": ["berlin", "BERN", "ber", "lin", "paris", "n", "Rome"],
    "external_id": ["ab", "AB", "aba", "ABB", "b", "cd", "zz"],
    "custom.nickname": ["annie", "ANN", "ann", "bob", "ie", "z"],
}
TAG_NAMES = ["vip", "beta", "churned"]
RULE_TAG_NAMES = [*TAG_NAMES, "trial"]
NUMBERS = [0, 1, 2.5, 3, 5, 10, 30]
RULE_NUMBERS = [-5, 0, 1, 2, 2.5, 3, 5, 10, 30, 31]
# Integers next to the fractional rule values, where a bound rounded or truncated
# to a whole number would show.
SCORES = [-5, 0, 2, 3, 10, 30]
# The categories the scoring app's migration creates.
CATEGORIES = ["fit", "engagement"]
EVENT_TYPES = ["page", "track", "email.opened"]
RULE_EVENT_TYPES = [*EVENT_TYPES, "email.clicked"]
EVENT_NAMES = ["Pricing", "Docs", "Signed up", ""]
RULE_EVENT_NAMES = ["Pricing", "Docs", "Signed up", "Nope"]
URLS = ["/pricing", "/Pricing/team", "/docs", "/blog/pricing-news", "/schedule"]
URL_NEEDLES = ["/pricing", "/PRICING", "pricing", "/docs", "team", "/", "/Pricing/team", "ul"]
SEATS = [0, 1, 3, 5]
RELATIVE_DAYS = st.one_of(st.sampled_from([0, 1, 2, 7, 30, 60]), st.integers(0, 70))
DAY_OFFSETS = st.one_of(
    st.integers(-3, 3), st.sampled_from([-60, -31, -30, -29, -8, -7, 7, 8, 29, 30, 31, 60])
)
ABSENT = "<absent>"
# How an owner or segment is named before the rows exist: an index into the users
# or segments of the example; the last owner index is a user id nobody has.
OWNER_SLOTS = 3
MAX_SEGMENTS = 2


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


# Strategies are built once, at import: building them per draw costs more than the
# database work of an example.


@st.composite
def _moments(draw: st.DrawFn) -> dt.datetime:
    offset = draw(DAY_OFFSETS)
    day = TODAY + dt.timedelta(days=offset)
    return draw(
        st.sampled_from(
            [
                NOW + dt.timedelta(days=offset),
                NOW + dt.timedelta(days=offset, seconds=1),
                NOW + dt.timedelta(days=offset, seconds=-1),
                day_start(day),
                day_start(day + dt.timedelta(days=1)) - dt.timedelta(microseconds=1),
            ]
        )
    )


# Moments near NOW on the edges the compiler draws: whole days from now, a second
# either side, and the first and last microsecond of a UTC day.
MOMENTS = _moments()
DAYS = DAY_OFFSETS.map(lambda offset: (TODAY + dt.timedelta(days=offset)).isoformat())
EDGE_DAYS = st.sampled_from(["1900-01-01", "9000-12-31"])


@st.composite
def _rule_days(draw: st.DrawFn) -> str:
    # Now and then the first or last day a rule may name.
    return draw(EDGE_DAYS if draw(st.integers(0, 7)) == 0 else DAYS)


RULE_DAYS = _rule_days()
RULE_DAY_RANGES = st.lists(RULE_DAYS, min_size=2, max_size=2).map(sorted)


def maybe_absent(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A custom field value, or ``ABSENT`` for a lead without the key."""
    return st.one_of(st.just(ABSENT), st.none(), values)


CUSTOM_VALUES = {
    "nickname": maybe_absent(st.sampled_from(NICKNAMES)),
    "seats": maybe_absent(st.sampled_from(NUMBERS)),
    "renewal": maybe_absent(DAYS),
    "beta": maybe_absent(st.booleans()),
    "plan": maybe_absent(st.sampled_from(["", *CUSTOM_FIELDS["plan"][1]])),
}


@dataclasses.dataclass
class LeadSpec:
    external_id: str | None
    job_title: str
    city: str
    company_size: int | None
    stage: str
    score: int
    grade: str
    fit_grade: str
    engagement_grade: str
    source: str
    # Points per category; a category left out has no LeadScore row.
    category_scores: dict[str, int]
    unsubscribed: bool
    owner: int | None
    last_activity_at: dt.datetime | None
    custom_fields: dict[str, Any]
    tags: list[str]
    events: list[dict[str, Any]]
    # Per segment index: None (never in), "open", "left", or "returned" (a closed
    # stay followed by an open one).
    stays: list[str | None]


@dataclasses.dataclass
class Scenario:
    leads: list[LeadSpec]
    segments: int
    tree: dict[str, Any]


def without_absent(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value != ABSENT}


EVENTS = st.fixed_dictionaries(
    {
        "type": st.sampled_from(EVENT_TYPES),
        "name": st.sampled_from(EVENT_NAMES),
        "properties": st.fixed_dictionaries(
            {
                "url": st.one_of(st.just(ABSENT), st.none(), st.sampled_from(URLS)),
                "seats": st.one_of(st.just(ABSENT), st.none(), st.sampled_from(SEATS)),
            }
        ).map(without_absent),
        "occurred_at": MOMENTS,
    }
)
LEADS = st.builds(
    LeadSpec,
    # Made unique per lead by the scenario; the prefix is what rules match.
    external_id=st.one_of(st.none(), st.sampled_from(EXTERNAL_PREFIXES)),
    job_title=st.sampled_from(JOB_TITLES),
    city=st.sampled_from(CITIES),
    company_size=st.one_of(st.none(), st.sampled_from([0, 1, 2, 3, 5, 10, 30])),
    stage=st.sampled_from(Stage.values),
    score=st.sampled_from(SCORES),
    grade=st.sampled_from(Grade.values),
    fit_grade=st.sampled_from(FitGrade.values),
    engagement_grade=st.sampled_from(EngagementGrade.values),
    source=st.sampled_from(["", "paid", "organic", "event"]),
    category_scores=st.dictionaries(
        st.sampled_from(CATEGORIES), st.sampled_from(SCORES), max_size=2
    ),
    unsubscribed=st.booleans(),
    owner=st.one_of(st.none(), st.integers(0, OWNER_SLOTS - 2)),
    last_activity_at=st.one_of(st.none(), MOMENTS),
    custom_fields=st.fixed_dictionaries(CUSTOM_VALUES).map(without_absent),
    tags=st.lists(st.sampled_from(TAG_NAMES), unique=True, max_size=3),
    events=st.lists(EVENTS, max_size=5),
    stays=st.lists(
        st.sampled_from([None, "open", "left", "returned"]),
        min_size=MAX_SEGMENTS,
        max_size=MAX_SEGMENTS,
    ),
)


def field_values(name: str, kind: str, op: str) -> st.SearchStrategy[Any]:
    if kind == "text":
        needles = st.sampled_from(NEEDLES.get(name, ["x"]))
        if op == "in":
            # The empty string is a valid list item; it must never match a blank.
            return st.lists(st.one_of(needles, st.just("")), min_size=1, max_size=3)
        return needles
    if kind == "number":
        return number_values(name, op)
    if kind == "date":
        return date_values(op)
    if kind == "boolean":
        return st.booleans()
    if kind == "choice":
        choices = {
            "stage": Stage.values,
            "grade": Grade.values,
            "fit_grade": FitGrade.values,
            "engagement_grade": EngagementGrade.values,
            "source": ["paid", "organic", "event", "import"],
        }
        options = st.sampled_from(choices.get(name, CUSTOM_FIELDS["plan"][1]))
        if op == "in":
            return st.lists(options, min_size=1, max_size=3, unique=True)
        return options
    if kind == "owner":
        slots = st.integers(0, OWNER_SLOTS - 1)
        if op == "in":
            return st.lists(slots, min_size=1, max_size=2, unique=True)
        return slots
    tags = st.sampled_from(RULE_TAG_NAMES)
    if op in ("has", "has_not"):
        return tags
    return st.lists(tags, min_size=1, max_size=3, unique=True)


def number_values(name: str, op: str) -> st.SearchStrategy[Any]:
    # Whole-number columns take whole numbers only (validation refuses 2.5).
    whole = name in ("company_size", "score") or name.startswith("score.")
    pool = [n for n in RULE_NUMBERS if isinstance(n, int)] if whole else RULE_NUMBERS
    numbers = st.sampled_from(pool)
    if op == "between":
        return st.lists(numbers, min_size=2, max_size=2).map(sorted)
    return numbers


def date_values(op: str) -> st.SearchStrategy[Any]:
    if op in ("in_last_days", "more_than_days_ago", "in_next_days"):
        return RELATIVE_DAYS
    if op == "between":
        return RULE_DAY_RANGES
    return RULE_DAYS


FIELD_VALUES = {
    (name, op): field_values(name, kind, op)
    for name, kind in RULE_FIELDS.items()
    for op in OPERATORS[kind]
}


FIELD_OPERATORS = st.sampled_from(
    [(name, op) for name, kind in RULE_FIELDS.items() for op in OPERATORS[kind]]
)
URL_FILTERS = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["is", "is_not", "contains", "starts_with", "ends_with"]),
        "value": st.sampled_from(URL_NEEDLES),
    }
)
SEATS_FILTERS = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["is", "is_not", "gt", "gte", "lt", "lte"]),
        "value": st.integers(0, 6),
    }
)
COUNTS = st.fixed_dictionaries(
    {"op": st.sampled_from(["gte", "lte", "eq"]), "value": st.integers(0, 3)}
)
ONE_IN_THREE = st.integers(0, 2).map(lambda roll: roll == 0)


@st.composite
def _field_rules(draw: st.DrawFn) -> dict[str, Any]:
    name, op = draw(FIELD_OPERATORS)
    rule: dict[str, Any] = {"field": name, "op": op}
    if op not in ("is_set", "is_not_set"):
        rule["value"] = draw(FIELD_VALUES[name, op])
    return rule


@st.composite
def _activity_rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"activity": draw(st.sampled_from(RULE_EVENT_TYPES))}
    if draw(ONE_IN_THREE):
        rule["name"] = draw(st.sampled_from(RULE_EVENT_NAMES))
    where: dict[str, dict[str, Any]] = {}
    if draw(ONE_IN_THREE):
        where["url"] = draw(URL_FILTERS)
    if draw(ONE_IN_THREE):
        where["seats"] = draw(SEATS_FILTERS)
    if where:
        rule["where"] = where
    if draw(st.booleans()):
        rule["count"] = draw(COUNTS)
    window = draw(st.sampled_from(["ever", "within_days", "between"]))
    if window == "within_days":
        rule["within_days"] = draw(st.sampled_from([1, 2, 7, 30, 45, 60]))
    elif window == "between":
        rule["between"] = draw(RULE_DAY_RANGES)
    return rule


FIELD_RULES = _field_rules()
ACTIVITY_RULES = _activity_rules()


def groups(segments: int, depth: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    """Groups nested at most three deep, each of one to four children, now and then
    none: an empty group's value (all: true, any: false) is a convention the two
    sides must share. The root always has two children at least: every group and
    rule is also checked alone, so a larger tree is more checks for one set of rows.
    """
    segment_rules = st.fixed_dictionaries(
        {"segment": st.integers(0, segments - 1), "op": st.sampled_from(["in", "not_in"])}
    )
    rules = st.one_of(FIELD_RULES, FIELD_RULES, ACTIVITY_RULES, segment_rules)
    child = rules if depth == 3 else st.one_of(rules, groups(segments, depth + 1))
    children = st.lists(child, min_size=2 if depth == 1 else 1, max_size=4)

    @st.composite
    def group(draw: st.DrawFn) -> dict[str, Any]:
        key = draw(st.sampled_from(["all", "any"]))
        if depth > 1 and draw(st.integers(0, 7)) == 7:
            return {key: []}
        return {key: draw(children)}

    return group()


TREES = {segments: groups(segments) for segments in range(1, MAX_SEGMENTS + 1)}


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    segments = draw(st.integers(1, MAX_SEGMENTS))
    leads = [
        dataclasses.replace(
            lead,
            external_id=None if lead.external_id is None else lead.external_id + "abcdefgh"[index],
            stays=lead.stays[:segments],
        )
        for index, lead in enumerate(draw(st.lists(LEADS, min_size=4, max_size=8)))
    ]
    return Scenario(leads=leads, segments=segments, tree=draw(TREES[segments]))


def bind(node: dict[str, Any], owners: list[int], segments: list[int]) -> dict[str, Any]:
    """The tree with owner and segment slots replaced by the ids of the rows."""
    for key in ("all", "any"):
        if key in node:
            return {key: [bind(child, owners, segments) for child in node[key]]}
    if "segment" in node:
        return {**node, "segment": segments[node["segment"]]}
    if node.get("field") == "owner" and "value" in node:
        value = node["value"]
        return {
            **node,
            "value": [owners[v] for v in value] if isinstance(value, list) else owners[value],
        }
    return node


def create_rows(scenario: Scenario, users: list[User]) -> tuple[list[int], list[int]]:
    """Write the scenario's rows; return the ids of the owners and segments."""
    for key, (kind, options) in CUSTOM_FIELDS.items():
        FieldDefinitionFactory.create(key=key, label=key.title(), type=kind, options=options)
    tags = {name: TagFactory.create(name=name) for name in TAG_NAMES}
    segments = [
        SegmentFactory.create(name=f"Static {index}", static=True)
        for index in range(scenario.segments)
    ]
    owner_ids = [user.pk for user in users]
    owner_ids.append(max(owner_ids) + 1000)
    events: list[Event] = []
    memberships: list[SegmentMembership] = []
    tag_links = []
    scores: list[LeadScore] = []
    categories = {c.key: c for c in ScoreCategory.objects.filter(key__in=CATEGORIES)}
    for spec in scenario.leads:
        lead = Lead.objects.create(
            external_id=spec.external_id,
            job_title=spec.job_title,
            city=spec.city,
            company_size=spec.company_size,
            stage=spec.stage,
            score=spec.score,
            grade=spec.grade,
            fit_grade=spec.fit_grade,
            engagement_grade=spec.engagement_grade,
            source=spec.source,
            unsubscribed=spec.unsubscribed,
            owner_id=None if spec.owner is None else owner_ids[spec.owner],
            last_activity_at=spec.last_activity_at,
            custom_fields=spec.custom_fields,
        )
        scores += [
            LeadScore(lead=lead, category=categories[key], score=points)
            for key, points in spec.category_scores.items()
        ]
        tag_links += [Lead.tags.through(lead=lead, tag=tags[name]) for name in spec.tags]
        events += [
            Event(
                lead=lead,
                **event,
                received_at=NOW,
                source="api",
                idempotency_key=uuid.uuid4().hex,
            )
            for event in spec.events
        ]
        for segment, stay in zip(segments, spec.stays, strict=True):
            if stay in ("left", "returned"):
                memberships.append(
                    SegmentMembership(
                        segment=segment,
                        lead=lead,
                        entered_at=NOW - dt.timedelta(days=9),
                        left_at=NOW - dt.timedelta(days=3),
                        source="manual",
                    )
                )
            if stay in ("open", "returned"):
                memberships.append(
                    SegmentMembership(
                        segment=segment,
                        lead=lead,
                        entered_at=NOW - dt.timedelta(days=1),
                        left_at=None,
                        source="manual",
                    )
                )
    Lead.tags.through.objects.bulk_create(tag_links)
    Event.objects.bulk_create(events)
    LeadScore.objects.bulk_create(scores)
    SegmentMembership.objects.bulk_create(memberships)
    return owner_ids, [segment.pk for segment in segments]


EVENT_KEYS = ("type", "name", "properties", "occurred_at")


def evaluator_inputs() -> dict[int, dict[str, Any]]:
    """Each lead's rows read back as plain values, keyed by lead id."""
    columns = [name for name, kind in STANDARD_FIELDS.items() if kind not in ("owner", "tags")]
    inputs: dict[int, dict[str, Any]] = {}
    for row in Lead.objects.values("id", "owner_id", "custom_fields", *columns):
        lead = {name: row[name] for name in columns}
        lead["owner"] = row["owner_id"]
        lead["custom_fields"] = row["custom_fields"]
        lead["category_scores"] = {}
        inputs[row["id"]] = {"lead": lead, "events": [], "tags": set(), "memberships": set()}
    for lead_id, *event in Event.objects.values_list("lead_id", *EVENT_KEYS):
        inputs[lead_id]["events"].append(dict(zip(EVENT_KEYS, event, strict=True)))
    for lead_id, key, points in LeadScore.objects.values_list("lead_id", "category__key", "score"):
        inputs[lead_id]["lead"]["category_scores"][key] = points
    for lead_id, name in Lead.tags.through.objects.values_list("lead_id", "tag__name"):
        inputs[lead_id]["tags"].add(name)
    for lead_id, segment_id, left_at in SegmentMembership.objects.values_list(
        "lead_id", "segment_id", "left_at"
    ):
        if left_at is None:
            inputs[lead_id]["memberships"].add(segment_id)
    return inputs


def relevant(rows: dict[str, Any]) -> dict[str, Any]:
    """A lead's evaluator inputs without the columns no rule here looks at."""
    lead = {
        name: value
        for name, value in rows["lead"].items()
        if name in RULE_FIELDS or name in ("custom_fields", "category_scores")
    }
    return {**rows, "lead": lead}


@pytest.fixture
def owners(db: None) -> list[User]:
    return [UserFactory.create(username="owner-a"), UserFactory.create(username="owner-b")]


def test_evaluator_knows_every_field_and_operator() -> None:
    assert STANDARD_FIELDS == FIELD_TYPES
    assert {kind: set(ops) for kind, ops in SUPPORTED_OPERATORS.items()} == {
        kind: set(ops) for kind, ops in OPERATORS.items()
    }
    assert set(PROPERTY_OPERATORS) == SUPPORTED_PROPERTY_OPERATORS


def subtrees(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every group and rule of ``node``, each as a tree of its own, children before
    their parents: the first to disagree is the smallest."""
    for key in ("all", "any"):
        if key in node:
            nested = [tree for child in node[key] for tree in subtrees(child)]
            return [*nested, node]
    return [{"all": [node]}]


@pytest.mark.django_db
# A function-scoped fixture is set up once for all examples: only the two users are
# shared, and no example changes them.
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    # The explain phase replays variations of a shrunk failure, which here takes minutes
    # and adds nothing the disagreement message does not already show.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_compiled_tree_selects_what_the_evaluator_selects(
    owners: list[User], scenario: Scenario
) -> None:
    # The database is the test's, shared by every example: each one rolls back.
    with transaction.atomic():
        owner_ids, segment_ids = create_rows(scenario, owners)
        tree = validate(bind(scenario.tree, owner_ids, segment_ids), segment_ids=set(segment_ids))
        inputs = evaluator_inputs()
        # Each rule and group is checked alone as well as within the whole tree, so
        # that a rule whose outcome its siblings hide still gets compared.
        for subtree in subtrees(tree):
            selected = set(
                Lead.objects.filter(compile_tree(subtree, now=NOW)).values_list("id", flat=True)
            )
            expected = {
                lead_id
                for lead_id, rows in inputs.items()
                if evaluate(subtree, now=NOW, custom_types=CUSTOM_TYPES, **rows)
            }
            if selected != expected:
                break
        transaction.set_rollback(True)

    disagreements = {
        lead_id: {"compiler_selects": lead_id in selected, **relevant(inputs[lead_id])}
        for lead_id in selected ^ expected
    }
    assert selected == expected, f"tree={subtree!r} now={NOW!r} disagreements={disagreements!r}"


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_the_per_lead_statement_answers_what_the_compiled_tree_selects(
    owners: list[User], scenario: Scenario
) -> None:
    """The worker's check (``segments.check``: every segment in one statement,
    compiled once on a template clock and run at another moment, with the lead's
    stays) agrees with the set form compiled at that moment, and with the
    former per-lead form (one lead's row, the conditions compiled for it)."""
    with transaction.atomic():
        owner_ids, segment_ids = create_rows(scenario, owners)
        tree = validate(bind(scenario.tree, owner_ids, segment_ids), segment_ids=set(segment_ids))
        batch = uuid.uuid4().hex
        watched = [
            Watched(
                pk=number,
                name=f"Subtree {number}",
                conditions=subtree,
                names=_activity_names(subtree),
                fingerprint=f"{batch}:{number}",
            )
            for number, subtree in enumerate(subtrees(tree), start=1)
        ]
        selected = {
            w.pk: set(
                Lead.objects.filter(compile_tree(w.conditions, now=NOW)).values_list(
                    "id", flat=True
                )
            )
            for w in watched
        }
        stays: dict[int, set[int]] = {}
        for lead_id, segment_id in SegmentMembership.objects.filter(
            left_at__isnull=True
        ).values_list("lead_id", "segment_id"):
            stays.setdefault(lead_id, set()).add(segment_id)
        compiler = Compiler(NOW, per_lead=True)
        former_checks = {
            f"s{w.pk}": ExpressionWrapper(compiler.node(w.conditions), output_field=BooleanField())
            for w in watched
        }
        inputs = evaluator_inputs()
        answers = {}
        former = {}
        for lead_id in Lead.objects.values_list("id", flat=True):
            answers[lead_id] = _evaluate(lead_id, watched, NOW)
            row: dict[str, Any] = dict(
                Lead.objects.filter(pk=lead_id).values(**former_checks).get()
            )
            former[lead_id] = {w.pk: bool(row[f"s{w.pk}"]) for w in watched}
        transaction.set_rollback(True)

    for lead_id, verdict in answers.items():
        assert verdict is not None
        # The stays it reads are the candidates' only.
        assert verdict.stays == stays.get(lead_id, set()) & {w.pk for w in watched}
        assert verdict.excluded == set()
        for w in watched:
            expected = lead_id in selected[w.pk]
            assert verdict.matches[w.pk] == expected == former[lead_id][w.pk], (
                f"tree={w.conditions!r} now={NOW!r} lead={relevant(inputs[lead_id])!r}"
            )

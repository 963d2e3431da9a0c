"""The ledger's rules: caps, grades written with every change, effective time."""

from __future__ import annotations

import datetime as dt

import pytest

from leads.models import Event
from scoring.models import HotRule, LeadScore, ScoreCategory, ScoreChange, ScoringSettings
from scoring.services import counted_points, score_adjust, score_adjust_by_hand, scoring_mismatches
from tests.factories import EventFactory, LeadFactory, ScoreCategoryFactory

pytestmark = pytest.mark.django_db


def capped(key: str, cap: int | None) -> ScoreCategory:
    category = ScoreCategoryFactory.create(key=key)
    category.cap = cap
    category.save()
    return category


def give(lead, points, category, key, **extra):
    return score_adjust(
        lead=lead,
        delta=points,
        category=category,
        reason="Test",
        source="flow",
        source_key=key,
        **extra,
    )


@pytest.mark.parametrize(
    ("asked", "points", "total", "cap", "total_cap", "counted"),
    [
        (10, 0, 0, None, None, 10),
        (20, 90, 90, 100, None, 10),
        (5, 100, 100, 100, None, 0),
        (5, 120, 120, 100, None, 0),  # past a lowered cap: nothing more, nothing taken
        (-30, 100, 100, 100, None, -30),  # a fall is never capped
        (40, 10, 110, None, 120, 10),
        (40, 10, 110, 30, 200, 20),
    ],
)
def test_counted_points(asked, points, total, cap, total_cap, counted):
    assert (
        counted_points(asked=asked, points=points, total=total, cap=cap, total_cap=total_cap)
        == counted
    )


def test_caps_count_up_to_the_cap_and_keep_the_rest_on_the_row():
    # Given engagement capped at 100 and the total at 120,
    engagement = capped("engagement", 100)
    fit = ScoreCategory.objects.get(key="fit")
    ScoringSettings.objects.update(total_cap=120)
    lead = LeadFactory.create()
    # when points come and go,
    asks = [(90, engagement), (20, engagement), (5, engagement), (-30, engagement)]
    asks += [(40, engagement), (30, fit), (-50, fit)]
    for index, (asked, category) in enumerate(asks):
        give(lead, asked, category, f"k{index}")
    # then each row counted what fit under the caps and kept the rest as capped,
    rows = ScoreChange.objects.filter(lead=lead).order_by("id")
    assert [(r.category.key, r.delta, r.capped) for r in rows] == [
        ("engagement", 90, 0),
        ("engagement", 10, 10),
        ("engagement", 0, 5),
        ("engagement", -30, 0),
        ("engagement", 30, 10),
        ("fit", 20, 10),  # the total's cap
        ("fit", -50, 0),
    ]
    assert all(r.delta + r.capped == asked for r, (asked, _) in zip(rows, asks, strict=True))
    lead.refresh_from_db()
    assert lead.score == 70
    assert dict(LeadScore.objects.filter(lead=lead).values_list("category__key", "score")) == {
        "engagement": 100,
        "fit": -30,
    }
    # and a change capped away whole moved nothing, so announced nothing.
    changed = Event.objects.filter(lead=lead, type="score.changed").order_by("id")
    assert [e.properties["delta"] for e in changed] == [90, 10, -30, 30, 20, -50]
    assert [e.properties.get("capped", 0) for e in changed] == [0, 10, 0, 10, 10, 0]
    assert scoring_mismatches() == []


def test_every_change_writes_both_axes_and_the_grade():
    ScoringSettings.objects.update(hot_rule=HotRule.AXES)
    fit = ScoreCategory.objects.get(key="fit")
    engagement = ScoreCategory.objects.get(key="engagement")
    lead = LeadFactory.create()
    give(lead, 45, fit, "k1")
    lead.refresh_from_db()
    assert (lead.grade, lead.fit_grade, lead.engagement_grade) == ("warm", "A", "4")
    give(lead, 35, engagement, "k2")
    lead.refresh_from_db()
    assert (lead.grade, lead.fit_grade, lead.engagement_grade, lead.rating) == (
        "hot",
        "A",
        "2",
        "A2",
    )
    moves = Event.objects.filter(lead=lead, type="grade.changed").order_by("id")
    assert [(e.name, e.properties) for e in moves] == [
        (
            "warm",
            {
                "from": "cold",
                "to": "warm",
                "score": 45,
                "fit_from": "D",
                "fit_to": "A",
                "engagement_from": "4",
                "engagement_to": "4",
            },
        ),
        (
            "hot",
            {
                "from": "warm",
                "to": "hot",
                "score": 80,
                "fit_from": "A",
                "fit_to": "A",
                "engagement_from": "4",
                "engagement_to": "2",
            },
        ),
    ]
    # A change that moves no grade announces none.
    give(lead, 1, engagement, "k3")
    assert Event.objects.filter(lead=lead, type="grade.changed").count() == 2


def test_a_customer_is_never_hot():
    lead = LeadFactory.create(stage="customer")
    give(lead, 80, ScoreCategory.objects.get(key="fit"), "k1")
    lead.refresh_from_db()
    assert (lead.grade, lead.fit_grade) == ("warm", "A")


def test_effective_time_is_the_cause_s_time_or_the_one_given():
    lead = LeadFactory.create()
    fit = ScoreCategory.objects.get(key="fit")
    last_year = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    cause = EventFactory.create(lead=lead, occurred_at=last_year)
    change = give(lead, 30, fit, "k1", cause=cause)
    assert change is not None
    stored = ScoreChange.objects.get(pk=change.pk)
    assert stored.occurred_at == last_year
    assert stored.created_at > last_year
    derived = Event.objects.filter(lead=lead, type__in=["score.changed", "grade.changed"])
    assert {(e.type, e.occurred_at) for e in derived} == {
        ("score.changed", last_year),
        ("grade.changed", last_year),
    }
    earlier = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    change = give(lead, 1, fit, "k2", cause=cause, occurred_at=earlier)
    assert change is not None
    assert ScoreChange.objects.get(pk=change.pk).occurred_at == earlier


def test_by_hand_locks_the_lead_and_counts_under_the_cap():
    engagement = capped("engagement", 10)
    lead = LeadFactory.create()
    change = score_adjust_by_hand(
        lead=lead, delta=15, category=engagement, reason="Met at the fair", user=None
    )
    assert change is not None
    assert (change.delta, change.capped, change.source) == (10, 5, "manual")
    assert (lead.score, lead.engagement_grade) == (10, "3")

"""Suggestions recover the weights planted in synthetic data, and say how many
conversions they still need when there are too few."""

from __future__ import annotations

import datetime as dt
import math
import random

import pytest
from django.utils import timezone

from leads.models import Lead
from scoring.suggestions import MIN_POSITIVES, scoring_suggestions, suggestion_doubt
from tests.factories import EventFactory, LeadFactory

pytestmark = pytest.mark.django_db


def _page_view(lead: Lead, path: str, when: dt.datetime) -> None:
    EventFactory.create(
        lead=lead, type="page", properties={"url": f"https://www.example.com{path}?utm=x"},
        occurred_at=when, received_at=when,
    )  # fmt: skip


def test_suggestions_recover_planted_signs_and_order() -> None:
    # Given 300 leads whose odds of converting grow with pricing-page views
    # (strongly), a "Head of" title (less), and shrink for students (strongly);
    # blog views do nothing.
    rng = random.Random(7)
    now = timezone.now()
    before = now - dt.timedelta(days=3)
    planted = []
    for i in range(300):
        student, head = i % 5 == 0, i % 3 == 1
        pricing, blog = rng.choice([0, 0, 0, 1, 2, 3]), rng.choice([0, 1, 2])
        logit = -2.0 + 1.4 * pricing + 1.0 * head - 3.0 * student
        converted = rng.random() < 1 / (1 + math.exp(-logit))
        title = "Student" if student else ("Head of Sales" if head else "Analyst")
        lead = LeadFactory.create(job_title=title, opportunity_at=now if converted else None)
        for _ in range(pricing):
            _page_view(lead, "/pricing", before)
        for _ in range(blog):
            _page_view(lead, "/blog/post", before)
        if converted:
            # After converting: not evidence.
            _page_view(lead, "/pricing", now + dt.timedelta(days=1))
        planted.append((student, head, pricing, converted))

    result = scoring_suggestions()

    positives = sum(1 for p in planted if p[3])
    assert (result.leads, result.sampled, result.positives, result.needed) == (
        300, 300, positives, 0
    )  # fmt: skip
    assert result.estimated is False
    points = {row.feature.key: row.points for row in result.rows}
    assert points["page:/pricing"] > points["title:head"] > 0 > points["title:student"]
    assert abs(points["page:/blog/post"]) < points["title:head"]
    pricing_row = next(r for r in result.rows if r.feature.key == "page:/pricing")
    assert (pricing_row.leads, pricing_row.conversions) == (
        sum(1 for p in planted if p[2]),
        sum(1 for p in planted if p[2] and p[3]),
    )
    assert pricing_row.feature.trigger == {
        "type": "page.visited",
        "config": {"url": {"op": "contains", "value": "/pricing"}},
    }
    student_row = next(r for r in result.rows if r.feature.key == "title:student")
    assert student_row.feature.category == "fit"
    assert student_row.feature.condition == {
        "any": [
            {"field": "job_title", "op": "contains", "value": word}
            for word in ("student", "internship", "trainee")
        ]
    }
    # Deterministic: the same data gives the same suggestions.
    assert [(r.feature.key, r.points) for r in scoring_suggestions().rows] == [
        (r.feature.key, r.points) for r in result.rows
    ]


def test_too_few_conversions_say_how_many_more() -> None:
    now = timezone.now()
    LeadFactory.create_batch(12, opportunity_at=now)
    LeadFactory.create_batch(40)

    result = scoring_suggestions()

    assert (result.positives, result.needed, result.rows) == (12, MIN_POSITIVES - 12, [])
    assert result.message == (
        "12 leads became opportunities or customers; suggestions need at least 30, so 18 more."
    )


@pytest.mark.parametrize(
    ("points", "leads", "conversions", "doubt"),
    [
        (11, 60, 30, ""),
        (-8, 60, 3, ""),
        (11, 19, 10, "Only 19 leads have it."),
        (11, 1, 1, "Only 1 lead has it."),
        (11, 40, 2, "Only 2 of its leads converted."),
        # Few conversions are the evidence for points down.
        (-23, 28, 0, ""),
        (11, 50, 3, "The points disagree with its rate: 6 % against 22 % for all leads."),
        (-5, 20, 10, "The points disagree with its rate: 50 % against 22 % for all leads."),
        (0, 50, 3, ""),
    ],
)
def test_thin_or_contrary_evidence_makes_a_suggestion_uncertain(
    points, leads, conversions, doubt
) -> None:
    assert (
        suggestion_doubt(points=points, leads=leads, conversions=conversions, baseline=0.22)
        == doubt
    )


def test_a_thin_feature_is_uncertain() -> None:
    now = timezone.now()
    # 40 converted heads of sales, 60 analysts who did not, and 8 engineers of
    # whom one converted: too few to trust.
    LeadFactory.create_batch(40, job_title="Head of Sales", opportunity_at=now)
    LeadFactory.create_batch(60, job_title="Analyst")
    LeadFactory.create_batch(7, job_title="Engineer")
    LeadFactory.create(job_title="Engineer", opportunity_at=now)

    rows = {row.feature.key: row for row in scoring_suggestions().rows}

    engineer = rows["title:engineer"]
    assert (engineer.leads, engineer.conversions, engineer.doubt) == (
        8, 1, "Only 8 leads have it."
    )  # fmt: skip
    assert engineer.uncertain is True
    assert (rows["title:head"].leads, rows["title:head"].uncertain) == (40, False)

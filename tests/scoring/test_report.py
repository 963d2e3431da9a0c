"""The review's figures on a small fixed data set, each computed by hand below."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from leads.models import Lead
from scoring.report import Share, month_window, review_report, score_auc
from scoring.services import scoring_settings
from tests.factories import LeadFactory, OpportunityFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
OCT_1 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
DEC_1 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def nov(day: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, 12, tzinfo=dt.UTC)


def lead(created: dt.datetime, **fields: Any) -> Lead:
    made = LeadFactory.create(**fields)
    Lead.objects.filter(pk=made.pk).update(created_at=created)
    return made


@pytest.fixture
def leads() -> dict[str, Lead]:
    """Nine leads around November 2026 (qualified score in brackets):

    L1 new Nov 2, MQL 3, opp 10, customer 20 (55), organic, won 1000 EUR
    L2 new Nov 2, MQL 5, opp 15 (40), paid
    L3 new Oct 1, MQL Nov 4, nothing after: noise, organic, score 70
    L4 new Nov 20, MQL 25 (too young to be noise), event, score 5
    L5 new Oct 10, never MQL, customer Nov 15 (5): missed, event, won 500 EUR + 300 USD
    L6 new Nov 10, score -5, organic
    L7 new Sep 1, customer Oct 1 (90), paid: only in the AUC
    L8 new Dec 2, score 100: only in the distribution
    L9 new Nov 1, MQL 2, opp 6, customer 12 (48), paid, won 2000 EUR
    """
    made = {
        "L1": lead(nov(2), score=60, grade="hot", fit_grade="A", engagement_grade="1",
                   source="organic", mql_at=nov(3), opportunity_at=nov(10), customer_at=nov(20),
                   qualified_score=55),
        "L2": lead(nov(2), score=30, grade="warm", fit_grade="B", engagement_grade="2",
                   source="paid", mql_at=nov(5), opportunity_at=nov(15), qualified_score=40),
        "L3": lead(dt.datetime(2026, 10, 1, tzinfo=dt.UTC), score=70, grade="hot",
                   fit_grade="A", engagement_grade="2", source="organic", mql_at=nov(4)),
        "L4": lead(nov(20), score=5, grade="cold", fit_grade="C", engagement_grade="3",
                   source="event", mql_at=nov(25)),
        "L5": lead(dt.datetime(2026, 10, 10, tzinfo=dt.UTC), score=5, grade="cold",
                   fit_grade="A", engagement_grade="4", source="event", customer_at=nov(15),
                   qualified_score=5),
        "L6": lead(nov(10), score=-5, grade="cold", fit_grade="D", engagement_grade="4",
                   source="organic"),
        "L7": lead(dt.datetime(2026, 9, 1, tzinfo=dt.UTC), score=80, grade="hot",
                   fit_grade="A", engagement_grade="1", source="paid",
                   mql_at=dt.datetime(2026, 9, 5, tzinfo=dt.UTC),
                   opportunity_at=dt.datetime(2026, 9, 10, tzinfo=dt.UTC),
                   customer_at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC), qualified_score=90),
        "L8": lead(dt.datetime(2026, 12, 2, tzinfo=dt.UTC), score=100, grade="hot",
                   fit_grade="B", engagement_grade="1"),
        "L9": lead(nov(1), score=45, grade="warm", fit_grade="A", engagement_grade="1",
                   source="paid", mql_at=nov(2), opportunity_at=nov(6), customer_at=nov(12),
                   qualified_score=48),
    }  # fmt: skip
    won = {"status": "won", "opened_at": nov(1)}
    OpportunityFactory.create(lead=made["L1"], value=1000, closed_at=nov(20), **won)
    OpportunityFactory.create(lead=made["L5"], value=500, closed_at=nov(15), **won)
    OpportunityFactory.create(lead=made["L5"], value=300, currency="USD", closed_at=nov(16), **won)
    OpportunityFactory.create(lead=made["L9"], value=2000, closed_at=nov(12), **won)
    # Open, and won outside the window: neither counts.
    OpportunityFactory.create(lead=made["L2"], value=9999, opened_at=nov(15))
    OpportunityFactory.create(
        lead=made["L7"],
        value=7777,
        status="won",
        opened_at=nov(1),
        closed_at=OCT_1,
    )
    return made


def test_month_window_defaults_to_the_last_full_month() -> None:
    window = month_window(now=NOW)
    assert (window.start, window.end) == (
        nov(1).replace(hour=0),
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    )
    january = month_window("2026-01")
    assert (january.start.month, january.end.month, january.end.year) == (1, 2, 2026)
    december = month_window("2025-12")
    assert (december.end.year, december.end.month) == (2026, 1)


def test_distribution_by_grade_rating_and_band(leads: dict[str, Lead]) -> None:
    report = review_report(window=month_window(now=NOW), settings=scoring_settings(), now=NOW)
    assert report.total_leads == 9
    assert report.by_grade == {"hot": 4, "warm": 2, "cold": 3}
    assert report.by_rating == {"A1": 3, "B2": 1, "A2": 1, "C3": 1, "A4": 1, "D4": 1, "B1": 1}
    assert report.band_labels == ["< 0", "0 - 19", "20 - 49", "50 - 99", "100+"]
    # Current scores: -5 | 5 5 | 30 45 | 60 70 80 | 100
    assert report.by_band == [1, 2, 2, 3, 1]


def test_weeks(leads: dict[str, Lead]) -> None:
    report = review_report(window=month_window(now=NOW), settings=scoring_settings(), now=NOW)
    assert [(w.week.isoformat(), w.mqls, w.opportunities, w.customers) for w in report.weeks] == [
        ("2026-11-02", 4, 1, 0),
        ("2026-11-09", 0, 2, 2),
        ("2026-11-16", 0, 0, 1),
        ("2026-11-23", 1, 0, 0),
    ]


def test_funnel_total(leads: dict[str, Lead]) -> None:
    report = review_report(window=month_window(now=NOW), settings=scoring_settings(), now=NOW)
    total = report.funnel_total
    assert (total.new_leads, total.mqls, total.opportunities, total.customers) == (5, 5, 3, 2)
    assert total.mql_to_opportunity == Share(3, 5)
    assert total.opportunity_to_customer == Share(2, 3)
    # L1 17 days, L9 10 days.
    assert total.median_days_to_won == 13.5
    # Judged: MQL before Nov 7 noon (L1, L2, L3, L9); L3 went nowhere.
    assert total.noise == Share(1, 4)
    # Customers in November: L1, L5, L9; L5 never MQL.
    assert total.missed == Share(1, 3)
    assert (total.won, total.average_value) == (3, Decimal("1166.67"))
    assert report.won_other_currency == 1


def test_funnel_by_band_grade_and_source(leads: dict[str, Lead]) -> None:
    report = review_report(window=month_window(now=NOW), settings=scoring_settings(), now=NOW)

    def figures(rows: list[Any]) -> list[tuple[Any, ...]]:
        return [
            (r.label, r.new_leads, r.mqls, r.opportunities, r.customers, r.median_days_to_won,
             (r.noise.part, r.noise.whole), (r.missed.part, r.missed.whole), r.won,
             r.average_value)
            for r in rows
        ]  # fmt: skip

    # Qualified score when set: L6 -5 | L4 5, L5 5 | L2 40, L9 48 | L1 55, L3 70
    assert figures(report.funnel_by_band) == [
        ("< 0", 1, 0, 0, 0, None, (0, 0), (0, 0), 0, None),
        ("0 - 19", 1, 1, 0, 0, None, (0, 0), (1, 1), 1, Decimal("500.00")),
        ("20 - 49", 2, 2, 2, 1, 10.0, (0, 2), (0, 1), 1, Decimal("2000.00")),
        ("50 - 99", 1, 2, 1, 1, 17.0, (1, 2), (0, 1), 1, Decimal("1000.00")),
    ]
    by_source = {r.key: r for r in report.funnel_by_source}
    assert sorted(by_source) == ["event", "organic", "paid"]
    paid = by_source["paid"]
    assert (paid.new_leads, paid.mqls, paid.opportunities, paid.customers) == (2, 2, 2, 1)
    assert paid.average_value == Decimal("2000.00")
    by_grade = {r.key: r for r in report.funnel_by_grade}
    assert (by_grade["hot"].mqls, by_grade["hot"].noise) == (2, Share(1, 2))


def test_auc_counts_ties_half(leads: dict[str, Lead]) -> None:
    # Created before Dec 1 (L8 left out). Customers: L1 55, L5 5, L7 90, L9 48;
    # the others: L2 40, L3 70, L4 5, L6 -5. Non-customers below each customer:
    # 3 + (1 + a tie 0.5) + 4 + 3 = 11.5 of 16 pairs.
    auc = score_auc(before=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    assert (auc.value, auc.leads, auc.positives) == (0.71875, 8, 4)


def test_auc_without_positives_is_none(leads: dict[str, Lead]) -> None:
    auc = score_auc(before=dt.datetime(2026, 9, 2, tzinfo=dt.UTC))
    assert (auc.value, auc.leads, auc.positives) == (None, 1, 1)

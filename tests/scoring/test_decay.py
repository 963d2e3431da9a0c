"""Decay and expiry of points, across simulated months on a frozen clock."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.management import call_command

from leads.models import Event, Lead
from scoring.decay import scores_decay
from scoring.models import LeadScore, ScoreCategory, ScoreChange, ScoreSource
from scoring.services import score_adjust, scoring_mismatches
from tests.factories import LeadFactory, ScoreCategoryFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)


def day(n: int) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def decaying(key: str, mode: str, days: int, percent: int | None = None) -> ScoreCategory:
    category = ScoreCategoryFactory.create(key=key)
    category.decay_mode, category.decay_days, category.decay_percent = mode, days, percent
    category.save()
    return category


def give(lead, points, category, key, source=ScoreSource.FLOW, at=None):
    return score_adjust(
        lead=lead,
        delta=points,
        category=category,
        reason="Visited pricing",
        source=source,
        source_key=key,
        occurred_at=at,
    )


def decay_at(when: dt.datetime) -> dict[str, int]:
    with time_machine.travel(when, tick=False):
        return scores_decay()


def points(lead, key="engagement") -> tuple[int, int]:
    lead.refresh_from_db()
    return lead.score, LeadScore.objects.get(lead=lead, category__key=key).score


def decay_rows(lead):
    return list(
        ScoreChange.objects.filter(lead=lead, source=ScoreSource.DECAY)
        .order_by("occurred_at")
        .values_list("delta", "occurred_at", "reason")
    )


def test_percent_decay_per_period_without_activity_exact_and_once():
    # Given engagement losing 10 % per 30 days without activity, and a lead
    # last active on day 0 with 50 engagement points and 5 fit points,
    engagement = decaying("engagement", "percent", 30, 10)
    with time_machine.travel(T0, tick=False):
        lead = LeadFactory.create(last_activity_at=T0)
        give(lead, 50, engagement, "k1")
        give(lead, 5, ScoreCategory.objects.get(key="fit"), "k2")
    lead.refresh_from_db()
    assert (lead.score, lead.grade) == (55, "hot")

    # nothing decays within the first period,
    assert decay_at(day(29)) == {"engagement": 0}
    # one row at the end of it: 10 % of 50,
    assert decay_at(day(30)) == {"engagement": 1}
    assert points(lead) == (50, 45)
    # and beat running twice changes nothing.
    assert decay_at(day(30)) == {"engagement": 0}
    assert decay_at(day(59)) == {"engagement": 0}
    assert decay_at(day(60)) == {"engagement": 1}
    assert points(lead) == (45, 40)  # 4.5 rounds up to 5

    # After 90 days of downtime every period missed is written, in order, each
    # from what the one before left: 40 - 4, 36 - 4 (3.6), 32 - 3 (3.2).
    assert decay_at(day(150)) == {"engagement": 3}
    assert points(lead) == (34, 29)
    assert decay_rows(lead) == [
        (-5, day(30), "no activity for 30 days"),
        (-5, day(60), "no activity for 30 days"),
        (-4, day(90), "no activity for 30 days"),
        (-4, day(120), "no activity for 30 days"),
        (-3, day(150), "no activity for 30 days"),
    ]
    anchor = int(T0.timestamp())
    keys = ScoreChange.objects.filter(lead=lead, source=ScoreSource.DECAY).values_list(
        "source_key", flat=True
    )
    assert sorted(keys) == [
        f"decay:{engagement.pk}:{lead.pk}:{anchor}:30d:{n}" for n in (1, 2, 3, 4, 5)
    ]
    assert decay_at(day(150)) == {"engagement": 0}

    # New activity starts the clock again.
    Lead.objects.filter(pk=lead.pk).update(last_activity_at=day(160))
    assert decay_at(day(189)) == {"engagement": 0}
    assert decay_at(day(190)) == {"engagement": 1}
    assert points(lead) == (31, 26)

    # The grade followed the total (hot at 50, warm from 20); the other
    # grade.changed events tell of the engagement grade moving.
    lead.refresh_from_db()
    assert lead.grade == "warm"
    moves = Event.objects.filter(lead=lead, type="grade.changed").order_by("id")
    assert [
        (e.properties["from"], e.properties["to"])
        for e in moves
        if e.properties["from"] != e.properties["to"]
    ][-1] == ("hot", "warm")
    assert scoring_mismatches() == []


def test_percent_decay_takes_at_least_one_point_and_stops_at_zero():
    engagement = decaying("engagement", "percent", 7, 10)
    with time_machine.travel(T0, tick=False):
        lead = LeadFactory.create(last_activity_at=T0)
        give(lead, 3, engagement, "k1")
    assert decay_at(day(70)) == {"engagement": 3}
    assert points(lead) == (0, 0)
    assert [delta for delta, _, _ in decay_rows(lead)] == [-1, -1, -1]
    assert decay_at(day(80)) == {"engagement": 0}
    assert scoring_mismatches() == []


def test_lead_without_activity_decays_from_its_creation():
    engagement = decaying("engagement", "percent", 30, 50)
    with time_machine.travel(T0, tick=False):
        lead = LeadFactory.create(last_activity_at=None)
        give(lead, 20, engagement, "k1")
    assert decay_at(day(61)) == {"engagement": 2}
    assert points(lead) == (5, 5)


def test_expiry_each_point_its_own_row_linked_to_what_it_expires():
    # Given fit points that expire after 90 days,
    fit = decaying("fit", "expire", 90)
    with time_machine.travel(T0, tick=False):
        lead = LeadFactory.create()
    first = give(lead, 10, fit, "k1", at=T0)
    second = give(lead, 5, fit, "k2", source=ScoreSource.MANUAL, at=day(10))
    give(lead, -3, fit, "k3", source=ScoreSource.MANUAL, at=day(1))  # a penalty stays
    give(lead, 7, fit, "k4", source=ScoreSource.SYSTEM, at=day(1))  # not given by flow or person
    assert points(lead, "fit") == (19, 19)

    assert decay_at(day(89)) == {"fit": 0}
    assert decay_at(day(90)) == {"fit": 1}
    assert points(lead, "fit") == (9, 9)
    assert decay_at(day(95)) == {"fit": 0}
    assert decay_at(day(200)) == {"fit": 1}
    assert points(lead, "fit") == (4, 4)

    expiries = ScoreChange.objects.filter(lead=lead, source=ScoreSource.EXPIRY).order_by("id")
    assert [(e.delta, e.offsets_id, e.source_key, e.occurred_at, e.reason) for e in expiries] == [
        (-10, first.pk, f"expire:{first.pk}", day(90), "expired after 90 days"),
        (-5, second.pk, f"expire:{second.pk}", day(100), "expired after 90 days"),
    ]
    assert decay_at(day(300)) == {"fit": 0}
    assert scoring_mismatches() == []


def test_categories_without_decay_are_left_alone():
    with time_machine.travel(T0, tick=False):
        lead = LeadFactory.create(last_activity_at=T0)
        give(lead, 40, ScoreCategory.objects.get(key="engagement"), "k1")
    assert decay_at(day(400)) == {}
    assert points(lead) == (40, 40)


def test_decay_of_many_leads_in_chunks():
    engagement = decaying("engagement", "percent", 30, 10)
    with time_machine.travel(T0, tick=False):
        leads = LeadFactory.create_batch(7, last_activity_at=T0)
        for index, lead in enumerate(leads):
            give(lead, 10 * (index + 1), engagement, f"k{index}")
        quiet = LeadFactory.create(last_activity_at=day(50))
        give(quiet, 30, engagement, "quiet")
    with time_machine.travel(day(60), tick=False):
        assert scores_decay(chunk=3) == {"engagement": 14}
    scores = [points(lead)[1] for lead in leads]
    # Two periods each: 10 → 9 → 8, 20 → 18 → 16, ..., 60 → 54 → 49 (5.4 rounds down).
    assert scores == [8, 16, 24, 32, 40, 49, 57]
    assert points(quiet) == (30, 30)
    assert scoring_mismatches() == []


def test_scores_decay_command(capsys):
    decaying("engagement", "percent", 30, 10)
    call_command("scores_decay")
    assert capsys.readouterr().out == "engagement: 0 rows\n"


def test_beat_runs_decay_on_the_periodic_queue():
    from config.celery import app

    entry = next(
        e for e in app.conf.beat_schedule.values() if e["task"] == "scoring.tasks.scores_decay"
    )
    assert entry["schedule"] == 3600.0
    assert app.conf.task_routes["scoring.tasks.scores_decay"] == {"queue": "periodic"}

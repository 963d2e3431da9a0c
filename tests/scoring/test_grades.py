"""Grades: the rule (``scoring.rules.grades_for``) and the database's regrade
(``grades_recompute``) agree over every hot rule and stage; a closed lead
(customer, lost, disqualified) is never hot; a stage change regrades."""

import pytest

from leads.models import Event, Lead, Stage
from leads.services.events import events_process
from leads.services.leads import lead_update
from scoring.models import HotRule, ScoreCategory, ScoringSettings
from scoring.rules import grades_for
from scoring.services import grades_recompute, scoring_settings
from tests.factories import LeadFactory, LeadScoreFactory, ScoreCategoryFactory

pytestmark = pytest.mark.django_db

CLOSED = ("customer", "lost", "disqualified")

# (total, fit points, engagement points) with the default thresholds: warm 20,
# hot 50; fit A 40, B 25, C 10; engagement 1 60, 2 30, 3 10; axes: B and 2.
POINTS = {
    "high total, low engagement": (60, 40, 20),
    "both axes": (55, 25, 30),
    "axes but a low total": (15, 25, 30),
    "warm": (30, 30, 0),
    "nothing": (5, 5, 0),
}
# Per hot rule and points: (grade while open, grade when closed, rating).
EXPECTED = {
    HotRule.TOTAL: {
        "high total, low engagement": ("hot", "warm", "A3"),
        "both axes": ("hot", "warm", "B2"),
        "axes but a low total": ("cold", "cold", "B2"),
        "warm": ("warm", "warm", "B4"),
        "nothing": ("cold", "cold", "D4"),
    },
    HotRule.AXES: {
        "high total, low engagement": ("warm", "warm", "A3"),
        "both axes": ("hot", "warm", "B2"),
        "axes but a low total": ("hot", "warm", "B2"),
        "warm": ("warm", "warm", "B4"),
        "nothing": ("cold", "cold", "D4"),
    },
}
MATRIX = [
    (rule, stage, points)
    for rule in (HotRule.TOTAL, HotRule.AXES)
    for stage in Stage.values
    for points in POINTS
]


def _expected(rule, stage, points):
    open_grade, closed_grade, rating = EXPECTED[rule][points]
    return (closed_grade if stage in CLOSED else open_grade), rating


@pytest.mark.parametrize(("rule", "stage", "points"), MATRIX)
def test_the_grade_matrix(rule, stage, points):
    settings = ScoringSettings(hot_rule=rule)
    total, fit, engagement = POINTS[points]
    grades = grades_for(total=total, fit=fit, engagement=engagement, stage=stage, settings=settings)
    grade, rating = _expected(rule, stage, points)
    assert (grades.grade, grades.fit_grade + grades.engagement_grade) == (grade, rating)


def _scored_lead(stage, total, fit, engagement, **fields):
    lead = LeadFactory.create(stage=stage, score=total, **fields)
    LeadScoreFactory.create(lead=lead, category=ScoreCategory.objects.get(key="fit"), score=fit)
    LeadScoreFactory.create(
        lead=lead, category=ScoreCategory.objects.get(key="engagement"), score=engagement
    )
    # What the fit and engagement points leave of the total: a category of its own.
    rest = total - fit - engagement
    if rest:
        LeadScoreFactory.create(
            lead=lead, category=ScoreCategoryFactory.create(key="rest"), score=rest
        )
    return lead


@pytest.mark.parametrize("rule", [HotRule.TOTAL, HotRule.AXES])
def test_grades_recompute_agrees_with_the_rule_for_every_stage(rule):
    settings = scoring_settings()
    ScoringSettings.objects.filter(pk=settings.pk).update(hot_rule=rule)
    settings.refresh_from_db()
    leads = {
        (stage, points): _scored_lead(stage, *POINTS[points])
        for stage in Stage.values
        for points in POINTS
    }

    moved = grades_recompute(settings=settings)

    graded = {
        lead.pk: (lead.grade, lead.rating)
        for lead in Lead.objects.filter(pk__in=[lead.pk for lead in leads.values()])
    }
    expected = {lead.pk: _expected(rule, *key) for key, lead in leads.items()}
    assert graded == expected
    # Every lead started cold D4: each that is graded otherwise moved, once.
    changed = {pk for pk, grades in expected.items() if grades != ("cold", "D4")}
    assert moved == len(changed)
    events = Event.objects.filter(type="grade.changed")
    assert {e.lead_id for e in events} == changed
    assert grades_recompute(settings=settings) == 0


def test_grade_changed_carries_both_axes():
    lead = _scored_lead("lead", 55, 25, 30)

    assert grades_recompute(settings=scoring_settings(), lead_ids=[lead.pk]) == 1

    event = Event.objects.get(lead=lead, type="grade.changed")
    assert (event.name, event.properties) == (
        "hot",
        {
            "from": "cold",
            "to": "hot",
            "score": 55,
            "fit_from": "D",
            "fit_to": "B",
            "engagement_from": "4",
            "engagement_to": "2",
        },
    )


def test_grades_recompute_only_the_leads_asked_for():
    asked = _scored_lead("lead", 55, 25, 30)
    other = _scored_lead("lead", 55, 25, 30)

    assert grades_recompute(settings=scoring_settings(), lead_ids=[asked.pk]) == 1

    assert Lead.objects.get(pk=asked.pk).grade == "hot"
    assert Lead.objects.get(pk=other.pk).grade == "cold"


@pytest.mark.parametrize("stage", CLOSED)
def test_a_closed_stage_drops_a_hot_lead_with_grade_changed(stage):
    lead = _scored_lead("sql", 55, 25, 30)
    grades_recompute(settings=scoring_settings(), lead_ids=[lead.pk])
    Event.objects.all().delete()
    locked = Lead.objects.select_for_update().get(pk=lead.pk)

    lead_update(lead=locked, changes={"stage": stage})
    events_process(event_ids=list(Event.objects.values_list("id", flat=True)))

    lead.refresh_from_db()
    assert (lead.stage, lead.grade, lead.rating) == (stage, "warm", "B2")
    changed = Event.objects.get(type="grade.changed")
    assert (changed.name, changed.properties["from"], changed.properties["to"]) == (
        "warm",
        "hot",
        "warm",
    )
    assert changed.processed_at is not None
    stage_event = Event.objects.get(type="field.changed")
    assert changed.depth == stage_event.depth + 1


def test_reopening_a_lead_makes_it_hot_again():
    lead = _scored_lead("customer", 55, 25, 30)
    grades_recompute(settings=scoring_settings(), lead_ids=[lead.pk])
    assert Lead.objects.get(pk=lead.pk).grade == "warm"
    locked = Lead.objects.select_for_update().get(pk=lead.pk)

    lead_update(lead=locked, changes={"stage": "opportunity"})
    events_process(event_ids=list(Event.objects.values_list("id", flat=True)))

    assert Lead.objects.get(pk=lead.pk).grade == "hot"


def test_a_stage_change_that_moves_no_grade_emits_nothing():
    lead = _scored_lead("lead", 5, 5, 0)
    locked = Lead.objects.select_for_update().get(pk=lead.pk)

    lead_update(lead=locked, changes={"stage": "mql"})
    events_process(event_ids=list(Event.objects.values_list("id", flat=True)))

    assert not Event.objects.filter(type="grade.changed").exists()

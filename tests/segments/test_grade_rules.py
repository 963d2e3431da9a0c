"""Segment rules (and flow conditions, which share them) on the fit and engagement
grades: valid values, the compiled SQL agreeing with the in-memory truth, words,
and a grade change re-checking the segments that read them."""

from __future__ import annotations

import pytest

from core.vocabulary import EngagementGrade, FitGrade
from leads.models import Event, Lead, SegmentMembership
from scoring.services import grades_recompute, scoring_settings
from segments.conditions import compile_tree
from segments.conditions.schema import ConditionError, validate
from segments.conditions.truth import field_rule_truth
from segments.conditions.words import rule_words
from segments.names import Names
from segments.services import dependency_keys, segment_create
from tests.factories import LeadFactory, LeadScoreFactory

pytestmark = pytest.mark.django_db

RULES = [
    {"field": "fit_grade", "op": "is", "value": "A"},
    {"field": "fit_grade", "op": "is_not", "value": "A"},
    {"field": "fit_grade", "op": "in", "value": ["A", "B"]},
    {"field": "fit_grade", "op": "is_set"},
    {"field": "engagement_grade", "op": "is", "value": "4"},
    {"field": "engagement_grade", "op": "in", "value": ["3", "4"]},
    {"field": "engagement_grade", "op": "is_not", "value": "1"},
]


@pytest.mark.parametrize("rule", RULES)
def test_compiled_rule_agrees_with_the_truth_in_memory(rule):
    leads = [
        LeadFactory.create(fit_grade=fit, engagement_grade=engagement)
        for fit in FitGrade.values
        for engagement in EngagementGrade.values
    ]
    validate({"all": [rule]})

    compiled = set(Lead.objects.filter(compile_tree({"all": [rule]})).values_list("pk", flat=True))

    in_memory = {
        lead.pk for lead in leads if field_rule_truth(rule, getattr(lead, rule["field"]), "choice")
    }
    assert compiled == in_memory
    assert len(compiled) in (1, 4, 8, 12, 15, 16)


def test_only_real_grades_are_valid():
    with pytest.raises(ConditionError) as bad:
        validate({"all": [{"field": "fit_grade", "op": "is", "value": "E"}]})
    assert bad.value.fields == {"all[0].value": ["Choose from: A, B, C, D."]}
    with pytest.raises(ConditionError) as bad:
        validate({"all": [{"field": "engagement_grade", "op": "in", "value": ["5"]}]})
    assert bad.value.fields == {"all[0].value": ["Choose from: 1, 2, 3, 4."]}


def test_rules_in_words():
    names = Names()
    assert rule_words({"field": "fit_grade", "op": "in", "value": ["A", "B"]}, names) == (
        "Fit grade is one of A: great fit and B: good fit"
    )
    assert rule_words({"field": "engagement_grade", "op": "is", "value": "4"}, names) == (
        "Engagement grade is 4: not engaged"
    )


def test_a_grade_change_rechecks_segments_on_the_axes(django_capture_on_commit_callbacks):
    segment = segment_create(
        name="Great fits",
        conditions={"all": [{"field": "fit_grade", "op": "in", "value": ["A", "B"]}]},
    )
    lead = LeadFactory.create()
    LeadScoreFactory.create(lead=lead, score=45)  # fit A
    event = Event(type="grade.changed", name="cold", properties={})
    assert dependency_keys(event) == {"field:grade", "field:fit_grade", "field:engagement_grade"}

    with django_capture_on_commit_callbacks(execute=True):
        grades_recompute(settings=scoring_settings(), lead_ids=[lead.pk])

    assert SegmentMembership.objects.filter(
        segment=segment, lead=lead, left_at__isnull=True
    ).exists()

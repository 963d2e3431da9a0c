"""The grade-changed trigger: a grade, or a fit or engagement grade reached (or
bettered), from the ``grade.changed`` event's properties."""

from __future__ import annotations

import pytest

from flows.dryrun import flow_dry_run
from flows.nodes.base import REGISTRY, Names
from flows.rules import grade_reached
from leads.models import Lead
from scoring.models import ScoreCategory
from scoring.services import grades_recompute, scoring_settings
from tests.factories import LeadFactory, LeadScoreFactory
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db


def _props(grade=("cold", "warm"), fit=("D", "B"), engagement=("4", "4")):
    return {
        "from": grade[0],
        "to": grade[1],
        "score": 30,
        "fit_from": fit[0],
        "fit_to": fit[1],
        "engagement_from": engagement[0],
        "engagement_to": engagement[1],
    }


@pytest.mark.parametrize(
    ("properties", "asked", "reached"),
    [
        # Fit reaches B or better: from D to B, or straight to A.
        (_props(fit=("D", "B")), {"fit": "B"}, True),
        (_props(fit=("C", "A")), {"fit": "B"}, True),
        # Already B or better before: not a crossing.
        (_props(fit=("B", "A")), {"fit": "B"}, False),
        # Not there yet, or going down.
        (_props(fit=("D", "C")), {"fit": "B"}, False),
        (_props(fit=("A", "C")), {"fit": "B"}, False),
        (_props(engagement=("3", "2")), {"engagement": "2"}, True),
        (_props(engagement=("2", "1")), {"engagement": "2"}, False),
        # The grade alone: became hot; a fit change while hot is not "became hot".
        (_props(grade=("warm", "hot")), {"grade": "hot"}, True),
        (_props(grade=("hot", "hot")), {"grade": "hot"}, False),
        # Both axes: when the lead comes to meet both.
        (_props(fit=("B", "B"), engagement=("3", "2")), {"fit": "B", "engagement": "2"}, True),
        (_props(fit=("D", "B"), engagement=("4", "3")), {"fit": "B", "engagement": "2"}, False),
        # An event from before the axes: only the grade moved.
        ({"from": "warm", "to": "hot", "score": 60}, {"grade": "hot"}, True),
        ({"from": "warm", "to": "hot", "score": 60}, {"fit": "B"}, False),
        # Nothing asked: never.
        (_props(), {}, False),
    ],
)
def test_grade_reached(properties, asked, reached):
    assert grade_reached(properties=properties, **asked) is reached


def test_a_flow_starts_when_fit_reaches_b_or_better():
    published(
        "Great fit",
        graph(("t", "grade.changed", {"fit": "B"}), ("m", "tag.add", {"tag": "great-fit"})),
    )
    lead = LeadFactory.create()
    points = LeadScoreFactory.create(
        lead=lead, category=ScoreCategory.objects.get(key="fit"), score=30
    )

    grades_recompute(settings=scoring_settings(), lead_ids=[lead.pk])
    drain()
    assert list(lead.tags.values_list("name", flat=True)) == ["great-fit"]

    # B to A: it was B or better already, so the trigger stays quiet.
    lead.tags.clear()
    points.score = 45
    points.save()
    grades_recompute(settings=scoring_settings(), lead_ids=[lead.pk])
    drain()
    assert Lead.objects.get(pk=lead.pk).fit_grade == "A"
    assert list(lead.tags.values_list("name", flat=True)) == []


def test_summaries_and_a_config_without_any_grade():
    node = REGISTRY["grade.changed"]
    assert node.summary is not None
    assert node.summary({"grade": "hot"}, Names()) == "Grade became hot"
    assert node.summary({"fit": "B", "engagement": "2"}, Names()) == (
        "Fit reached B or better and engagement reached 2 or better"
    )
    assert node.subscribe is not None
    assert node.subscribe({"fit": "A"}) == ("grade.changed", "")
    assert node.subscribe({"grade": "hot", "fit": "A"}) == ("grade.changed", "hot")
    assert node.check is not None
    assert node.check({}) == {"grade": ["Choose a grade, a fit grade or an engagement grade."]}
    assert node.check({"engagement": "3"}) == {}


def test_the_dry_run_matches_and_describes_it_as_the_engine_does():
    flow = published(
        "Great fit",
        graph(("t", "grade.changed", {"fit": "B"}), ("m", "tag.add", {"tag": "great-fit"})),
    )
    lead = LeadFactory.create()
    reached = {"type": "grade.changed", "name": "cold", "properties": _props(fit=("C", "B"))}
    bettered = {"type": "grade.changed", "name": "cold", "properties": _props(fit=("B", "A"))}

    started = flow_dry_run(flow=flow, graph=flow.draft, lead=lead, event=reached)
    quiet = flow_dry_run(flow=flow, graph=flow.draft, lead=lead, event=bettered)

    assert (started["trigger"]["matched"], started["trigger"]["summary"]) == (
        True,
        "Fit reached B or better",
    )
    assert quiet["trigger"] == {
        "matched": False,
        "reason": "No trigger of this flow starts on the made-up event “Grade changed: cold”. "
        "It starts on: Fit reached B or better.",
        "event": quiet["trigger"]["event"],
    }

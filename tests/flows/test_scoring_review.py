"""The review's part in flows: today's points per suggestion, the draft made from
accepted suggestions, the review log on publishing a scoring flow, and presets."""

from __future__ import annotations

import pytest

from flows.graph import graph_validate
from flows.lifecycle import flow_publish
from flows.models import Flow, FlowStatus
from flows.presets import PresetRefused, preset_apply
from flows.scoring_review import current_points, suggestions_draft_create
from flows.selectors import scoring_steps
from flows.templates_catalog import FLOW_TEMPLATES, flow_create_from_template
from scoring.models import ReviewLogEntry, ScoreCategory
from scoring.services import scoring_settings
from scoring.suggestions import ACTIVITY, ATTRIBUTE, Feature, Suggestion
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PRICING = Feature(
    "page:/pricing",
    ACTIVITY,
    "Page view: /pricing",
    "engagement",
    {"type": "page.visited", "config": {"url": {"op": "contains", "value": "/pricing"}}},
)
OPENED = Feature(
    "email:opened",
    ACTIVITY,
    "Email opened",
    "engagement",
    {"type": "email.activity", "config": {"activity": "opened"}},
)
MANAGER = Feature(
    "title:manager",
    ATTRIBUTE,
    "Job title: manager",
    "fit",
    {"type": "lead.created", "config": {}},
    {"any": [{"field": "job_title", "op": "contains", "value": "manager"}]},
)
SIZE = Feature(
    "size:50",
    ATTRIBUTE,
    "Company size 50 to 249",
    "fit",
    {"type": "lead.created", "config": {}},
    {"all": [{"field": "company_size", "op": "between", "value": [50, 249]}]},
)
SOURCE = Feature("source:paid", ATTRIBUTE, "Source: Paid", "fit", None)


def _published(key: str) -> Flow:
    flow = flow_create_from_template(template=FLOW_TEMPLATES[key])
    flow_publish(flow=flow)
    return flow


def test_scoring_steps_and_the_points_flows_give_today() -> None:
    _published("email-engagement")
    _published("b2b-fit")
    flow_create_from_template(template=FLOW_TEMPLATES["b2c-engagement"])  # a draft: not live

    steps = scoring_steps()

    assert sorted((s.flow_name, s.node_id, s.points) for s in steps) == [
        ("B2B fit scoring", "decision-maker-score", 20),
        ("B2B fit scoring", "size-score", 15),
        ("B2B fit scoring", "title-score", 10),
        ("Email engagement scoring", "clicked-score", 5),
        ("Email engagement scoring", "opened-score", 2),
        ("Email engagement scoring", "replied-score", 10),
        ("Email engagement scoring", "unsubscribed-score", -10),
    ]
    suggestions = [Suggestion(f, 5, 0.3, 10, 2) for f in (PRICING, OPENED, MANAGER, SIZE, SOURCE)]
    today = current_points(suggestions=suggestions, steps=steps)
    assert {key: (c.points, c.flows) for key, c in today.items()} == {
        "page:/pricing": (0, ()),
        "email:opened": (2, ("Email engagement scoring",)),
        "title:manager": (0, ()),
        "size:50": (15, ("B2B fit scoring",)),
        "source:paid": (0, ()),
    }


def test_accepting_suggestions_makes_a_draft_and_logs_it() -> None:
    marketer = UserFactory.create(role="marketer")

    flow = suggestions_draft_create(
        accepted=[(PRICING, 12), (MANAGER, 8), (SIZE, 6), (OPENED, 0), (SOURCE, 4)],
        user=marketer,
        month="2026-11",
    )

    assert (flow.name, flow.status, flow.published_id) == (
        "Suggested scoring 2026-11",
        FlowStatus.DRAFT,
        None,
    )
    graph = graph_validate(flow.draft)
    assert [(n["id"], n["type"]) for n in graph["nodes"]] == [
        ("new-lead", "lead.created"),
        ("check-1", "condition"),
        ("check-1-score", "score.adjust"),
        ("check-2", "condition"),
        ("check-2-score", "score.adjust"),
        ("activity-1", "page.visited"),
        ("activity-1-score", "score.adjust"),
    ]
    scores = {n["id"]: n["config"] for n in graph["nodes"] if n["type"] == "score.adjust"}
    assert scores == {
        "check-1-score": {"points": 8, "category": "fit", "reason": "Job title: manager"},
        "check-2-score": {"points": 6, "category": "fit", "reason": "Company size 50 to 249"},
        "activity-1-score": {
            "points": 12,
            "category": "engagement",
            "reason": "Page view: /pricing",
        },
    }
    assert sorted((e["source"], e["sourceHandle"], e["target"]) for e in graph["edges"]) == [
        ("activity-1", "next", "activity-1-score"),
        ("check-1", "no", "check-2"),
        ("check-1", "yes", "check-1-score"),
        ("check-1-score", "next", "check-2"),
        ("check-2", "yes", "check-2-score"),
        ("new-lead", "next", "check-1"),
    ]
    entry = ReviewLogEntry.objects.get()
    assert (entry.user, entry.subject, entry.changes) == (
        marketer,
        "flow",
        {"flow": flow.pk, "points": {"page:/pricing": 12, "title:manager": 8, "size:50": 6}},
    )


def test_the_draft_gives_the_difference_to_what_the_flows_give_today() -> None:
    _published("email-engagement")  # opened: 2
    _published("b2b-fit")  # company size 50 to 249: 15

    flow = suggestions_draft_create(
        accepted=[(OPENED, 5), (SIZE, 6), (MANAGER, 8), (PRICING, 0)], user=None
    )

    scores = {n["id"]: n["config"] for n in flow.draft["nodes"] if n["type"] == "score.adjust"}
    assert scores == {
        "check-1-score": {
            "points": -9,
            "category": "fit",
            "reason": "-9 to reach the suggested 6 for Company size 50 to 249",
        },
        "check-2-score": {"points": 8, "category": "fit", "reason": "Job title: manager"},
        "activity-1-score": {
            "points": 3,
            "category": "engagement",
            "reason": "+3 to reach the suggested 5 for Email opened",
        },
    }
    entry = ReviewLogEntry.objects.filter(changes__flow=flow.pk).get()
    assert entry.changes["points"] == {"size:50": -9, "title:manager": 8, "email:opened": 3}


def test_what_the_flows_give_already_is_left_out() -> None:
    _published("email-engagement")  # opened: 2

    with pytest.raises(ValueError, match="do not give already"):
        suggestions_draft_create(accepted=[(OPENED, 2), (SOURCE, 5)], user=None)
    assert not Flow.objects.filter(name="Suggested scoring").exists()


def test_nothing_usable_accepted_is_refused() -> None:
    with pytest.raises(ValueError, match="Pick at least one"):
        suggestions_draft_create(accepted=[(SOURCE, 5), (PRICING, 0)], user=None)
    assert Flow.objects.count() == 0


def test_publishing_a_scoring_flow_is_logged_and_other_flows_are_not() -> None:
    admin = UserFactory.create(role="admin")
    scoring_flow = flow_create_from_template(template=FLOW_TEMPLATES["email-engagement"])
    flow_publish(flow=scoring_flow, user=admin)
    flow_publish(flow=flow_create_from_template(template=FLOW_TEMPLATES["notify-sales-hot"]))

    entry = ReviewLogEntry.objects.get()
    assert (entry.user, entry.subject, entry.summary) == (
        admin,
        "flow",
        "Scoring flow “Email engagement scoring” published as version 1",
    )
    assert entry.changes == {
        "flow": scoring_flow.pk,
        "version": 1,
        "points": {
            "opened-score": 2,
            "clicked-score": 5,
            "replied-score": 10,
            "unsubscribed-score": -10,
        },
    }


def test_b2b_preset_sets_up_scoring() -> None:
    admin = UserFactory.create(role="admin")

    made = preset_apply(preset="b2b", user=admin)

    settings = scoring_settings()
    assert (
        settings.preset,
        settings.warm_threshold,
        settings.hot_threshold,
        settings.hot_rule,
        settings.hot_min_fit,
        settings.hot_min_engagement,
        settings.total_cap,
    ) == ("b2b", 20, 60, "axes", "B", "2", 150)
    categories = {
        c.key: (c.cap, c.decay_mode, c.decay_days, c.decay_percent)
        for c in ScoreCategory.objects.filter(key__in=["fit", "engagement"])
    }
    assert categories == {"fit": (60, "none", None, None), "engagement": (100, "expire", 180, None)}
    assert [(f.name, f.status, f.published_id is not None) for f in made] == [
        ("B2B fit scoring", "active", True),
        ("Email engagement scoring", "active", True),
        ("Notify sales on warm lead", "active", True),
    ]
    preset_entry = ReviewLogEntry.objects.filter(subject="preset").get()
    assert (preset_entry.user, preset_entry.summary) == (admin, "Preset B2B applied")
    assert preset_entry.changes["hot_threshold"] == [50, 60]
    assert preset_entry.changes["engagement.decay_days"] == [None, 180]
    assert preset_entry.changes["flows"] == [f.name for f in made]


def test_a_preset_never_overwrites_silently() -> None:
    preset_apply(preset="b2c", user=None)
    assert scoring_settings().hot_threshold == 70

    with pytest.raises(PresetRefused, match="The B2C preset was applied already"):
        preset_apply(preset="b2b", user=None)
    assert scoring_settings().preset == "b2c"

    preset_apply(preset="b2b", user=None, overwrite=True)
    assert (scoring_settings().preset, scoring_settings().hot_threshold) == ("b2b", 60)


def test_active_scoring_flows_count_as_set_up() -> None:
    _published("email-engagement")
    with pytest.raises(PresetRefused, match="Active scoring flows exist: Email engagement scoring"):
        preset_apply(preset="b2c", user=None)

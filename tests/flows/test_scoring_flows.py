"""Flows that only score (a trigger, then one score step): an event that enters
several of them scores each in turn, exactly as one change at a time would,
on both backends. On PostgreSQL they are written together (``scoring.series``).
"""

import pytest
from django.db import connection

from flows.models import Enrollment, StepRun
from leads.models import Event, EventKey
from leads.services.events import events_process
from scoring.models import LeadScore, ScoreCategory, ScoreChange
from scoring.services import score_adjust, scoring_mismatches
from tests.factories import EventFactory, LeadFactory
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db


def scoring_flow(name: str, points: int, category: str = "engagement", event: str = "Ping"):
    return published(
        name,
        graph(
            ("t", "app.event", {"event": event}),
            ("s", "score.adjust", {"points": points, "category": category, "reason": name}),
        ),
        reentry="always",
    )


def lead_with(points: int, *, stage: str, category: str = "fit"):
    lead = LeadFactory.create(stage=stage)
    score_adjust(
        lead=lead,
        delta=points,
        category=ScoreCategory.objects.get(key=category),
        reason="Before",
        source="manual",
        source_key=f"before:{lead.pk}",
    )
    return lead


def derived(lead, *types):
    return [
        (e.type, e.name, e.properties)
        for e in Event.objects.filter(lead=lead, type__in=types, depth=1).order_by("id")
    ]


def test_an_event_entering_three_scoring_flows_scores_each_in_turn_within_the_cap():
    ScoreCategory.objects.filter(key="engagement").update(cap=12)
    for name, points in (("A", 4), ("B", 5), ("C", 6)):
        scoring_flow(name, points)
    lead = lead_with(15, stage="sql")
    event = EventFactory.create(lead=lead, type="track", name="Ping")
    drain()

    enrollments = list(Enrollment.objects.filter(lead=lead).order_by("id"))
    assert [(e.flow.name, e.status, e.trigger_event_id) for e in enrollments] == [
        ("A", "completed", event.pk),
        ("B", "completed", event.pk),
        ("C", "completed", event.pk),
    ]
    assert all(e.finished_at is not None for e in enrollments)
    runs = list(StepRun.objects.filter(enrollment__lead=lead).order_by("id"))
    assert [(r.enrollment.flow.name, r.node_id, r.node_type, r.status) for r in runs] == [
        ("A", "t", "app.event", "completed"),
        ("A", "s", "score.adjust", "completed"),
        ("B", "t", "app.event", "completed"),
        ("B", "s", "score.adjust", "completed"),
        ("C", "t", "app.event", "completed"),
        ("C", "s", "score.adjust", "completed"),
    ]
    assert [r.output for r in runs if r.node_id == "t"] == [{"event": event.pk}] * 3
    changes = list(ScoreChange.objects.filter(lead=lead, source="flow").order_by("id"))
    # The cap of 12 lets C count 3 of its 6.
    assert [(c.delta, c.capped, c.reason, c.occurred_at) for c in changes] == [
        (4, 0, "A", event.occurred_at),
        (5, 0, "B", event.occurred_at),
        (3, 3, "C", event.occurred_at),
    ]
    scored = [r for r in runs if r.node_id == "s"]
    assert [c.source_key for c in changes] == [f"step:{r.pk}" for r in scored]
    assert [r.output for r in scored] == [
        {"score_change": c.pk, "handles": ["next"]} for c in changes
    ]

    def announced(frm, to, cfrom, cto, reason, **extra):
        return {
            "delta": to - frm,
            "from": frm,
            "to": to,
            "category": "engagement",
            "category_from": cfrom,
            "category_to": cto,
            "reason": reason,
            **extra,
        }

    events = derived(lead, "score.changed", "grade.changed")
    assert [(t, n) for t, n, _ in events] == [
        ("score.changed", "engagement"),
        ("score.changed", "engagement"),
        ("grade.changed", "warm"),
        ("score.changed", "engagement"),
        ("grade.changed", "warm"),
    ]
    assert [p for t, _, p in events if t == "score.changed"] == [
        announced(15, 19, 0, 4, "A"),
        announced(19, 24, 4, 9, "B"),
        announced(24, 27, 9, 12, "C", capped=3),
    ]
    # B makes the lead warm; C moves only its engagement grade (12 points).
    assert [
        (p["from"], p["to"], p["score"], p["engagement_from"], p["engagement_to"])
        for t, _, p in events
        if t == "grade.changed"
    ] == [("cold", "warm", 24, "4", "4"), ("warm", "warm", 27, "4", "3")]
    keys = (
        Event.objects.filter(lead=lead, depth=1)
        .order_by("id")
        .values_list("idempotency_key", flat=True)
    )
    assert list(keys) == [
        f"score.changed:{changes[0].pk}",
        f"score.changed:{changes[1].pk}",
        f"grade.changed:{changes[1].pk}",
        f"score.changed:{changes[2].pk}",
        f"grade.changed:{changes[2].pk}",
    ]
    lead.refresh_from_db()
    assert (lead.score, lead.grade) == (27, "warm")
    assert LeadScore.objects.get(lead=lead, category__key="engagement").score == 12
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    assert scoring_mismatches() == []


def test_a_scoring_flow_that_makes_the_lead_an_mql_moves_the_stage_between_the_others():
    for name, points in (("A", 4), ("B", 8), ("C", 1)):
        scoring_flow(name, points)
    lead = lead_with(40, stage="lead")
    EventFactory.create(lead=lead, type="track", name="Ping")
    drain()

    assert list(
        Enrollment.objects.filter(lead=lead).order_by("id").values_list("flow__name", flat=True)
    ) == ["A", "B", "C"]
    changes = ScoreChange.objects.filter(lead=lead, source="flow").order_by("id")
    assert [(c.reason, c.delta) for c in changes] == [("A", 4), ("B", 8), ("C", 1)]
    events = derived(lead, "score.changed", "grade.changed", "field.changed")
    assert [(t, n, p.get("from"), p.get("to")) for t, n, p in events] == [
        ("score.changed", "engagement", 40, 44),
        ("score.changed", "engagement", 44, 52),
        ("grade.changed", "hot", "warm", "hot"),
        ("field.changed", "stage", "lead", "mql"),
        ("score.changed", "engagement", 52, 53),
    ]
    lead.refresh_from_db()
    assert (lead.score, lead.grade, lead.stage) == (53, "hot", "mql")
    assert scoring_mismatches() == []


def test_a_scoring_flow_whose_category_is_gone_fails_alone_between_the_others():
    scoring_flow("A", 2)
    temporary = ScoreCategory.objects.create(key="webinar", label="Webinar")
    scoring_flow("Gone", 5, category="webinar")
    temporary.delete()
    scoring_flow("C", 3)
    lead = LeadFactory.create(stage="sql")
    EventFactory.create(lead=lead, type="track", name="Ping")
    drain()

    steps = StepRun.objects.filter(node_id="s").order_by("id")
    assert [(s.enrollment.flow.name, s.status) for s in steps] == [
        ("A", "completed"),
        ("Gone", "retrying"),
        ("C", "completed"),
    ]
    lead.refresh_from_db()
    assert lead.score == 5
    assert scoring_mismatches() == []


def test_flows_that_only_score_go_first_so_the_others_see_the_points():
    # Made first, it would run first: it checks the score the event just earned.
    published(
        "Check",
        graph(
            ("t", "app.event", {"event": "Ping"}),
            (
                "c",
                "condition",
                {"conditions": {"all": [{"field": "score", "op": "gte", "value": 10}]}},
            ),
            extra=(("mark", "tag.add", {"tag": "reached"}),),
            branches=(("c", "yes", "mark"),),
        ),
        reentry="always",
    )
    scoring_flow("Score", 10)
    lead = LeadFactory.create(stage="sql")
    EventFactory.create(lead=lead, type="track", name="Ping")
    drain()

    assert lead.tags.filter(name="reached").exists()
    assert list(
        Enrollment.objects.filter(lead=lead).order_by("id").values_list("flow__name", flat=True)
    ) == ["Score", "Check"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements")
def test_an_event_entering_five_scoring_flows_writes_them_in_one_statement(
    django_assert_num_queries,
):
    for n in range(5):
        scoring_flow(f"F{n}", n + 1)
    lead = LeadFactory.create(external_id="u-5", stage="sql")
    event = EventFactory.create(lead=None, user_id="u-5", type="track", name="Ping")
    # The batch's ids (1); the event alone in its transaction: BEGIN, the event
    # locked, its lead locked (moving its activity, linking the event) (3); the
    # batch's cached reads (7: the dynamic segments' and the flows' signatures,
    # each followed by what a worker builds from them, the score categories and
    # the scoring settings; then, below, the outbound hook subscriptions); the
    # lead's points read, and the five enrollments with their steps, changes,
    # totals and events (2); the derived events are applied under the same lock
    # with nothing to write; processed, COMMIT (2).
    with django_assert_num_queries(1 + 3 + 6 + 2 + 1 + 2):
        events_process(event_ids=[event.pk])
    lead.refresh_from_db()
    assert lead.score == 15
    assert Enrollment.objects.filter(lead=lead, status="completed").count() == 5
    # Keyed by their changes, written by the same statement: no key claimed.
    keys = Event.objects.filter(type="score.changed").values_list("idempotency_key", flat=True)
    assert len(keys) == 5
    assert not EventKey.objects.filter(idempotency_key__in=list(keys)).exists()
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    assert scoring_mismatches() == []

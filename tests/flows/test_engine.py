import datetime as dt
import http.server
import json
import threading

import pytest
from django.db import connection
from django.utils import timezone

from flows.engine import _waits_for_events, wakeup_fire, wakeups_claim
from flows.graph import GraphError, graph_validate
from flows.lifecycle import flow_set_status
from flows.models import Delivery, Enrollment, StepRun, Wakeup
from flows.services import webhook_signature
from leads.models import ConsentState, Event, Notification, Task
from leads.services.events import events_process
from scoring.models import LeadScore, ScoreChange
from scoring.services import scoring_mismatches
from segments.services import segment_create
from tests.factories import (
    EventFactory,
    LeadFactory,
    ScoreCategoryFactory,
    TaskFactory,
    UserFactory,
)
from tests.flows.helpers import claim, drain, graph, published

pytestmark = pytest.mark.django_db

ACTIVE = {"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}


def identify(lead, **traits):
    event = EventFactory.create(lead=lead, type="identify", name="", properties=traits)
    drain()
    return event


@pytest.fixture
def rep(db):
    return UserFactory.create(username="rep-1", email="rep1@example.com", role="sales")


@pytest.fixture
def segment(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return segment_create(name="CEOs", conditions=ACTIVE)


def test_entered_segment_scores_and_notifies_the_owner(segment, rep, mailoutbox):
    published(
        "Hot CEO",
        graph(
            ("t", "segment.entered", {"segment": segment.pk}),
            ("score", "score.adjust", {"points": 5, "category": "fit", "reason": "Became a CEO"}),
            (
                "notify",
                "sales.notify",
                {
                    "title": "Call {lead}",
                    "due_in": {"amount": 2, "unit": "days"},
                    "priority": "high",
                },
            ),
        ),
    )
    lead = LeadFactory.create(email="ceo@x.example", first_name="Ada", last_name="King", owner=rep)
    identify(lead, title="CEO")
    lead.refresh_from_db()
    assert lead.score == 5
    change = ScoreChange.objects.get(lead=lead)
    assert (change.delta, change.reason, change.source, change.category.key) == (
        5,
        "Became a CEO",
        "flow",
        "fit",
    )
    task = Task.objects.get(lead=lead)
    assert (task.assignee, task.title, task.priority) == (rep, "Call Ada King", "high")
    assert Notification.objects.get(user=rep).message == "New task: Call Ada King"
    assert [m.to for m in mailoutbox] == [["rep1@example.com"]]
    enrollment = Enrollment.objects.get(lead=lead)
    assert enrollment.status == "completed"
    assert list(
        StepRun.objects.filter(enrollment=enrollment)
        .order_by("id")
        .values_list("node_id", "status")
    ) == [
        ("t", "completed"),
        ("score", "completed"),
        ("notify", "completed"),
    ]


def test_a_rep_is_told_about_a_lead_who_unsubscribed_from_marketing(segment, rep, mailoutbox):
    # Sales notifications are transactional: the lead's unsubscribe and withdrawn
    # consent keep marketing email from the lead, not the rep's note about them.
    published(
        "Hot CEO",
        graph(
            ("t", "segment.entered", {"segment": segment.pk}),
            ("notify", "sales.notify", {"title": "Call {lead}", "priority": "high"}),
        ),
    )
    lead = LeadFactory.create(
        email="ceo@x.example",
        first_name="Ada",
        last_name="King",
        owner=rep,
        unsubscribed=True,
        consent_state=ConsentState.WITHDRAWN,
    )

    identify(lead, title="CEO")

    assert [m.to for m in mailoutbox] == [["rep1@example.com"]]
    assert Task.objects.get(lead=lead).title == "Call Ada King"


def test_unowned_lead_goes_round_robin_and_gets_an_owner(segment, rep):
    other = UserFactory.create(username="rep-2", role="sales")
    TaskFactory.create(assignee=rep, title="busy")
    published(
        "Notify",
        graph(
            ("t", "segment.entered", {"segment": segment.pk}),
            ("n", "sales.notify", {"title": "Hi", "email": False}),
        ),
    )
    lead = LeadFactory.create(email="x@x.example")
    identify(lead, title="CEO")
    lead.refresh_from_db()
    assert lead.owner == other
    assert Task.objects.get(lead=lead).assignee == other


def test_processing_twice_has_one_effect(segment, rep):
    published(
        "Score",
        graph(
            ("t", "app.event", {"event": "Booked a call"}),
            (
                "s",
                "score.adjust",
                {"points": 20, "category": "engagement", "reason": "Booked a call"},
            ),
        ),
    )
    lead = LeadFactory.create()
    event = EventFactory.create(lead=lead, type="track", name="Booked a call")
    events_process(event_ids=[event.pk])
    Event.objects.filter(pk=event.pk).update(processed_at=None)  # a redelivered message
    events_process(event_ids=[event.pk])
    drain()
    assert ScoreChange.objects.filter(lead=lead).count() == 1
    assert Enrollment.objects.filter(lead=lead).count() == 1


def ping_flow(points: int = 2):
    return published(
        "Ping",
        graph(
            ("t", "app.event", {"event": "Ping"}),
            ("s", "score.adjust", {"points": points, "category": "engagement", "reason": "Ping"}),
        ),
        reentry="always",
    )


def test_several_events_of_one_lead_in_one_batch_score_exactly_in_order():
    ping_flow()
    lead = LeadFactory.create(external_id="u-7")
    now = timezone.now()
    # By user id, as a client sends them, and not in the order they happened.
    offsets = [3, 1, 4, 2]
    events = [
        EventFactory.create(
            lead=None,
            user_id="u-7",
            type="track",
            name="Ping",
            occurred_at=now - dt.timedelta(minutes=10 - n),
        )
        for n in offsets
    ]
    events_process(event_ids=[e.pk for e in events])

    lead.refresh_from_db()
    assert (lead.score, lead.last_activity_at) == (8, now - dt.timedelta(minutes=6))
    assert LeadScore.objects.get(lead=lead, category__key="engagement").score == 8
    by_occurrence = sorted(events, key=lambda e: e.occurred_at)
    enrollments = list(Enrollment.objects.filter(lead=lead).order_by("id"))
    assert [e.trigger_event_id for e in enrollments] == [e.pk for e in by_occurrence]
    assert [e.status for e in enrollments] == ["completed"] * 4
    score_steps = list(StepRun.objects.filter(node_id="s").order_by("id"))
    assert [s.enrollment_id for s in score_steps] == [e.pk for e in enrollments]
    changes = list(ScoreChange.objects.filter(lead=lead).order_by("id"))
    assert [(c.delta, c.source_key) for c in changes] == [(2, f"step:{s.pk}") for s in score_steps]
    assert [s.output for s in score_steps] == [
        {"score_change": c.pk, "handles": ["next"]} for c in changes
    ]
    announced = Event.objects.filter(type="score.changed").order_by("id")
    assert [(e.properties["from"], e.properties["to"], e.lead_id) for e in announced] == [
        (0, 2, lead.pk),
        (2, 4, lead.pk),
        (4, 6, lead.pk),
        (6, 8, lead.pk),
    ]
    assert [(e.properties["category_from"], e.properties["category_to"]) for e in announced] == [
        (0, 2),
        (2, 4),
        (4, 6),
        (6, 8),
    ]
    assert set(Event.objects.values_list("lead_id", flat=True)) == {lead.pk}
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    assert scoring_mismatches() == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements")
def test_statements_per_event_through_a_score_step(django_assert_num_queries):
    ping_flow()
    lead = LeadFactory.create(external_id="u-9")
    events = [
        EventFactory.create(lead=None, user_id="u-9", type="track", name="Ping") for _ in range(3)
    ]
    # The batch's ids (1) and its cached reads (7: the dynamic segments' and the
    # flows' signatures, each followed by what a worker builds from them, kept
    # for the next batch while they stay the same; the last is the outbound hook
    # subscriptions); the three events of a known lead go in one transaction:
    # BEGIN, the events locked, their lead locked (3), then per event: lock the
    # lead (moving its activity, linking the event, telling that no wait
    # listens), read its points, and write the enrollment, done, with its two
    # steps, the ledger row, the totals and the score.changed event (one
    # statement, tests/flows/test_scoring_flows.py) (3); then all processed,
    # COMMIT (2).
    with django_assert_num_queries(1 + 7 + 3 + 3 * 3 + 2):
        events_process(event_ids=[e.pk for e in events])
    lead.refresh_from_db()
    assert lead.score == 6


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements")
def test_an_event_entering_three_flows_writes_the_scoring_ones_together(
    django_assert_num_queries,
):
    # Two scoring flows and one that waits, all on the same event.
    ping_flow(points=2)
    published(
        "Pong",
        graph(
            ("t", "app.event", {"event": "Ping"}),
            ("s", "score.adjust", {"points": 3, "category": "engagement", "reason": "Pong"}),
        ),
        reentry="always",
    )
    published(
        "Later",
        graph(
            ("t", "app.event", {"event": "Ping"}),
            ("w", "wait", {"amount": 2, "unit": "days"}),
            ("s", "score.adjust", {"points": 7, "category": "engagement", "reason": "Later"}),
        ),
        reentry="always",
    )
    lead = LeadFactory.create(external_id="u-3")
    event = EventFactory.create(lead=None, user_id="u-3", type="track", name="Ping")
    # The batch's ids (1) and cached reads (7, as above); BEGIN, the event locked, its
    # lead locked (3); the lead's points read and both scoring flows written
    # together (2); the waiting flow's opening, its wait's wake-up and row (3;
    # a wait writes nothing itself, so it takes no savepoint); its status
    # alone, as the last of the event's (1); processed, COMMIT (2).
    with django_assert_num_queries(1 + 7 + 3 + 2 + 3 + 1 + 2):
        events_process(event_ids=[event.pk])

    lead.refresh_from_db()
    assert lead.score == 5
    enrollments = list(Enrollment.objects.filter(lead=lead).order_by("id"))
    assert [(e.flow.name, e.status, e.finished_at is not None) for e in enrollments] == [
        ("Ping", "completed", True),
        ("Pong", "completed", True),
        ("Later", "waiting", False),
    ]
    runs = StepRun.objects.filter(enrollment__lead=lead).order_by("id")
    assert [(r.enrollment.flow.name, r.node_id, r.status) for r in runs] == [
        ("Ping", "t", "completed"),
        ("Ping", "s", "completed"),
        ("Pong", "t", "completed"),
        ("Pong", "s", "completed"),
        ("Later", "t", "completed"),
        ("Later", "w", "waiting"),
    ]
    changes = list(ScoreChange.objects.filter(lead=lead).order_by("id"))
    scored = [r for r in runs if r.node_id == "s"]
    assert [r.output for r in scored] == [
        {"score_change": c.pk, "handles": ["next"]} for c in changes
    ]
    assert all(r.finished_at is not None for r in scored)
    assert Wakeup.objects.get().step == runs[5]


@pytest.mark.parametrize(
    ("reentry", "days", "expected"), [("once", None, 1), ("always", None, 3), ("days", 7, 1)]
)
def test_reentry_rules(reentry, days, expected):
    published(
        "R",
        graph(
            ("t", "app.event", {"event": "Ping"}),
            ("s", "score.adjust", {"points": 1, "category": "engagement", "reason": "Ping"}),
        ),
        reentry=reentry,
        reentry_days=days,
    )
    lead = LeadFactory.create()
    for n in range(3):
        EventFactory.create(lead=lead, type="track", name="Ping", idempotency_key=f"p{n}")
        drain()
    assert Enrollment.objects.filter(lead=lead).count() == expected
    lead.refresh_from_db()
    assert lead.score == expected


def test_condition_branches():
    published(
        "Branch",
        graph(
            ("t", "app.event", {"event": "Signed up for trial"}),
            (
                "c",
                "condition",
                {"conditions": {"all": [{"field": "company_size", "op": "gte", "value": 25}]}},
            ),
            extra=(
                ("big", "tag.add", {"tag": "big-company"}),
                ("small", "tag.add", {"tag": "small-company"}),
            ),
            branches=(("c", "yes", "big"), ("c", "no", "small")),
        ),
        reentry="always",
    )
    big = LeadFactory.create(company_size=100)
    small = LeadFactory.create(company_size=3)
    for lead in (big, small):
        EventFactory.create(lead=lead, type="track", name="Signed up for trial")
    drain()
    assert list(big.tags.values_list("name", flat=True)) == ["big-company"]
    assert list(small.tags.values_list("name", flat=True)) == ["small-company"]


def test_wait_then_continue_through_a_wakeup():
    published(
        "Wait",
        graph(
            ("t", "app.event", {"event": "Go"}),
            ("w", "wait", {"amount": 2, "unit": "days"}),
            ("s", "tag.add", {"tag": "nudged"}),
        ),
    )
    lead = LeadFactory.create()
    EventFactory.create(lead=lead, type="track", name="Go")
    drain()
    wakeup = Wakeup.objects.get()
    assert wakeup.due_at - timezone.now() > dt.timedelta(days=1, hours=23)
    assert Enrollment.objects.get().status == "waiting"
    assert claim() == []  # not due yet
    Wakeup.objects.update(due_at=timezone.now() - dt.timedelta(seconds=1))
    claimed = claim()
    assert claimed == [wakeup.pk]
    assert list(lead.tags.values_list("name", flat=True)) == ["nudged"]
    assert Enrollment.objects.get().status == "completed"
    assert not Wakeup.objects.exists()


def test_pause_holds_waiting_leads_and_resume_continues():
    flow = published(
        "Wait",
        graph(
            ("t", "app.event", {"event": "Go"}),
            ("w", "wait", {"amount": 1, "unit": "minutes"}),
            ("s", "tag.add", {"tag": "done"}),
        ),
    )
    lead = LeadFactory.create()
    EventFactory.create(lead=lead, type="track", name="Go", idempotency_key="g1")
    drain()
    flow_set_status(flow=flow, status="paused")
    Wakeup.objects.update(due_at=timezone.now() - dt.timedelta(seconds=1))
    assert claim() == []
    EventFactory.create(lead=LeadFactory.create(), type="track", name="Go", idempotency_key="g2")
    drain()
    assert Enrollment.objects.count() == 1  # paused: nobody new enters
    flow_set_status(flow=flow, status="active")
    assert len(claim()) == 1
    assert list(lead.tags.values_list("name", flat=True)) == ["done"]


def test_a_wakeup_claimed_before_a_pause_waits_for_the_resume():
    flow = published(
        "Wait",
        graph(
            ("t", "app.event", {"event": "Go"}),
            ("w", "wait", {"amount": 1, "unit": "minutes"}),
            ("s", "tag.add", {"tag": "done"}),
        ),
    )
    lead = LeadFactory.create()
    EventFactory.create(lead=lead, type="track", name="Go", idempotency_key="g1")
    drain()
    Wakeup.objects.update(due_at=timezone.now() - dt.timedelta(seconds=1))
    [claimed] = wakeups_claim()  # claimed; its message not yet run
    flow_set_status(flow=flow, status="paused")
    wakeup_fire(wakeup_id=claimed)
    wakeup = Wakeup.objects.get()
    assert (wakeup.claimed_at, wakeup.held) == (None, True)
    assert not lead.tags.exists()
    assert claim() == []
    flow_set_status(flow=flow, status="active")
    assert Wakeup.objects.get().held is False
    assert claim() == [claimed]
    assert list(lead.tags.values_list("name", flat=True)) == ["done"]


# Waits up to three days for the lead's first project.
UNTIL_PROJECT = (
    "u",
    "wait.until",
    {"event": {"type": "app.event", "config": {"event": "Created project"}}, "within_days": 3},
)


def test_wait_until_met_and_timeout():
    published(
        "Until",
        graph(
            ("t", "app.event", {"event": "Signed up for trial"}),
            UNTIL_PROJECT,
            extra=(
                ("met", "tag.add", {"tag": "activated"}),
                ("late", "tag.add", {"tag": "stalled"}),
            ),
            branches=(("u", "met", "met"), ("u", "timeout", "late")),
        ),
        reentry="always",
    )
    quick, slow = LeadFactory.create(), LeadFactory.create()
    for lead in (quick, slow):
        EventFactory.create(lead=lead, type="track", name="Signed up for trial")
    drain()
    EventFactory.create(lead=quick, type="track", name="Created project")
    drain()
    Wakeup.objects.update(due_at=timezone.now() - dt.timedelta(seconds=1))
    claim()
    assert list(quick.tags.values_list("name", flat=True)) == ["activated"]
    assert list(slow.tags.values_list("name", flat=True)) == ["stalled"]


def test_a_waits_reads_are_skipped_only_while_no_active_flow_waits_for_events():
    ping_flow()
    assert _waits_for_events() is False
    until = published(
        "Until",
        graph(
            ("t", "app.event", {"event": "Signed up for trial"}),
            UNTIL_PROJECT,
        ),
    )
    assert _waits_for_events() is True
    flow_set_status(flow=until, status="paused")
    assert _waits_for_events() is False


def test_flows_that_retrigger_each_other_are_stopped_by_the_depth_limit():
    published(
        "Ping",
        graph(
            ("t", "tag.added", {"tag": "ping"}),
            ("r", "tag.remove", {"tag": "ping"}),
            ("a", "tag.add", {"tag": "pong"}),
        ),
        reentry="always",
    )
    published(
        "Pong",
        graph(
            ("t", "tag.added", {"tag": "pong"}),
            ("r", "tag.remove", {"tag": "pong"}),
            ("a", "tag.add", {"tag": "ping"}),
        ),
        reentry="always",
    )
    lead = LeadFactory.create()
    EventFactory.create(lead=lead, type="track", name="Start")
    from leads.services.leads import lead_tags_change

    lead_tags_change(lead=lead, add=["ping"])
    drain()
    stopped = Event.objects.filter(error__startswith="Stopped: derived-event chain")
    assert stopped.exists()
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    assert Enrollment.objects.filter(lead=lead).count() < 20


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((dict(self.headers), body))
        self.send_response(_Hook.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    _Hook.received = []
    _Hook.status = 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_webhook_is_signed_and_recorded(hook_server):
    published(
        "Hook",
        graph(
            ("t", "app.event", {"event": "Paid"}),
            ("h", "webhook.send", {"url": hook_server, "secret": "s3cret"}),
            ("tag", "tag.add", {"tag": "synced"}),
        ),
    )
    lead = LeadFactory.create(email="w@x.example")
    EventFactory.create(lead=lead, type="track", name="Paid")
    drain()
    headers, body = _Hook.received[0]
    assert headers["X-Leadflow-Signature"] == webhook_signature("s3cret", body)
    payload = json.loads(body)
    assert (payload["lead"]["email"], payload["event"]["name"]) == ("w@x.example", "Paid")
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.response_code, delivery.attempts) == ("sent", 200, 1)
    assert list(lead.tags.values_list("name", flat=True)) == ["synced"]
    assert Enrollment.objects.get().status == "completed"


def test_failing_webhook_retries_then_fails_the_step(
    hook_server, django_capture_on_commit_callbacks
):
    from flows.services import delivery_send

    _Hook.status = 500
    published(
        "Hook",
        graph(
            ("t", "app.event", {"event": "Paid"}),
            ("h", "webhook.send", {"url": hook_server}),
            ("tag", "tag.add", {"tag": "synced"}),
        ),
    )
    lead = LeadFactory.create()
    EventFactory.create(lead=lead, type="track", name="Paid")
    drain()
    delivery = Delivery.objects.get()
    for _ in range(4):
        delivery.refresh_from_db()
        assert delivery.status == "pending"
        assert delivery.next_attempt_at is not None
        delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 5, 500)
    step = StepRun.objects.get(node_id="h")
    assert step.status == "failed"
    assert step.error.startswith("Delivery failed after 5 tries: HTTP 500")
    assert Enrollment.objects.get().status == "failed"
    assert not lead.tags.exists()


def test_failing_action_retries_with_backoff_then_fails(monkeypatch):
    from flows.nodes import REGISTRY

    published("Boom", graph(("t", "app.event", {"event": "Go"}), ("s", "tag.add", {"tag": "x"})))

    node = REGISTRY["tag.add"]
    original = node.execute

    def explode(ctx):
        raise RuntimeError("tag service down")

    object.__setattr__(node, "execute", explode)
    try:
        lead = LeadFactory.create()
        EventFactory.create(lead=lead, type="track", name="Go")
        drain()
        step = StepRun.objects.get(node_id="s")
        assert (step.status, step.attempts) == ("retrying", 1)
        for attempt in range(2, 5):
            Wakeup.objects.update(due_at=timezone.now() - dt.timedelta(seconds=1))
            for wakeup_id in wakeups_claim():
                wakeup_fire(wakeup_id=wakeup_id)
            step.refresh_from_db()
            assert step.attempts == attempt
        assert step.status == "failed"
        assert step.error == "RuntimeError: tag service down"
        assert Enrollment.objects.get().status == "failed"
    finally:
        object.__setattr__(node, "execute", original)


def test_a_condition_that_fails_fails_its_step_and_a_database_error_fails_the_event(
    monkeypatch,
):
    """A condition writes nothing and runs without a savepoint: its own failure
    still fails only its step, while a database error, which leaves nothing
    to go back to, rolls the event back for a retry."""
    from django.db import DatabaseError

    from flows.nodes import logic

    published(
        "Check",
        graph(
            ("t", "app.event", {"event": "Go"}),
            ("c", "condition", {"conditions": {"all": [{"field": "country", "op": "is_set"}]}}),
        ),
        reentry="always",
    )
    lead = LeadFactory.create()

    def broken(**kwargs):
        raise ValueError("rule cannot be read")

    monkeypatch.setattr(logic, "conditions_hold", broken)
    EventFactory.create(lead=lead, type="track", name="Go", idempotency_key="one")
    drain()
    step = StepRun.objects.get(node_id="c")
    assert (step.status, step.attempts, step.error) == (
        "retrying",
        1,
        "ValueError: rule cannot be read",
    )
    assert not Event.objects.filter(processed_at__isnull=True).exists()

    def refused(**kwargs):
        raise DatabaseError("canceling statement due to statement timeout")

    monkeypatch.setattr(logic, "conditions_hold", refused)
    event = EventFactory.create(lead=lead, type="track", name="Go", idempotency_key="two")
    events_process(event_ids=[event.pk])
    event.refresh_from_db()
    assert event.processed_at is None
    assert (event.attempts, event.error) == (
        1,
        "DatabaseError: canceling statement due to statement timeout",
    )
    assert Enrollment.objects.filter(trigger_event_id=event.pk).count() == 0
    assert StepRun.objects.filter(node_id="c").count() == 1


def test_graph_validation_reports_per_node(segment):
    bad = {
        "nodes": [
            {"id": "t", "type": "segment.entered", "config": {"segment": 999999}},
            {"id": "s", "type": "score.adjust", "config": {"points": 0, "category": "fit"}},
            {
                "id": "c",
                "type": "condition",
                "config": {"conditions": {"all": [{"field": "nope", "op": "is", "value": 1}]}},
            },
            {"id": "x", "type": "teleport", "config": {}},
            {"id": "lonely", "type": "tag.add", "config": {"tag": "t"}},
            {"id": "a", "type": "tag.add", "config": {"tag": "a"}},
            {"id": "b", "type": "tag.add", "config": {"tag": "b"}},
        ],
        "edges": [
            {"id": "1", "source": "t", "target": "s"},
            {"id": "2", "source": "s", "target": "c"},
            {"id": "3", "source": "c", "sourceHandle": "maybe", "target": "a"},
            {"id": "4", "source": "s", "target": "t"},
            {"id": "5", "source": "c", "sourceHandle": "yes", "target": "a"},
            {"id": "6", "source": "a", "target": "b"},
            {"id": "7", "source": "b", "target": "a"},
        ],
    }
    with pytest.raises(GraphError) as caught:
        graph_validate(bad)
    nodes = caught.value.problems["nodes"]
    assert nodes["t"] == {
        "config.segment": ["The segment chosen (999999) was deleted: choose another."],
        "edges": ["A trigger starts the flow, so nothing can lead into it."],
    }
    assert nodes["s"]["config.points"] == ["“Points” cannot be 0."]
    assert nodes["s"]["config.reason"] == [
        "Say why the lead gets the points: the reason is shown on its profile."
    ]
    assert nodes["c"] == {
        "config.conditions.all[0].field": ["There is no field called “nope”."],
        "edges": [
            "This step has no output “maybe”; its outputs are: yes, no. "
            "Connect one of those instead."
        ],
    }
    assert nodes["x"] == {
        "type": ["This kind of step (teleport) does not exist: delete it."],
        "node": ["No trigger leads to this step."],
    }
    assert nodes["lonely"] == {"node": ["No trigger leads to this step."]}
    loop = ["This step is part of a loop: a lead would go round it forever."]
    assert nodes["a"] == {"node": loop}
    assert nodes["b"] == {"node": loop}
    with pytest.raises(GraphError) as caught:
        graph_validate(
            {"nodes": [{"id": "a", "type": "tag.add", "config": {"tag": "x"}}], "edges": []}
        )
    assert caught.value.problems["graph"] == [
        "Add a trigger: it decides which leads start the flow, and when."
    ]


def test_a_score_step_whose_category_is_gone_fails_alone():

    temporary = ScoreCategoryFactory.create(key="webinar")
    published(
        "Webinar",
        graph(
            ("t", "app.event", {"event": "Joined"}),
            ("s", "score.adjust", {"points": 5, "category": "webinar", "reason": "Joined"}),
        ),
    )
    temporary.delete()
    lead = LeadFactory.create()
    event = EventFactory.create(lead=lead, type="track", name="Joined", idempotency_key="j1")
    drain()
    event.refresh_from_db()
    assert (event.processed_at is not None, event.error) == (True, "")
    step = StepRun.objects.get(node_id="s")
    assert (step.status, step.error) == ("retrying", "StepError: No score category 'webinar'.")
    assert not ScoreChange.objects.exists()
    lead.refresh_from_db()
    assert lead.score == 0

"""Negative scoring out of the box: the "emails not opened in a row" trigger, the
"Negative signals" template, and steps that call on people skipping old events."""

import datetime as dt

import pytest
from django.utils import timezone

from flows.dryrun import flow_dry_run
from flows.lifecycle import flow_publish
from flows.models import Enrollment, StepRun, Wakeup
from flows.rules import stale_cause_skip, unopened_streak_reached
from flows.templates_catalog import FLOW_TEMPLATES, flow_create_from_template
from leads.models import Event, Lead, Notification, Task
from scoring.models import ScoreChange
from tests.factories import EventFactory, LeadFactory, UserFactory
from tests.flows.helpers import claim, drain, graph, published

pytestmark = pytest.mark.django_db

D, OPEN, C = "email.delivered", "email.opened", "email.clicked"
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("recent", "count", "reached"),
    [
        ([D, D], 3, False),  # not yet
        ([D, D, D], 3, True),  # the third, no email before
        ([D, D, D, OPEN, D], 3, True),  # the third since an open
        ([D, D, D, C], 3, True),  # a click counts as an open
        ([D, D, D, D], 3, False),  # the fourth: fired at the third already
        ([D, D, OPEN, D], 3, False),  # an open broke the streak
        ([OPEN, D, D], 3, False),  # the newest is no delivery
        ([D, D], 2, True),
    ],
)
def test_unopened_streak_reached(recent, count, reached):
    assert unopened_streak_reached(recent=recent, count=count) is reached


@pytest.mark.parametrize(
    ("days_ago", "expected"),
    [
        (None, None),
        (3, None),  # exactly the limit still counts as recent
        (10, "skipped: the event happened on 2026-10-23, more than 3 days ago"),
    ],
)
def test_stale_cause_skip(days_ago, expected):
    now = T0 + dt.timedelta(days=0)
    at = None if days_ago is None else now - dt.timedelta(days=days_ago)
    assert stale_cause_skip(occurred_at=at, taken_at=now, max_age_days=3) == expected


def test_stale_cause_skip_says_one_day():
    at = T0 - dt.timedelta(days=2)
    assert stale_cause_skip(occurred_at=at, taken_at=T0, max_age_days=1) == (
        "skipped: the event happened on 2026-10-31, more than 1 day ago"
    )


def _email(lead: Lead, kind: str, minutes: int) -> Event:
    event = EventFactory.create(
        lead=lead,
        type=kind,
        name="Newsletter",
        occurred_at=T0 + dt.timedelta(minutes=minutes),
        received_at=T0 + dt.timedelta(minutes=minutes),
        source="email:test",
    )
    drain()
    return event


def test_email_ignored_fires_at_the_nth_unopened_delivery_once_per_streak():
    flow = published(
        "Ignored",
        graph(
            ("t", "email.ignored", {"count": 3}),
            ("minus", "score.adjust", {"points": -5, "category": "engagement", "reason": "x"}),
        ),
        reentry="always",
    )
    lead = LeadFactory.create()

    def fired() -> list[int]:
        return list(
            Enrollment.objects.filter(flow=flow, lead=lead)
            .order_by("id")
            .values_list("trigger_event_id", flat=True)
        )

    first = [_email(lead, D, minute) for minute in (1, 2)]
    assert fired() == []
    third = _email(lead, D, 3)
    assert fired() == [third.pk]
    _email(lead, D, 4)  # the fourth in a row: same streak
    _email(lead, OPEN, 5)  # opened: a new streak begins
    for minute in (6, 7):
        _email(lead, D, minute)
    assert fired() == [third.pk]
    sixth = _email(lead, D, 8)
    _email(lead, C, 9)  # a click resets too
    tenth = [_email(lead, D, minute) for minute in (10, 11, 12)][-1]
    assert fired() == [third.pk, sixth.pk, tenth.pk]
    lead.refresh_from_db()
    assert lead.score == -15
    assert first[0].pk < third.pk


def test_email_ignored_judges_a_backfilled_delivery_by_what_came_before_it():
    published(
        "Ignored",
        graph(("t", "email.ignored", {"count": 2}), ("m", "tag.add", {"tag": "i"})),
        reentry="always",
    )
    lead = LeadFactory.create()
    _email(lead, OPEN, 10)
    _email(lead, D, 11)
    # Loaded later, but happened before the open: no streak of two after the open.
    _email(lead, D, 5)
    assert Enrollment.objects.count() == 0
    _email(lead, D, 12)
    assert Enrollment.objects.count() == 1


def test_email_ignored_reads_one_query(django_assert_num_queries):
    from flows.nodes import REGISTRY

    lead = LeadFactory.create()
    events = [_email(lead, D, minute) for minute in (1, 2, 3)]
    matches = REGISTRY["email.ignored"].matches
    assert matches is not None
    with django_assert_num_queries(1):
        assert matches(events[2], {"count": 3}) is True


def test_the_dry_run_agrees_with_the_trigger():
    flow = published(
        "Ignored",
        graph(
            ("t", "email.ignored", {"count": 2}),
            ("minus", "score.adjust", {"points": -5, "category": "engagement", "reason": "I"}),
        ),
        reentry="always",
    )
    lead = LeadFactory.create()
    one, two, three = (_email(lead, D, minute) for minute in (1, 2, 3))

    def matched(event):
        result = flow_dry_run(flow=flow, graph=flow.draft, lead=lead, event=event)
        return result["trigger"]["matched"]

    assert (matched(one), matched(two), matched(three)) == (False, True, False)
    assert list(Enrollment.objects.values_list("trigger_event_id", flat=True)) == [two.pk]
    # A made-up delivery now is the fourth in a row, past the streak of two.
    assert matched({"type": D, "name": "Newsletter"}) is False
    _email(lead, OPEN, 4)
    _email(lead, D, 5)
    assert matched({"type": D, "name": "Newsletter"}) is True


@pytest.fixture
def call_flow():
    """Go → +5 engagement → a task for sales."""
    return published(
        "Call",
        graph(
            ("t", "app.event", {"event": "Go"}),
            (
                "score",
                "score.adjust",
                {"points": 5, "category": "engagement", "reason": "Went"},
            ),
            ("notify", "sales.notify", {"title": "Call {lead}"}),
        ),
        reentry="always",
    )


def test_an_old_event_scores_but_makes_no_task(call_flow):
    rep = UserFactory.create(username="rep", role="sales")
    lead = LeadFactory.create(first_name="Ada", last_name="Old")
    now = timezone.now()
    backfilled = EventFactory.create(
        lead=lead, type="track", name="Go", occurred_at=now - dt.timedelta(days=10)
    )
    drain()

    lead.refresh_from_db()
    assert lead.score == 5
    change = ScoreChange.objects.get(lead=lead)
    assert change.occurred_at == backfilled.occurred_at
    assert Task.objects.count() == Notification.objects.count() == 0
    assert lead.owner_id is None
    notify = StepRun.objects.get(node_id="notify")
    day = f"{backfilled.occurred_at.astimezone(dt.UTC):%Y-%m-%d}"
    assert notify.output == {
        "task": None,
        "skipped": "stale_event",
        "occurred_at": backfilled.occurred_at.isoformat(),
        "days": 3,
        "reason": f"skipped: the event happened on {day}, more than 3 days ago",
        "handles": ["next"],
    }
    result = flow_dry_run(flow=call_flow, graph=call_flow.draft, lead=lead, event=backfilled)
    assert result["steps"][-1]["outcome"] == "no_change"
    assert result["steps"][-1]["effect"] == (
        f"skipped: the event happened on {day}, more than 3 days ago"
    )

    fresh = EventFactory.create(lead=lead, type="track", name="Go")
    drain()
    lead.refresh_from_db()
    assert lead.score == 10
    task = Task.objects.get()
    assert (task.title, task.assignee, task.lead) == ("Call Ada Old", rep, lead)
    assert Notification.objects.filter(user=rep, lead=lead).count() == 1
    result = flow_dry_run(flow=call_flow, graph=call_flow.draft, lead=lead, event=fresh)
    assert result["steps"][-1]["outcome"] == "would_apply"


def test_a_wait_does_not_make_a_fresh_event_old():
    rep = UserFactory.create(username="rep", role="sales")
    published(
        "Later",
        graph(
            ("t", "app.event", {"event": "Go"}),
            ("wait", "wait", {"amount": 5, "unit": "days"}),
            ("notify", "sales.notify", {"title": "Call {lead}"}),
        ),
    )
    lead = LeadFactory.create()
    EventFactory.create(lead=lead, type="track", name="Go")
    drain()
    assert Task.objects.count() == 0

    Wakeup.objects.update(due_at=timezone.now())
    claim()

    assert list(Task.objects.values_list("lead_id", "assignee_id")) == [(lead.pk, rep.pk)]


def test_the_age_limit_is_a_setting(call_flow, settings):
    settings.FLOW_STALE_EVENT_DAYS = 30
    UserFactory.create(username="rep", role="sales")
    lead = LeadFactory.create()
    EventFactory.create(
        lead=lead, type="track", name="Go", occurred_at=timezone.now() - dt.timedelta(days=10)
    )
    drain()
    assert Task.objects.filter(lead=lead).count() == 1


def test_the_negative_signals_template_makes_a_flow_that_publishes():
    template = FLOW_TEMPLATES["negative-signals"]
    flow = flow_create_from_template(template=template)
    flow_publish(flow=flow)
    flow.refresh_from_db()

    assert (flow.name, flow.status) == ("Negative signals", "active")
    nodes = {node["id"]: (node["type"], node["config"]) for node in flow.draft["nodes"]}
    assert nodes == {
        "ignored": ("email.ignored", {"count": 3}),
        "ignored-score": (
            "score.adjust",
            {
                "points": -10,
                "category": "engagement",
                "reason": "Did not open the last 3 emails",
            },
        ),
        "unsubscribed": ("email.activity", {"activity": "unsubscribed"}),
        "unsubscribed-score": (
            "score.adjust",
            {"points": -15, "category": "engagement", "reason": "Unsubscribed from email"},
        ),
        "bounced": ("email.activity", {"activity": "bounced"}),
        "bounced-score": (
            "score.adjust",
            {
                "points": -20,
                "category": "engagement",
                "reason": "Email bounced: the address takes no mail",
            },
        ),
        "meeting-cancelled": ("app.event", {"event": "Meeting cancelled"}),
        "meeting-cancelled-score": (
            "score.adjust",
            {"points": -10, "category": "engagement", "reason": "Cancelled a meeting"},
        ),
    }


def test_a_lead_turned_hot_by_an_old_event_gets_no_hot_lead_task():
    """The grade change happened when its cause did: the hot-lead flow sees it as old."""
    flow_publish(flow=flow_create_from_template(template=FLOW_TEMPLATES["notify-sales-hot"]))
    published(
        "Go",
        graph(
            ("t", "app.event", {"event": "Go"}),
            ("s", "score.adjust", {"points": 100, "category": "engagement", "reason": "Went"}),
        ),
        reentry="always",
    )
    UserFactory.create(username="rep", role="sales")
    old, new = LeadFactory.create(), LeadFactory.create()
    backfilled = EventFactory.create(
        lead=old, type="track", name="Go", occurred_at=timezone.now() - dt.timedelta(days=10)
    )
    EventFactory.create(lead=new, type="track", name="Go")
    drain()

    turned = Event.objects.filter(type="grade.changed", name="hot", properties__from="cold")
    assert turned.get(lead=old).occurred_at == backfilled.occurred_at
    assert sorted(Lead.objects.filter(grade="hot").values_list("pk", flat=True)) == [
        old.pk,
        new.pk,
    ]
    assert list(Task.objects.values_list("lead_id", flat=True)) == [new.pk]

""" "Notify sales" creates follow-up tasks, and none for a customer, a lost or a
disqualified lead: the engine and the dry run say so alike (flows.rules)."""

import datetime as dt

import pytest

from flows.dryrun import flow_dry_run
from flows.models import StepRun
from leads.models import Notification, Task
from pages.selectors.profile import lead_timeline
from tests.factories import EventFactory, LeadFactory, UserFactory
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
DEMO = {"type": "track", "name": "Requested demo", "properties": {}}
WORDS = {
    "customer": "No task for sales: the lead is already a customer.",
    "lost": "No task for sales: the lead is marked as lost.",
    "disqualified": "No task for sales: the lead is disqualified.",
}


@pytest.fixture
def rep(db):
    return UserFactory.create(
        username="rep-1", first_name="Sam", last_name="Rep", email="sam@example.com", role="sales"
    )


@pytest.fixture
def flow(db):
    return published(
        "Call",
        graph(
            ("t", "app.event", {"event": "Requested demo"}),
            ("n", "sales.notify", {"title": "Call {lead}", "email": False}),
        ),
    )


def _dry_run_notify(flow, lead):
    result = flow_dry_run(flow=flow, graph=flow.draft, lead=lead, event=DEMO, now=NOW)
    step = result["steps"][1]
    return step["outcome"], step["effect"]


def test_an_open_lead_gets_a_follow_up_task(flow, rep):
    lead = LeadFactory.create(first_name="Ada", last_name="Lovelace", stage="sql", owner=rep)

    EventFactory.create(lead=lead, name="Requested demo")
    drain()

    task = Task.objects.get(lead=lead)
    assert (task.title, task.follow_up, task.assignee) == ("Call Ada Lovelace", True, rep)
    assert _dry_run_notify(flow, lead)[0] == "would_apply"


@pytest.mark.parametrize("stage", ["customer", "lost", "disqualified"])
def test_a_closed_lead_gets_no_task_and_the_log_says_why(flow, rep, stage):
    lead = LeadFactory.create(stage=stage)

    EventFactory.create(lead=lead, name="Requested demo")
    drain()

    assert not Task.objects.filter(lead=lead).exists()
    assert not Notification.objects.exists()
    lead.refresh_from_db()
    assert lead.owner is None
    step = StepRun.objects.get(node_id="n", enrollment__lead=lead)
    assert (step.status, step.output) == (
        "completed",
        {"task": None, "skipped": "closed_stage", "stage": stage, "handles": ["next"]},
    )
    timeline = lead_timeline(lead=lead, filters=["flows"])
    notes = [entry.obj.note for entry in timeline.entries if entry.obj.node_id == "n"]
    assert notes == [WORDS[stage]]
    assert _dry_run_notify(flow, lead) == ("no_change", WORDS[stage])

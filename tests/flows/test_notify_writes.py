"""The notify-sales step's writes: who gets the task, and one task and one
notification per step however often it runs."""

import pytest

from flows.nodes.actions import sales_round_robin
from leads.models import Notification, Task
from leads.services.tasks import notification_add_once, task_open_once
from tests.factories import LeadFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_the_next_rep_has_the_fewest_open_tasks_and_the_lowest_id_breaks_ties():
    first = UserFactory.create(username="rep-a", role="sales")
    second = UserFactory.create(username="rep-b", role="sales")
    third = UserFactory.create(username="rep-c", role="sales")
    UserFactory.create(username="marketer", role="marketer")
    UserFactory.create(username="away", role="sales", is_active=False)
    TaskFactory.create(assignee=first, title="open")
    # Done tasks do not count.
    TaskFactory.create(assignee=second, title="done", status="done")
    TaskFactory.create(assignee=third, title="open")

    assert sales_round_robin() == second

    TaskFactory.create(assignee=second, title="open")
    assert sales_round_robin() == first


def test_nobody_is_next_without_an_active_sales_rep():
    UserFactory.create(username="marketer", role="marketer")
    UserFactory.create(username="away", role="sales", is_active=False)

    assert sales_round_robin() is None


def test_a_task_is_opened_once_per_key_and_keeps_its_first_values():
    rep = UserFactory.create(username="rep-a", role="sales")
    lead = LeadFactory.create()

    task, created = task_open_once(
        key="step:41", lead=lead, assignee=rep, title="Call Ada", due_at=None, priority="high"
    )
    again, created_again = task_open_once(
        key="step:41", lead=lead, assignee=None, title="Other", due_at=None, priority="low"
    )

    assert (created, created_again) == (True, False)
    assert again.pk == task.pk
    stored = Task.objects.get()
    assert (stored.assignee, stored.title, stored.priority, stored.status, stored.follow_up) == (
        rep,
        "Call Ada",
        "high",
        "open",
        True,
    )
    assert stored.created_at == task.created_at


def test_a_notification_is_added_once_per_key():
    rep = UserFactory.create(username="rep-a", role="sales")
    lead = LeadFactory.create()

    notification_add_once(key="step:7", user=rep, lead=lead, message="New task: Call Ada")
    notification_add_once(key="step:7", user=rep, lead=lead, message="New task: again")

    assert list(Notification.objects.values_list("user", "lead", "message", "read_at")) == [
        (rep.pk, lead.pk, "New task: Call Ada", None)
    ]

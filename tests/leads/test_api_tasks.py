"""Tasks and notifications through the API: the task pages' rules and services."""

import datetime as dt

import pytest
from django.utils import timezone

from leads.models import Notification, Task
from tests.factories import LeadFactory, NotificationFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db

# A Wednesday afternoon (UTC).
NOW = dt.datetime(2025, 6, 11, 14, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


def ids(response):
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def test_a_task_as_the_api_shows_it(sales_api, sales):
    lead = LeadFactory.create(email="ada@x.example", first_name="Ada", last_name="L", owner=sales)
    task = TaskFactory.create(
        lead=lead,
        assignee=sales,
        title="Call Ada",
        priority="high",
        due_at=NOW - dt.timedelta(hours=1),
    )
    assert sales_api.get(f"/api/v1/tasks/{task.pk}/").json() == {
        "id": task.pk,
        "title": "Call Ada",
        "lead": lead.pk,
        "lead_name": "Ada L",
        "lead_email": "ada@x.example",
        "assignee": sales.pk,
        "priority": "high",
        "status": "open",
        "due_at": "2025-06-11T13:00:00Z",
        "overdue": True,
        "created_at": Task.objects.get(pk=task.pk).created_at.isoformat().replace("+00:00", "Z"),
        "completed_at": None,
    }


def test_sales_list_their_own_tasks_others_see_all(sales_api, marketer_api, sales, other_sales):
    mine = TaskFactory.create(assignee=sales)
    theirs = TaskFactory.create(assignee=other_sales)
    nobodys = TaskFactory.create()
    assert ids(sales_api.get("/api/v1/tasks/")) == [mine.pk]
    assert sales_api.get(f"/api/v1/tasks/{theirs.pk}/").status_code == 404
    assert ids(marketer_api.get("/api/v1/tasks/")) == [nobodys.pk, theirs.pk, mine.pk]


def test_task_filters(marketer_api, marketer, sales):
    lead = LeadFactory.create()
    soon = TaskFactory.create(lead=lead, assignee=sales, due_at=NOW + dt.timedelta(hours=2))
    later = TaskFactory.create(assignee=sales, due_at=NOW + dt.timedelta(days=3), priority="urgent")
    done = TaskFactory.create(assignee=sales, status="done", completed_at=NOW)
    free = TaskFactory.create(lead=lead)
    mine = TaskFactory.create(assignee=marketer)
    assert ids(marketer_api.get("/api/v1/tasks/?status=open&assignee=" + str(sales.pk))) == [
        later.pk,
        soon.pk,
    ]
    assert ids(marketer_api.get("/api/v1/tasks/?status=done")) == [done.pk]
    assert ids(marketer_api.get("/api/v1/tasks/?assignee=none")) == [free.pk]
    assert ids(marketer_api.get("/api/v1/tasks/?assignee=me")) == [mine.pk]
    assert ids(marketer_api.get(f"/api/v1/tasks/?lead={lead.pk}")) == [free.pk, soon.pk]
    assert ids(marketer_api.get("/api/v1/tasks/?priority=urgent")) == [later.pk]
    assert ids(
        marketer_api.get(
            "/api/v1/tasks/?due_after=2025-06-11T15:00:00Z&due_before=2025-06-12T00:00:00Z"
        )
    ) == [soon.pk]
    bad = marketer_api.get("/api/v1/tasks/?status=maybe")
    assert bad.status_code == 400
    assert list(bad.json()["error"]["fields"]) == ["status"]
    bad = marketer_api.get("/api/v1/tasks/?assignee=bob")
    assert bad.json()["error"]["fields"] == {"assignee": ["Expected a user id, 'me' or 'none'."]}


def test_task_list_is_cursor_paginated_without_n_plus_one(
    marketer_api, sales, django_assert_max_num_queries
):
    for _ in range(25):
        TaskFactory.create(assignee=sales, lead=LeadFactory.create())
    seen = []
    url = "/api/v1/tasks/?page_size=10"
    while url:
        with django_assert_max_num_queries(3):
            body = marketer_api.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
    assert seen == sorted(Task.objects.values_list("id", flat=True), reverse=True)


def test_complete_snooze_and_reassign(sales_api, sales):
    admin = UserFactory.create(username="boss", first_name="Grace", role="admin")
    lead = LeadFactory.create(owner=admin)
    task = TaskFactory.create(lead=lead, assignee=sales, title="Call Ada", due_at=NOW)
    response = sales_api.post(
        f"/api/v1/tasks/{task.pk}/snooze/", {"preset": "tomorrow"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["due_at"] == "2025-06-12T09:00:00Z"
    response = sales_api.post(
        f"/api/v1/tasks/{task.pk}/snooze/", {"until": "2025-06-20T08:30:00Z"}, format="json"
    )
    assert response.json()["due_at"] == "2025-06-20T08:30:00Z"
    response = sales_api.post(
        f"/api/v1/tasks/{task.pk}/reassign/", {"assignee": admin.pk}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["assignee"] == admin.pk
    assert list(Notification.objects.filter(user=admin).values_list("message", flat=True)) == [
        "sales-t assigned you a task: Call Ada"
    ]
    # Handed over: it is no longer the rep's to act on (the lead is not theirs).
    assert sales_api.post(f"/api/v1/tasks/{task.pk}/complete/").status_code == 404
    task.refresh_from_db()
    assert (task.status, task.assignee_id) == ("open", admin.pk)


def test_refusals_have_the_one_error_shape(sales_api, sales, marketer):
    task = TaskFactory.create(assignee=sales, lead=LeadFactory.create(owner=sales))
    past = sales_api.post(
        f"/api/v1/tasks/{task.pk}/snooze/", {"until": "2025-06-11T13:00:00Z"}, format="json"
    )
    assert past.status_code == 400
    assert past.json() == {
        "error": {
            "code": "invalid",
            "message": "The request has invalid fields.",
            "fields": {"until": ["Choose a time in the future."]},
        }
    }
    neither = sales_api.post(f"/api/v1/tasks/{task.pk}/snooze/", {}, format="json")
    assert neither.json()["error"]["fields"] == {"until": ["Give either until or preset."]}
    to_marketer = sales_api.post(
        f"/api/v1/tasks/{task.pk}/reassign/", {"assignee": marketer.pk}, format="json"
    )
    assert to_marketer.json()["error"]["fields"] == {
        "assignee": ["Choose an active sales rep or admin."]
    }
    same = sales_api.post(
        f"/api/v1/tasks/{task.pk}/reassign/", {"assignee": sales.pk}, format="json"
    )
    assert same.json()["error"]["fields"] == {
        "assignee": ["The task is already assigned to sales-t."]
    }
    done = sales_api.post(f"/api/v1/tasks/{task.pk}/complete/")
    assert done.json()["status"] == "done"
    assert done.json()["completed_at"] == "2025-06-11T14:00:00Z"
    again = sales_api.post(f"/api/v1/tasks/{task.pk}/snooze/", {"preset": "hour"}, format="json")
    assert again.status_code == 409
    assert again.json() == {
        "error": {"code": "done", "message": "This task is already done.", "fields": {}}
    }


def test_ids_and_times_the_database_cannot_hold_are_refused_or_taken_in_utc(sales_api, sales):
    task = TaskFactory.create(assignee=sales, lead=LeadFactory.create(owner=sales))

    far_offset = sales_api.post(
        f"/api/v1/tasks/{task.pk}/snooze/", {"until": "2025-06-20T08:00:00-18:30"}, format="json"
    )
    huge_lead = sales_api.get("/api/v1/tasks/", {"lead": str(2**70)})
    early = sales_api.get("/api/v1/tasks/", {"due_after": "0001-01-01T00:00:00+01:00"})
    huge_user = sales_api.post(
        f"/api/v1/tasks/{task.pk}/reassign/", {"assignee": 2**70}, format="json"
    )

    assert far_offset.json()["due_at"] == "2025-06-21T02:30:00Z"
    assert Task.objects.get(pk=task.pk).due_at == dt.datetime(2025, 6, 21, 2, 30, tzinfo=dt.UTC)
    assert (huge_lead.status_code, huge_lead.json()["error"]["fields"]) == (
        400,
        {"lead": ["Expected an id."]},
    )
    assert (early.status_code, early.json()["error"]["fields"]) == (
        400,
        {"due_after": ["The time is out of range."]},
    )
    assert (huge_user.status_code, list(huge_user.json()["error"]["fields"])) == (400, ["assignee"])


def test_a_full_key_acts_on_tasks_and_an_ingest_key_cannot(full_api, ingest_api, sales):
    task = TaskFactory.create(assignee=sales, title="Demo")
    rep = UserFactory.create(username="rep-2", role="sales")
    response = full_api.post(
        f"/api/v1/tasks/{task.pk}/reassign/", {"assignee": rep.pk}, format="json"
    )
    assert response.status_code == 200
    assert list(Notification.objects.filter(user=rep).values_list("message", flat=True)) == [
        "You were assigned a task: Demo"
    ]
    assert full_api.post(f"/api/v1/tasks/{task.pk}/complete/").json()["status"] == "done"
    assert ingest_api.get("/api/v1/tasks/").status_code == 403


def test_notifications_are_the_persons_own(
    sales_api, sales, other_sales, full_api, django_assert_max_num_queries
):
    lead = LeadFactory.create()
    first = NotificationFactory.create(user=sales, lead=lead, message="Hot lead")
    second = NotificationFactory.create(user=sales, message="Task for you")
    NotificationFactory.create(user=other_sales)
    with django_assert_max_num_queries(3):
        body = sales_api.get("/api/v1/notifications/").json()
    assert body["results"] == [
        {
            "id": second.pk,
            "message": "Task for you",
            "lead": None,
            "created_at": body["results"][0]["created_at"],
            "read_at": None,
        },
        {
            "id": first.pk,
            "message": "Hot lead",
            "lead": lead.pk,
            "created_at": body["results"][1]["created_at"],
            "read_at": None,
        },
    ]
    read = sales_api.post(f"/api/v1/notifications/{first.pk}/read/")
    assert read.json()["read_at"] == "2025-06-11T14:00:00Z"
    assert ids(sales_api.get("/api/v1/notifications/?unread=true")) == [second.pk]
    assert ids(sales_api.get("/api/v1/notifications/?unread=false")) == [first.pk]
    others = Notification.objects.get(user=other_sales)
    assert sales_api.post(f"/api/v1/notifications/{others.pk}/read/").status_code == 404
    assert sales_api.post("/api/v1/notifications/read-all/").json() == {"changed": 1}
    assert Notification.objects.get(pk=others.pk).read_at is None
    refused = full_api.get("/api/v1/notifications/")
    assert refused.status_code == 403
    assert (
        refused.json()["error"]["message"] == "Notifications belong to people; an API key has none."
    )

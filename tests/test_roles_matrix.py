"""Who may open what: every page and API endpoint for every role, including a
sales rep asking for another rep's lead by its id (404, as if it did not exist).

Expected answers: 200 allowed; 403 the role may not; 404 the object is not
theirs to see; "login" a page redirects an anonymous visitor to log in."""

from __future__ import annotations

import pytest

from flows.models import Flow
from flows.services import flow_create
from leads.models import Lead, Notification, Segment, Task
from tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = ("admin", "marketer", "sales", "anonymous")
ALL = {"admin": 200, "marketer": 200, "sales": 200, "anonymous": "login"}
STAFF = {"admin": 200, "marketer": 200, "sales": 403, "anonymous": "login"}
ADMIN = {"admin": 200, "marketer": 403, "sales": 403, "anonymous": "login"}
NOT_THEIRS = {"admin": 200, "marketer": 200, "sales": 404, "anonymous": "login"}
API_ALL = {"admin": 200, "marketer": 200, "sales": 200, "anonymous": 401}
API_STAFF = {"admin": 200, "marketer": 200, "sales": 403, "anonymous": 401}
API_ADMIN = {"admin": 200, "marketer": 403, "sales": 403, "anonymous": 401}
API_NOT_THEIRS = {"admin": 200, "marketer": 200, "sales": 404, "anonymous": 401}

PAGES: list[tuple[str, dict]] = [
    ("/", ALL),
    ("/leads/", ALL),
    ("/leads/?owner={rep2}", ALL),
    ("/leads/{mine}/", ALL),
    ("/leads/{free}/", ALL),
    ("/leads/{theirs}/", NOT_THEIRS),
    # Without htmx the timeline's "load more" goes back to the profile.
    ("/leads/{theirs}/timeline/", {**NOT_THEIRS, "admin": 302, "marketer": 302}),
    ("/leads/export.csv", ALL),
    ("/leads/{mine}/export.json", ADMIN),
    ("/leads/{mine}/erase/", ADMIN),
    ("/leads/import/", STAFF),
    ("/tasks/", ALL),
    ("/tasks/?scope=all", STAFF),
    ("/notifications/", ALL),
    ("/segments/", STAFF),
    ("/segments/new/", STAFF),
    ("/segments/{segment}/", STAFF),
    ("/segments/{segment}/edit/", STAFF),
    # A profile section for htmx; without it, back to the profile.
    (
        "/leads/{mine}/segments/",
        {"admin": 302, "marketer": 302, "sales": 302, "anonymous": "login"},
    ),
    ("/leads/{theirs}/segments/", {**NOT_THEIRS, "admin": 302, "marketer": 302}),
    ("/flows/", STAFF),
    ("/flows/{flow}/", STAFF),
    ("/settings/users/", ADMIN),
    ("/settings/api-keys/", ADMIN),
    ("/settings/fields/", ADMIN),
    ("/settings/scoring/", ADMIN),
    ("/settings/integrations/", ADMIN),
    ("/settings/privacy/", ADMIN),
    ("/settings/webhooks/", ADMIN),
    ("/account/password/", ALL),
    ("/account/language/", ALL),
    ("/api/v1/leads/", API_ALL),
    ("/api/v1/leads/{mine}/", API_ALL),
    ("/api/v1/leads/{theirs}/", API_NOT_THEIRS),
    ("/api/v1/leads/{theirs}/score/", API_NOT_THEIRS),
    ("/api/v1/leads/{theirs}/score/changes/", API_NOT_THEIRS),
    ("/api/v1/leads/{theirs}/segments/", API_NOT_THEIRS),
    ("/api/v1/leads/{theirs}/enrollments/", API_NOT_THEIRS),
    ("/api/v1/leads/{mine}/export/", API_ADMIN),
    ("/api/v1/events/", API_ALL),
    ("/api/v1/fields/", API_ALL),
    ("/api/v1/segments/", API_ALL),
    ("/api/v1/flows/", API_ALL),
    ("/api/v1/flows/node-types/", API_ALL),
    ("/api/v1/enrollments/", API_ALL),
    ("/api/v1/score-categories/", API_ALL),
    ("/api/v1/scoring/settings/", API_ALL),
    ("/api/v1/api-keys/", API_ADMIN),
    ("/api/v1/tasks/", API_ALL),
    ("/api/v1/tasks/{their_task}/", API_NOT_THEIRS),
    ("/api/v1/notifications/", API_ALL),
    ("/api/v1/hooks/", API_ADMIN),
    ("/api/v1/hooks/event-types/", API_ADMIN),
]

# Writes: (method, path, data, expected). Each runs on fresh data.
WRITES: list[tuple[str, str, dict, dict]] = [
    (
        "post",
        "/leads/{theirs}/notes/",
        {"body": "Hello"},
        {"admin": 302, "marketer": 302, "sales": 404, "anonymous": "login"},
    ),
    (
        "post",
        "/leads/{theirs}/update/",
        {"owner": "", "stage": "lead"},
        {"admin": 302, "marketer": 302, "sales": 404, "anonymous": "login"},
    ),
    (
        "post",
        "/tasks/{their_task}/complete/",
        {},
        {"admin": 302, "marketer": 302, "sales": 404, "anonymous": "login"},
    ),
    (
        "post",
        "/leads/{mine}/erase/",
        {"confirm": "nope"},
        {"admin": 422, "marketer": 403, "sales": 403, "anonymous": "login"},
    ),
    (
        "post",
        "/settings/api-keys/",
        {"name": "k", "scope": "ingest"},
        {"admin": 302, "marketer": 403, "sales": 403, "anonymous": "login"},
    ),
    (
        "patch",
        "/api/v1/leads/{theirs}/",
        {"phone": "1"},
        {"admin": 200, "marketer": 200, "sales": 404, "anonymous": 401},
    ),
    (
        "post",
        "/api/v1/segments/",
        {"name": "S", "kind": "static"},
        {"admin": 201, "marketer": 201, "sales": 403, "anonymous": 401},
    ),
    (
        "post",
        "/api/v1/flows/",
        {"name": "F"},
        {"admin": 201, "marketer": 201, "sales": 403, "anonymous": 401},
    ),
    (
        "delete",
        "/api/v1/leads/{free}/",
        {},
        {"admin": 204, "marketer": 403, "sales": 403, "anonymous": 401},
    ),
    (
        "post",
        "/api/v1/api-keys/",
        {"name": "k", "scope": "ingest"},
        {"admin": 201, "marketer": 403, "sales": 403, "anonymous": 401},
    ),
    (
        "post",
        "/api/v1/tasks/{their_task}/complete/",
        {},
        {"admin": 200, "marketer": 200, "sales": 404, "anonymous": 401},
    ),
    (
        "post",
        "/api/v1/hooks/",
        {"target_url": "https://hooks.example/x", "event": "lead.mql"},
        {"admin": 201, "marketer": 403, "sales": 403, "anonymous": 401},
    ),
    (
        "post",
        "/settings/webhooks/",
        {"target_url": "https://hooks.example/x", "events": ["lead.mql"]},
        {"admin": 302, "marketer": 403, "sales": 403, "anonymous": "login"},
    ),
]


@pytest.fixture
def world():
    users = {
        role: UserFactory.create(username=f"{role}-m", role=role)
        for role in ("admin", "marketer", "sales")
    }
    rep2 = UserFactory.create(username="rep-two", role="sales")
    theirs = LeadFactory.create(email="theirs@x.example", owner=rep2)
    ids = {
        "mine": LeadFactory.create(email="mine@x.example", owner=users["sales"]).pk,
        "free": LeadFactory.create(email="free@x.example").pk,
        "theirs": theirs.pk,
        "rep2": rep2.pk,
        "flow": flow_create(name="Matrix").pk,
        "segment": Segment.objects.create(name="Static", kind="static").pk,
        "their_task": Task.objects.create(lead=theirs, assignee=rep2, title="Theirs").pk,
    }
    Notification.objects.create(user=rep2, lead=theirs, message="for rep two")
    return users, ids


def _answer(client, users, role, method, path, data):
    client.logout()
    if role != "anonymous":
        client.force_login(users[role])
    send = getattr(client, method)
    if path.startswith("/api/"):
        response = send(path, data, content_type="application/json") if data else send(path)
    else:
        response = send(path, data) if method != "get" else send(path)
    if response.status_code == 302 and response["Location"].startswith("/login/"):
        return "login"
    return response.status_code


def test_every_page_and_endpoint_for_every_role(client, world):
    users, ids = world
    got = {}
    expected = {}
    for template, rules in PAGES:
        path = template.format(**ids)
        for role in ROLES:
            got[(path, role)] = _answer(client, users, role, "get", path, None)
            expected[(path, role)] = rules[role]
    mismatches = {key: (got[key], want) for key, want in expected.items() if got[key] != want}
    assert mismatches == {}


@pytest.mark.parametrize(("method", "template", "data", "rules"), WRITES)
@pytest.mark.parametrize("role", ROLES)
def test_writes_for_every_role(client, world, method, template, data, rules, role):
    users, ids = world
    path = template.format(**ids)
    assert _answer(client, users, role, method, path, data) == rules[role]


def test_a_sales_rep_changes_nothing_on_another_reps_lead(client, world):
    users, ids = world
    client.force_login(users["sales"])
    client.post(f"/leads/{ids['theirs']}/notes/", {"body": "sneaky"})
    client.post(f"/leads/{ids['theirs']}/update/", {"owner": users["sales"].pk, "stage": "lead"})
    client.post(f"/leads/{ids['theirs']}/score/", {"points": 5, "category": "fit", "reason": "x"})
    client.post(f"/tasks/{ids['their_task']}/complete/")
    theirs = Lead.objects.get(pk=ids["theirs"])
    assert (theirs.owner_id, theirs.stage, theirs.score) == (ids["rep2"], "subscriber", 0)
    assert not theirs.notes.exists()
    assert Task.objects.get(pk=ids["their_task"]).status == "open"
    listed = client.get("/leads/").content.decode()
    assert "theirs@x.example" not in listed and "mine@x.example" in listed
    assert "for rep two" not in client.get("/notifications/").content.decode()
    api = [n["message"] for n in client.get("/api/v1/notifications/").json()["results"]]
    assert "for rep two" not in api
    assert Flow.objects.count() == 1 and Segment.objects.count() == 1

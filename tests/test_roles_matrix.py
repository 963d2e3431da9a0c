"""Who may open what: every page and API endpoint for every role, including a
sales rep asking for another rep's lead by its id (404, as if it did not exist).

Expected answers: 200 allowed; 403 the role may not; 404 the object is not
theirs to see; "login" a page redirects an anonymous visitor to log in."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from flows.lifecycle import flow_create
from flows.models import Flow
from leads.models import Lead, Segment, Task
from tests.factories import (
    EmailTemplateFactory,
    LeadFactory,
    NotificationFactory,
    OutboxMessageFactory,
    SegmentFactory,
    TaskFactory,
    UserFactory,
)

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
    ("/flows/{flow}/settings/", STAFF),
    ("/flows/{flow}/header/", STAFF),
    ("/flows/{flow}/changes/", STAFF),
    ("/flows/{flow}/delete/", STAFF),
    ("/scoring/", STAFF),
    ("/scoring/presets/b2b/", STAFF),
    ("/settings/users/", ADMIN),
    ("/settings/api-keys/", ADMIN),
    ("/settings/fields/", ADMIN),
    ("/settings/scoring/", ADMIN),
    ("/settings/integrations/", ADMIN),
    ("/settings/privacy/", ADMIN),
    ("/settings/webhooks/", ADMIN),
    ("/settings/email/", ADMIN),
    ("/emails/templates/", STAFF),
    ("/emails/templates/new/", STAFF),
    ("/emails/templates/{email_template}/", STAFF),
    ("/emails/sent/", ADMIN),
    ("/emails/sent/{outbox_message}/", ADMIN),
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
    ("/api/v1/flows/", API_STAFF),
    ("/api/v1/flows/{flow}/", API_STAFF),
    ("/api/v1/flows/{flow}/draft/", API_STAFF),
    ("/api/v1/flows/{flow}/versions/", API_STAFF),
    ("/api/v1/flows/{flow}/stats/", API_STAFF),
    ("/api/v1/flows/templates/", API_STAFF),
    ("/flows/{flow}/node-form/?type=webhook.send&node=w", STAFF),
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
    ("/api/v1/email-templates/", API_STAFF),
    ("/api/v1/email-templates/{email_template}/", API_STAFF),
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
        "/scoring/suggestions/accept/",
        {},
        {"admin": 302, "marketer": 302, "sales": 403, "anonymous": "login"},
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
        "/api/v1/email-templates/",
        {"name": "Matrix mail", "subject": "Hi"},
        {"admin": 201, "marketer": 201, "sales": 403, "anonymous": 401},
    ),
    (
        "post",
        "/api/v1/email-templates/{email_template}/preview/",
        {"lead": 0},
        {"admin": 400, "marketer": 400, "sales": 403, "anonymous": 401},
    ),
    (
        "post",
        "/emails/templates/new/",
        {"name": "Matrix page mail", "subject": "Hi", "kind": "marketing", "blocks": "[]"},
        {"admin": 302, "marketer": 302, "sales": 403, "anonymous": "login"},
    ),
    (
        "post",
        "/settings/email/",
        {"form": "sender", "name": "Lena", "address": "lena@x.example"},
        {"admin": 302, "marketer": 403, "sales": 403, "anonymous": "login"},
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
        "segment": SegmentFactory.create(name="Static", static=True).pk,
        "their_task": TaskFactory.create(lead=theirs, assignee=rep2, title="Theirs").pk,
        "email_template": EmailTemplateFactory.create(name="Matrix template").pk,
        "outbox_message": OutboxMessageFactory.create().pk,
    }
    NotificationFactory.create(user=rep2, lead=theirs, message="for rep two")
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
    assert "theirs@x.example" not in listed
    assert "mine@x.example" in listed
    assert "for rep two" not in client.get("/notifications/").content.decode()
    api = [n["message"] for n in client.get("/api/v1/notifications/").json()["results"]]
    assert "for rep two" not in api
    assert Flow.objects.count() == 1
    assert Segment.objects.count() == 1


# --- what each role may change: form posts and bulk actions --------------------------
#
# Each case runs for admin, marketer and sales, on fresh data, and checks the real
# effect in the database: a refused change answers with its reason in the page and
# changes nothing.

REP_ONLY = "Sales reps can only assign a lead to themselves or to no one."
NO_SEGMENTS = "Only admins and marketers change segment membership."
STAFF_ROLES = ("admin", "marketer", "sales")


def _owner(pk):
    return Lead.objects.get(pk=pk).owner_id


# (lead, owner posted, stage posted) → who owns it after, for each role ("poster":
# the user who posted), or None when the post is refused.
PROFILE_POSTS = [
    ("free", "rep2", "lead", {"admin": "rep2", "marketer": "rep2", "sales": None}),
    ("mine", "rep2", "lead", {"admin": "rep2", "marketer": "rep2", "sales": None}),
    ("free", "poster", "lead", {"admin": "poster", "marketer": "poster", "sales": "poster"}),
    ("mine", "", "lead", {"admin": "", "marketer": "", "sales": ""}),
]


@pytest.mark.parametrize(("lead", "owner", "stage", "outcome"), PROFILE_POSTS)
@pytest.mark.parametrize("role", STAFF_ROLES)
def test_profile_owner_posts_for_every_role(client, world, lead, owner, stage, outcome, role):
    users, ids = world
    user = users[role]
    client.force_login(user)
    before = _owner(ids[lead])
    posted = {"rep2": ids["rep2"], "poster": user.pk, "": ""}[owner]

    response = client.post(
        f"/leads/{ids[lead]}/update/",
        {"owner": posted, "stage": stage},
        headers={"HX-Request": "true"},
    )

    wanted = outcome[role]
    lead_now = Lead.objects.get(pk=ids[lead])
    if wanted is None:
        assert response.status_code == 422
        assert REP_ONLY in response.content.decode()
        assert (lead_now.owner_id, lead_now.stage) == (before, "subscriber")
    else:
        assert response.status_code == 200
        expected = {"rep2": ids["rep2"], "poster": user.pk, "": None}[wanted]
        assert (lead_now.owner_id, lead_now.stage) == (expected, "lead")


def test_the_profile_offers_a_rep_only_themselves_as_owner(client, world):
    users, ids = world
    client.force_login(users["sales"])
    html = client.get(f"/leads/{ids['free']}/").content.decode()
    owner_select = html.split('id="profile-owner"')[1].split("</select>")[0]
    assert f'value="{users["sales"].pk}"' in owner_select
    assert f'value="{ids["rep2"]}"' not in owner_select
    assert f'value="{users["admin"].pk}"' not in owner_select


# Each bulk action as the leads list posts it, for the role posting it.
def _bulk_values(ids, users, role, action):
    return {
        "owner_colleague": {"bulk-action": "owner", "bulk-owner": ids["rep2"]},
        "owner_self": {"bulk-action": "owner", "bulk-owner": users[role].pk},
        "owner_none": {"bulk-action": "owner", "bulk-owner": "none"},
        "tag_add": {"bulk-action": "tag_add", "bulk-tag": "vip"},
        "tag_remove": {"bulk-action": "tag_remove", "bulk-tag": "old"},
        "segment": {"bulk-action": "segment", "bulk-segment": ids["segment"]},
        "stage": {"bulk-action": "stage", "bulk-stage": "sql"},
    }[action]


def _bulk_state(ids):
    leads = Lead.objects.filter(pk__in=[ids["mine"], ids["free"]]).order_by("pk")
    segment = Segment.objects.get(pk=ids["segment"])
    return [
        (
            lead.owner_id,
            lead.stage,
            sorted(lead.tags.values_list("name", flat=True)),
            lead.memberships.filter(segment=segment, left_at__isnull=True).exists(),
        )
        for lead in leads
    ]


BULK_CASES = [
    ("owner_colleague", {"admin": True, "marketer": True, "sales": False}),
    ("owner_self", {"admin": True, "marketer": True, "sales": True}),
    ("owner_none", {"admin": True, "marketer": True, "sales": True}),
    ("tag_add", {"admin": True, "marketer": True, "sales": True}),
    ("tag_remove", {"admin": True, "marketer": True, "sales": True}),
    ("segment", {"admin": True, "marketer": True, "sales": False}),
    ("stage", {"admin": True, "marketer": True, "sales": True}),
]


def _expected_after(ids, users, role, action, before):
    after = []
    for owner, stage, tags, member in before:
        if action == "owner_colleague":
            owner = ids["rep2"]
        elif action == "owner_self":
            owner = users[role].pk
        elif action == "owner_none":
            owner = None
        elif action == "tag_add":
            tags = sorted({*tags, "vip"})
        elif action == "tag_remove":
            tags = [t for t in tags if t != "old"]
        elif action == "segment":
            member = True
        elif action == "stage":
            stage = "sql"
        after.append((owner, stage, tags, member))
    return after


@pytest.fixture
def tagged(world):
    from leads.services.leads import lead_update

    _users, ids = world
    for pk in (ids["mine"], ids["free"]):
        lead_update(lead=Lead.objects.get(pk=pk), tags_add=["old"])
    return world


@pytest.mark.parametrize(("action", "allowed"), BULK_CASES)
@pytest.mark.parametrize("role", STAFF_ROLES)
@pytest.mark.parametrize("scope", ["checked", "all_matching"])
def test_bulk_actions_for_every_role(client, tagged, action, allowed, role, scope):
    users, ids = tagged
    client.force_login(users[role])
    before = _bulk_state(ids)
    data = _bulk_values(ids, users, role, action)
    if scope == "checked":
        data["bulk-lead"] = [ids["mine"], ids["free"]]
    else:
        # Every lead matching the filter: the two on the page (a rep sees no others).
        data.update({"q": "x.example", "bulk-all_matching": "1", "bulk-confirmed": "1"})

    response = client.post("/leads/bulk/", data, headers={"HX-Request": "true"})

    html = response.content.decode()
    if allowed[role]:
        assert response.status_code == 200, html
        assert 'class="alert alert-danger"' not in html
        assert _bulk_state(ids) == _expected_after(ids, users, role, action, before)
    else:
        assert response.status_code == 422
        assert (REP_ONLY if action.startswith("owner") else NO_SEGMENTS) in html
        assert _bulk_state(ids) == before
        assert Lead.objects.get(pk=ids["theirs"]).owner_id == ids["rep2"]


def test_the_bulk_form_offers_a_rep_only_what_they_may_do(client, world):
    users, ids = world
    client.force_login(users["sales"])
    html = client.get("/leads/").content.decode()
    form = html.split('id="lead-bulk"')[1].split("</form>")[0]
    assert 'value="segment"' not in form
    assert 'id="bulk-segment"' not in form
    owners = form.split('id="bulk-owner"')[1].split("</select>")[0]
    assert f'value="{users["sales"].pk}"' in owners
    assert f'value="{ids["rep2"]}"' not in owners
    client.force_login(users["marketer"])
    form = client.get("/leads/").content.decode().split('id="lead-bulk"')[1]
    assert 'value="segment"' in form.split("</form>")[0]


def test_a_background_bulk_job_is_refused_before_it_is_queued_and_when_it_runs(world):
    from core.roles import Role
    from leads.models import LeadJob
    from leads.selectors import LeadFilters
    from leads.services import jobs
    from leads.services.policy import ChangeRefused

    users, ids = world
    with pytest.raises(ChangeRefused) as refused:
        jobs.lead_job_start(
            user=users["sales"],
            kind="bulk",
            filters=LeadFilters(),
            action="segment",
            params={"segment": ids["segment"]},
        )
    assert refused.value.fields == {"segment": NO_SEGMENTS}
    assert not LeadJob.objects.exists()

    # Queued by a marketer who is a sales rep by the time it runs.
    marketer = users["marketer"]
    job = jobs.lead_job_start(
        user=marketer,
        kind="bulk",
        filters=LeadFilters(),
        action="owner",
        params={"owner": ids["rep2"]},
    )
    marketer.groups.clear()
    marketer.groups.add(Group.objects.get_or_create(name=Role.SALES)[0])
    jobs.lead_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.error) == ("failed", REP_ONLY)
    assert Lead.objects.get(pk=ids["free"]).owner_id is None
    assert Lead.objects.get(pk=ids["mine"]).owner_id == users["sales"].pk


@pytest.mark.parametrize(
    ("lead", "owner", "expected"),
    [
        ("free", "rep2", {"admin": 200, "marketer": 200, "sales": 400}),
        ("free", "poster", {"admin": 200, "marketer": 200, "sales": 200}),
        ("mine", None, {"admin": 200, "marketer": 200, "sales": 200}),
    ],
)
@pytest.mark.parametrize("role", STAFF_ROLES)
def test_api_owner_changes_for_every_role(client, world, lead, owner, expected, role):
    users, ids = world
    client.force_login(users[role])
    before = _owner(ids[lead])
    posted = {"rep2": ids["rep2"], "poster": users[role].pk, None: None}[owner]

    response = client.patch(
        f"/api/v1/leads/{ids[lead]}/", {"owner": posted}, content_type="application/json"
    )

    assert response.status_code == expected[role]
    if expected[role] == 400:
        assert response.json()["error"] == {
            "code": "invalid",
            "message": "The request has invalid fields.",
            "fields": {"owner": [REP_ONLY]},
        }
        assert _owner(ids[lead]) == before
    else:
        assert _owner(ids[lead]) == posted

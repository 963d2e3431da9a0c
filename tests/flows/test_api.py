import pytest

from flows.models import Flow, TriggerSubscription
from flows.nodes import REGISTRY
from segments.services import segment_create
from tests.factories import EventFactory, LeadFactory
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db


def test_node_types_come_from_the_registry(sales_api):
    body = sales_api.get("/api/v1/flows/node-types/").json()["results"]
    keys = {n["key"]: n for n in body}
    assert set(keys) == set(REGISTRY)
    assert keys["condition"]["outputs"] == ["yes", "no"]
    assert keys["wait.until"]["outputs"] == ["met", "timeout"]
    assert keys["segment.entered"]["kind"] == "trigger"
    assert keys["score.adjust"]["config_schema"]["required"] == ["points", "category", "reason"]
    triggers = {k for k, n in keys.items() if n["kind"] == "trigger"}
    assert triggers == {
        "segment.entered",
        "segment.left",
        "email.activity",
        "email.ignored",
        "app.event",
        "page.visited",
        "field.changed",
        "tag.added",
        "tag.removed",
        "lead.created",
        "form.submitted",
        "score.threshold",
        "grade.changed",
    }


def test_create_edit_publish_pause_resume(marketer_api):
    segment = segment_create(
        name="CEOs", conditions={"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}
    )
    created = marketer_api.post("/api/v1/flows/", {"name": "Welcome CEOs"}, format="json").json()
    url = f"/api/v1/flows/{created['id']}"
    draft = marketer_api.get(f"{url}/draft/").json()
    assert draft == {"graph": {"nodes": [], "edges": []}, "revision": 0}
    g = graph(
        ("t", "segment.entered", {"segment": segment.pk}),
        ("s", "score.adjust", {"points": 5, "category": "fit", "reason": "CEO"}),
    )
    saved = marketer_api.put(f"{url}/draft/", {"graph": g, "revision": 0}, format="json")
    assert saved.json()["revision"] == 1
    stale = marketer_api.put(f"{url}/draft/", {"graph": g, "revision": 0}, format="json")
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "conflict"
    assert marketer_api.post(f"{url}/validate/").json() == {"valid": True}
    version = marketer_api.post(f"{url}/publish/")
    assert version.status_code == 201
    assert version.json()["number"] == 1
    flow = Flow.objects.get()
    assert flow.published is not None
    assert (flow.status, flow.published.number) == ("active", 1)
    assert list(TriggerSubscription.objects.values_list("event_type", "match_key")) == [
        ("segment.entered", str(segment.pk))
    ]
    assert marketer_api.post(f"{url}/pause/").json()["status"] == "paused"
    assert marketer_api.post(f"{url}/resume/").json()["status"] == "active"
    marketer_api.put(f"{url}/draft/", {"graph": g, "revision": 1}, format="json")
    assert marketer_api.post(f"{url}/publish/").json()["number"] == 2
    versions = marketer_api.get(f"{url}/versions/").json()["results"]
    assert [v["number"] for v in versions] == [2, 1]
    assert marketer_api.get(f"{url}/stats/").json() == {"nodes": {}}


def test_publish_errors_come_back_per_node(marketer_api):
    created = marketer_api.post("/api/v1/flows/", {"name": "Broken"}, format="json").json()
    url = f"/api/v1/flows/{created['id']}"
    g = graph(
        ("t", "app.event", {}),
        ("s", "score.adjust", {"points": 5, "category": "nope", "reason": "x"}),
    )
    marketer_api.put(f"{url}/draft/", {"graph": g, "revision": 0}, format="json")
    response = marketer_api.post(f"{url}/publish/")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_graph"
    assert error["nodes"] == {
        "t": {"config.event": ["Give the name of the app event."]},
        "s": {"config.category": ["The score category “nope” does not exist: choose another."]},
    }
    assert Flow.objects.get().status == "draft"


def test_reentry_days_needs_days(marketer_api):
    response = marketer_api.post("/api/v1/flows/", {"name": "X", "reentry": "days"}, format="json")
    assert response.json()["error"]["fields"] == {"reentry_days": ["Give the number of days."]}


def test_sales_can_neither_read_nor_edit_flows(sales_api):
    flow = published(
        "Hot",
        graph(
            ("t", "app.event", {"event": "Paid"}),
            ("w", "webhook.send", {"url": "https://crm.example/hook", "secret": "k"}),
        ),
    )
    for path in (
        "/api/v1/flows/",
        f"/api/v1/flows/{flow.pk}/",
        f"/api/v1/flows/{flow.pk}/draft/",
        f"/api/v1/flows/{flow.pk}/versions/",
        f"/api/v1/flows/{flow.pk}/stats/",
        f"/api/v1/flows/{flow.pk}/enrollments/",
        "/api/v1/flows/templates/",
    ):
        response = sales_api.get(path)
        assert (path, response.status_code) == (path, 403)
        assert response.json()["error"]["code"] == "permission_denied"
    assert sales_api.post("/api/v1/flows/", {"name": "X"}, format="json").status_code == 403
    assert sales_api.post(f"/api/v1/flows/{flow.pk}/dry-run/", {"lead": 1}).status_code == 403


def test_enrollments_step_logs_and_stats_per_flow_and_per_lead(
    marketer_api, sales, sales_api, other_sales
):
    flow = published(
        "Trial scoring",
        graph(
            ("t", "app.event", {"event": "Signed up for trial"}),
            ("score", "score.adjust", {"points": 15, "category": "engagement", "reason": "Trial"}),
            ("wait", "wait", {"amount": 2, "unit": "days"}),
            ("end", "exit", {}),
        ),
    )
    mine = LeadFactory.create(owner=sales)
    theirs = LeadFactory.create(owner=other_sales)
    for lead in (mine, theirs):
        EventFactory.create(lead=lead, type="track", name="Signed up for trial", properties={})
    drain()

    listed = marketer_api.get(f"/api/v1/flows/{flow.pk}/enrollments/").json()["results"]
    assert [(e["lead"], e["version"], e["status"]) for e in listed] == [
        (theirs.pk, 1, "waiting"),
        (mine.pk, 1, "waiting"),
    ]
    assert marketer_api.get(f"/api/v1/flows/{flow.pk}/stats/").json() == {
        "nodes": {
            "t": {"entered": 2, "completed": 2, "waiting": 0, "failed": 0},
            "score": {"entered": 2, "completed": 2, "waiting": 0, "failed": 0},
            "wait": {"entered": 2, "completed": 0, "waiting": 2, "failed": 0},
        }
    }

    body = marketer_api.get(f"/api/v1/leads/{mine.pk}/enrollments/").json()["results"]
    assert len(body) == 1
    assert (body[0]["flow"], body[0]["flow_name"], body[0]["trigger_node"]) == (
        flow.pk,
        "Trial scoring",
        "t",
    )
    assert [(s["node_id"], s["node_type"], s["status"]) for s in body[0]["steps"]] == [
        ("t", "app.event", "completed"),
        ("score", "score.adjust", "completed"),
        ("wait", "wait", "waiting"),
    ]
    steps = marketer_api.get(f"/api/v1/enrollments/{body[0]['id']}/steps/").json()["results"]
    assert [s["node_id"] for s in steps] == ["wait", "score", "t"]

    # A sales rep sees their own lead's flows, and nothing of another rep's lead.
    assert len(sales_api.get(f"/api/v1/leads/{mine.pk}/enrollments/").json()["results"]) == 1
    assert sales_api.get(f"/api/v1/leads/{theirs.pk}/enrollments/").status_code == 404
    assert sales_api.get(f"/api/v1/leads/{10**9}/enrollments/").status_code == 404
    by_filter = sales_api.get(f"/api/v1/enrollments/?flow={flow.pk}").json()["results"]
    assert [e["lead"] for e in by_filter] == [mine.pk]

import pytest

from flows.graph import graph_validate
from flows.lifecycle import flow_draft_save, flow_publish
from flows.models import Flow
from flows.templates_catalog import (
    DEAD_END_CONDITIONS,
    DEAD_END_SEGMENT,
    FLOW_TEMPLATES,
    ROW,
    TEMPLATES,
)
from leads.models import Segment
from leads.services.leads import lead_create, lead_update
from tests.factories import FlowFactory
from tests.flows.helpers import drain, graph
from tests.flows.test_pages import builder_data

pytestmark = pytest.mark.django_db

FIRST = graph(("t", "app.event", {"event": "First"}))
SECOND = graph(
    ("t", "app.event", {"event": "Second"}),
    ("s", "score.adjust", {"points": 3, "category": "engagement", "reason": "Second"}),
)
EDITED = graph(("t", "app.event", {"event": "Edited, not published"}))


def two_versions(user=None) -> Flow:
    """A flow published twice (v1 FIRST, v2 SECOND) whose draft was edited since:
    its draft is EDITED at revision 2."""
    flow = FlowFactory.create(name="Versions", draft=FIRST)
    flow_publish(flow=flow, user=user)
    flow = flow_draft_save(flow=flow, graph=SECOND, revision=0)
    flow_publish(flow=flow, user=user)
    flow = flow_draft_save(flow=flow, graph=EDITED, revision=1)
    assert flow.draft_revision == 2
    return flow


# --- version history and restore ------------------------------------------------------


def test_restore_through_the_page(client, marketer):
    flow = two_versions(marketer)
    client.force_login(marketer)
    viewing = client.get(f"/flows/{flow.pk}/?version=1").content.decode()
    assert f'action="/flows/{flow.pk}/versions/1/restore/"' in viewing
    assert "Restore as draft" in viewing

    response = client.post(f"/flows/{flow.pk}/versions/1/restore/")

    assert response.status_code == 302
    assert response["Location"] == f"/flows/{flow.pk}/"
    flow.refresh_from_db()
    assert (flow.draft, flow.draft_revision) == (FIRST, 3)
    assert flow.published is not None
    assert flow.published.number == 2
    page = client.get(response["Location"])
    assert (
        '<p class="flash">Version 1 is now the draft; publish it to make it live.</p>'
        in page.content.decode()
    )
    assert builder_data(page)["graph"] == FIRST
    assert builder_data(page)["revision"] == 3
    assert "Restore as draft" not in page.content.decode()


def test_restore_page_is_post_only_and_404s_for_other_flows_versions(client, admin_user):
    flow = two_versions()
    other = FlowFactory.create(name="Other", draft=FIRST)
    flow_publish(flow=other)
    client.force_login(admin_user)
    assert client.get(f"/flows/{flow.pk}/versions/1/restore/").status_code == 405
    assert client.post(f"/flows/{flow.pk}/versions/3/restore/").status_code == 404
    assert client.post(f"/flows/{flow.pk + other.pk}/versions/1/restore/").status_code == 404
    assert client.post(f"/flows/{flow.pk}/versions/{2**70}/restore/").status_code == 404
    flow.refresh_from_db()
    assert (flow.draft, flow.draft_revision) == (EDITED, 2)


def test_restore_through_the_api_makes_a_stale_draft_save_conflict(marketer_api):
    flow = two_versions()
    url = f"/api/v1/flows/{flow.pk}"
    loaded = marketer_api.get(f"{url}/draft/").json()
    assert loaded == {"graph": EDITED, "revision": 2}

    response = marketer_api.post(f"{url}/versions/2/restore/")

    assert response.status_code == 200
    assert response.json() == {"graph": SECOND, "revision": 3}
    flow.refresh_from_db()
    assert (flow.draft, flow.draft_revision) == (SECOND, 3)
    stale = marketer_api.put(
        f"{url}/draft/", {"graph": EDITED, "revision": loaded["revision"]}, format="json"
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "conflict"
    flow.refresh_from_db()
    assert flow.draft == SECOND
    missing = marketer_api.post(f"{url}/versions/9/restore/")
    assert missing.status_code == 404
    assert marketer_api.post(f"/api/v1/flows/{flow.pk + 1}/versions/1/restore/").status_code == 404


def test_sales_cannot_restore(client, sales, sales_api):
    flow = two_versions()
    client.force_login(sales)
    assert client.post(f"/flows/{flow.pk}/versions/1/restore/").status_code == 403
    assert client.get(f"/flows/{flow.pk}/versions/1/restore/").status_code == 403
    assert sales_api.post(f"/api/v1/flows/{flow.pk}/versions/1/restore/").status_code == 403
    flow.refresh_from_db()
    assert (flow.draft, flow.draft_revision) == (EDITED, 2)


def versions_menu(response) -> str:
    html = response.content.decode()
    start = html.index('id="flow-versions"')
    return html[start : html.index("</ul>", start)]


def test_versions_menu_lists_newest_first_and_marks_the_current(
    client, marketer, django_assert_max_num_queries
):
    flow = two_versions(marketer)
    client.force_login(marketer)

    # Session, user, role, unread notifications, flow, the version viewed, the menu.
    with django_assert_max_num_queries(7):
        response = client.get(f"/flows/{flow.pk}/?version=1")

    menu = versions_menu(response)
    assert menu.index(">v2<") < menu.index(">v1<")
    assert menu.count("marketer-t, ") == 2
    assert f'href="/flows/{flow.pk}/?version=2"' in menu
    assert f'href="/flows/{flow.pk}/?version=1"' in menu
    # v2 is the published one; v1 is the one being viewed.
    v2 = menu[menu.index(">v2<") : menu.index(">v1<")]
    assert '<span class="badge text-bg-success ms-auto">current</span>' in v2
    v1 = menu[menu.index(">v1<") :]
    assert "current" not in v1
    assert menu.count("active") == 1
    assert f'active" href="/flows/{flow.pk}/?version=1"' in menu
    assert "Only the latest" not in menu


def test_versions_menu_is_one_query_and_stops_at_fifty(
    client, marketer, django_assert_max_num_queries
):
    flow = FlowFactory.create(name="Many", draft=FIRST)
    for _ in range(52):
        flow_publish(flow=flow, user=marketer)
    client.force_login(marketer)

    # Session, user, role, unread notifications, flow, the menu: however many
    # versions there are.
    with django_assert_max_num_queries(6):
        response = client.get(f"/flows/{flow.pk}/")

    menu = versions_menu(response)
    assert menu.count('class="fw-semibold">v') == 50
    assert menu.index(">v52<") < menu.index(">v51<") < menu.index(">v3<")
    assert ">v2<" not in menu
    assert "Only the latest 50 versions are listed." in menu
    assert 'aria-current="page">Draft</a>' in menu


def test_versions_menu_before_anything_is_published(client, marketer):
    flow = FlowFactory.create(name="New", draft=FIRST)
    client.force_login(marketer)
    assert "Not published yet." in versions_menu(client.get(f"/flows/{flow.pk}/"))


# --- templates --------------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.key for t in TEMPLATES])
def test_every_template_builds_a_publishable_graph(template, marketer):
    g = template.build(marketer)

    assert graph_validate(g) is g
    ids = [node["id"] for node in g["nodes"]]
    assert len(ids) == len(set(ids))
    assert all(node["position"]["y"] % ROW == 0 for node in g["nodes"])
    assert {node["position"]["y"] for node in g["nodes"]} == {
        n * ROW for n in range(len({node["position"]["y"] for node in g["nodes"]}))
    }
    # Building again gives the same graph (and makes nothing twice).
    assert template.build(marketer) == g


def test_templates_cover_the_promised_flows():
    assert [(t.key, t.name, t.reentry, t.reentry_days) for t in TEMPLATES] == [
        ("email-engagement", "Email engagement scoring", "always", None),
        ("negative-signals", "Negative signals", "always", None),
        ("b2b-fit", "B2B fit scoring", "once", None),
        ("app-activity", "App activity scoring", "always", None),
        ("notify-sales-hot", "Notify sales on hot lead", "days", 30),
        ("disqualify-dead-ends", "Disqualify dead-end leads", "always", None),
        ("notify-sales-warm", "Notify sales on warm lead", "days", 30),
        ("b2c-engagement", "B2C engagement scoring", "always", None),
    ]


def test_dead_end_template_finds_or_makes_its_segment(marketer):
    template = FLOW_TEMPLATES["disqualify-dead-ends"]
    first = template.build(marketer)
    segment = Segment.objects.get()
    assert (segment.name, segment.conditions, segment.kind, segment.time_relative) == (
        DEAD_END_SEGMENT,
        DEAD_END_CONDITIONS,
        "dynamic",
        True,
    )
    assert segment.created_by == marketer
    assert first["nodes"][0] == {
        "id": "dead-end",
        "type": "segment.entered",
        "config": {"segment": segment.pk},
        "position": {"x": 0, "y": 0},
    }
    template.build(None)
    assert Segment.objects.count() == 1


def test_b2b_fit_template_scores_a_new_lead(marketer):
    flow = FlowFactory.create(
        name="Fit", reentry="once", draft=FLOW_TEMPLATES["b2b-fit"].build(marketer)
    )
    flow_publish(flow=flow)
    fits = lead_create(
        fields={"email": "vp@x.example", "job_title": "VP Marketing", "company_size": 200}
    )
    student = lead_create(
        fields={"email": "s@x.example", "job_title": "Student", "company_size": 5}
    )
    drain()
    fits.refresh_from_db()
    student.refresh_from_db()
    assert (fits.score, student.score) == (45, 0)
    reasons = fits.score_changes.order_by("id").values_list("reason", "delta")
    assert list(reasons) == [
        ("Works in marketing or sales", 10),
        ("Company of 50 to 1,000 people", 15),
        ("Decision maker", 20),
    ]


def test_dead_end_template_disqualifies_students_and_job_seekers(marketer):
    flow = FlowFactory.create(
        name="Dead ends",
        reentry="always",
        draft=FLOW_TEMPLATES["disqualify-dead-ends"].build(marketer),
    )
    flow_publish(flow=flow)
    student = lead_create(fields={"email": "s@x.example", "job_title": "PhD student"})
    seeker = lead_create(fields={"email": "j@x.example", "job_title": "Engineer"})
    buyer = lead_create(fields={"email": "b@x.example", "job_title": "Head of Growth"})
    drain()
    seeker.refresh_from_db()
    assert seeker.stage == "subscriber"
    lead_update(lead=seeker, changes={"job_title": "Open to work"})
    drain()
    for lead in (student, seeker, buyer):
        lead.refresh_from_db()
    assert (student.stage, seeker.stage, buyer.stage) == (
        "disqualified",
        "disqualified",
        "subscriber",
    )


def test_flow_list_offers_the_templates(client, marketer, django_assert_max_num_queries):
    client.force_login(marketer)
    with django_assert_max_num_queries(5):
        html = client.get("/flows/").content.decode()
    for template in TEMPLATES:
        assert f'name="template" value="{template.key}"' in html
        assert (
            f'<h3 id="template-{template.key}" class="h6 card-title">{template.name}</h3>' in html
        )
        assert f'<p class="small text-muted flex-grow-1">{template.description}</p>' in html
    # A picture of each template's graph, drawn on the server.
    assert html.count('<svg class="lf-graph-preview"') == len(TEMPLATES)


def test_create_from_a_template_through_the_page(client, marketer):
    client.force_login(marketer)

    response = client.post("/flows/", {"name": "", "template": "notify-sales-hot"})

    flow = Flow.objects.get()
    assert response["Location"] == f"/flows/{flow.pk}/"
    template = FLOW_TEMPLATES["notify-sales-hot"]
    assert (flow.name, flow.description, flow.reentry, flow.reentry_days) == (
        "Notify sales on hot lead",
        template.description,
        "days",
        30,
    )
    assert (flow.draft, flow.draft_revision, flow.status) == (template.build(None), 0, "draft")
    assert flow.created_by == marketer
    named = client.post("/flows/", {"name": "Our dead ends", "template": "disqualify-dead-ends"})
    flow = Flow.objects.get(name="Our dead ends")
    assert named["Location"] == f"/flows/{flow.pk}/"
    assert flow.draft == FLOW_TEMPLATES["disqualify-dead-ends"].build(None)
    assert builder_data(client.get(named["Location"]))["graph"] == flow.draft


def test_unknown_template_on_the_page_creates_nothing(client, marketer):
    client.force_login(marketer)

    response = client.post("/flows/", {"name": "Mine", "template": "nope"})

    assert response.status_code == 200
    html = response.content.decode()
    assert (
        '<div id="flow-template-error" class="invalid-feedback d-block">'
        "Choose one of the listed templates.</div>"
    ) in html
    assert 'value="Mine"' in html
    assert Flow.objects.count() == 0
    assert Segment.objects.count() == 0
    blank = client.post("/flows/", {"name": " ", "template": ""})
    assert "Give the flow a name." in blank.content.decode()
    assert Flow.objects.count() == 0


def test_templates_api(marketer_api):
    response = marketer_api.get("/api/v1/flows/templates/")
    assert response.status_code == 200
    assert response.json() == {
        "results": [{"key": t.key, "name": t.name, "description": t.description} for t in TEMPLATES]
    }


def test_create_from_a_template_through_the_api(marketer_api, marketer):
    response = marketer_api.post("/api/v1/flows/", {"template": "email-engagement"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["reentry"], body["reentry_days"], body["draft_revision"]) == (
        "Email engagement scoring",
        "always",
        None,
        0,
    )
    assert "template" not in body
    flow = Flow.objects.get()
    assert flow.created_by == marketer
    assert marketer_api.get(f"/api/v1/flows/{flow.pk}/draft/").json() == {
        "graph": FLOW_TEMPLATES["email-engagement"].build(None),
        "revision": 0,
    }
    own = marketer_api.post(
        "/api/v1/flows/",
        {"name": "Hot leads", "description": "", "template": "notify-sales-hot", "reentry": "once"},
        format="json",
    ).json()
    assert (own["name"], own["description"], own["reentry"], own["reentry_days"]) == (
        "Hot leads",
        "",
        "once",
        None,
    )
    assert Flow.objects.get(pk=own["id"]).draft == FLOW_TEMPLATES["notify-sales-hot"].build(None)


def test_unknown_template_in_the_api_is_a_field_error(marketer_api):
    response = marketer_api.post("/api/v1/flows/", {"name": "X", "template": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"template": ['"nope" is not a valid choice.']}
    nameless = marketer_api.post("/api/v1/flows/", {}, format="json")
    assert nameless.status_code == 400
    assert nameless.json()["error"]["fields"] == {"name": ["This field is required."]}
    assert Flow.objects.count() == 0


def test_a_template_cannot_be_applied_to_an_existing_flow(marketer_api):
    flow = FlowFactory.create(name="Existing", draft=FIRST)
    response = marketer_api.patch(
        f"/api/v1/flows/{flow.pk}/", {"template": "b2b-fit"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "template": ["A template applies only when creating a flow."]
    }
    flow.refresh_from_db()
    assert flow.draft == FIRST

"""Flows as things to manage: unique names, renaming and the settings dialog,
copies, archiving and deleting drafts (pages and API); what a draft changes
against the live version; the template gallery's pictures."""

import json

import pytest
from django.db import IntegrityError

from flows.changes import graph_changes, graph_differs
from flows.lifecycle import (
    FlowRefused,
    flow_create,
    flow_delete,
    flow_draft_save,
    flow_duplicate,
    flow_name_free,
    flow_publish,
    flow_set_status,
    flow_unarchive,
    flow_update,
)
from flows.models import Flow
from flows.selectors import node_summaries
from flows.templates_catalog import FLOW_TEMPLATES, TEMPLATES
from leads.models import Segment
from tests.factories import FlowFactory, SegmentFactory
from tests.flows.helpers import graph, published

pytestmark = pytest.mark.django_db

TAKEN = "A flow named “Welcome” exists already. Choose another name."
LIVE = graph(
    ("t", "app.event", {"event": "Signed up"}),
    ("s", "score.adjust", {"points": 5, "category": "engagement", "reason": "Signed up"}),
    ("x", "exit", {}),
)


# --- names -------------------------------------------------------------------------


def test_names_are_unique_whatever_their_case():
    flow_create(name="Welcome")

    with pytest.raises(FlowRefused) as refused:
        flow_create(name="  WELCOME ")

    assert (refused.value.field, refused.value.message) == (
        "name",
        "A flow named “WELCOME” exists already. Choose another name.",
    )
    other = flow_create(name="Nurture")
    with pytest.raises(FlowRefused):
        flow_update(flow=other, name="welcome")
    # Its own name in another case is no clash.
    assert flow_update(flow=other, name="NURTURE").name == "NURTURE"
    # The database refuses what slips past the check.
    with pytest.raises(IntegrityError):
        FlowFactory.create(name="wElCoMe")


def test_names_the_app_makes_get_a_number_when_taken():
    flow_create(name="Hot leads")
    flow_create(name="Hot leads (2)")

    assert flow_name_free(base="hot leads") == "hot leads (3)"
    assert flow_name_free(base="Cold leads") == "Cold leads"
    first = FLOW_TEMPLATES["b2b-fit"]
    made = [flow.name for flow in (flow_create_from(first), flow_create_from(first))]
    assert made == ["B2B fit scoring", "B2B fit scoring (2)"]


def flow_create_from(template):
    from flows.templates_catalog import flow_create_from_template

    return flow_create_from_template(template=template)


# --- copies, archive, delete (services) ----------------------------------------------


def test_a_copy_is_a_new_draft_of_the_draft():
    flow = published("Welcome", LIVE, description="Points for sign-ups", reentry="always")
    flow = flow_draft_save(flow=flow, graph=graph(("t", "lead.created", {})), revision=0)

    copy = flow_duplicate(flow=flow)
    again = flow_duplicate(flow=flow)

    assert (copy.name, again.name) == ("Copy of Welcome", "Copy of Welcome (2)")
    assert (copy.status, copy.published_id, copy.versions.count()) == ("draft", None, 0)
    assert (copy.draft, copy.description, copy.reentry) == (
        flow.draft,
        "Points for sign-ups",
        "always",
    )
    with pytest.raises(FlowRefused) as refused:
        flow_duplicate(flow=flow, name="welcome")
    assert refused.value.message == TAKEN.replace("“Welcome”", "“welcome”")


def test_only_a_flow_never_published_can_be_deleted():
    draft = flow_create(name="Draft")
    live = published("Welcome", LIVE)
    flow_set_status(flow=live, status="archived")

    flow_delete(flow=draft)
    with pytest.raises(FlowRefused) as refused:
        flow_delete(flow=live)

    assert list(Flow.objects.values_list("name", flat=True)) == ["Welcome"]
    assert refused.value.message.startswith("“Welcome” was published, so it stays")


def test_unarchived_flows_come_back_paused_or_as_drafts():
    live = published("Welcome", LIVE)
    draft = flow_create(name="Draft")
    for flow in (live, draft):
        flow_set_status(flow=flow, status="archived")

    assert flow_unarchive(flow=live).status == "paused"
    assert flow_unarchive(flow=draft).status == "draft"
    # A flow that is not archived stays as it is.
    flow_set_status(flow=live, status="active")
    assert flow_unarchive(flow=live).status == "active"


# --- the API -----------------------------------------------------------------------


def test_the_api_renames_and_refuses_a_taken_name(marketer_api):
    flow_create(name="Welcome")
    nurture = flow_create(name="Nurture")
    url = f"/api/v1/flows/{nurture.pk}/"

    taken = marketer_api.patch(url, {"name": "WELCOME"}, format="json")
    created = marketer_api.post("/api/v1/flows/", {"name": "welcome"}, format="json")
    renamed = marketer_api.patch(
        url, {"name": "Nurture CEOs", "reentry": "days", "reentry_days": 7}, format="json"
    )

    assert (taken.status_code, taken.json()) == (
        400,
        {
            "error": {
                "code": "invalid",
                "message": taken.json()["error"]["message"],
                "fields": {"name": ["A flow named “WELCOME” exists already. Choose another name."]},
            }
        },
    )
    assert created.status_code == 400
    assert created.json()["error"]["fields"] == {
        "name": ["A flow named “welcome” exists already. Choose another name."]
    }
    assert renamed.status_code == 200
    nurture.refresh_from_db()
    assert (nurture.name, nurture.reentry, nurture.reentry_days) == ("Nurture CEOs", "days", 7)


def test_the_api_duplicates_archives_and_deletes_drafts_only(marketer_api):
    live = published("Welcome", LIVE)
    url = f"/api/v1/flows/{live.pk}/"

    copy = marketer_api.post(f"{url}duplicate/", {}, format="json")
    named = marketer_api.post(f"{url}duplicate/", {"name": "Welcome 2"}, format="json")
    taken = marketer_api.post(f"{url}duplicate/", {"name": "welcome 2"}, format="json")
    refused = marketer_api.delete(url)
    deleted = marketer_api.delete(f"/api/v1/flows/{copy.json()['id']}/")
    archived = marketer_api.post(f"{url}archive/")
    back = marketer_api.post(f"{url}unarchive/")

    assert (copy.status_code, copy.json()["name"], copy.json()["status"]) == (
        201,
        "Copy of Welcome",
        "draft",
    )
    assert (named.status_code, named.json()["name"]) == (201, "Welcome 2")
    assert taken.status_code == 400
    assert list(taken.json()["error"]["fields"]) == ["name"]
    assert refused.status_code == 400
    assert list(refused.json()["error"]["fields"]) == ["flow"]
    assert deleted.status_code == 204
    assert (archived.json()["status"], back.json()["status"]) == ("archived", "paused")
    assert sorted(Flow.objects.values_list("name", flat=True)) == ["Welcome", "Welcome 2"]


def test_the_api_says_when_a_live_flow_has_unpublished_changes(
    marketer_api, django_assert_max_num_queries
):
    live = published("Welcome", LIVE)
    moved = {
        **LIVE,
        "nodes": [{**node, "position": {"x": 300, "y": 9}} for node in LIVE["nodes"]],
    }
    url = f"/api/v1/flows/{live.pk}/"

    assert marketer_api.get(url).json()["unpublished_changes"] is False
    flow_draft_save(flow=live, graph=moved, revision=0)
    # Moving steps on the canvas changes nothing for a lead.
    assert marketer_api.get(url).json()["unpublished_changes"] is False
    flow_draft_save(flow=live, graph=graph(("t", "lead.created", {})), revision=1)
    assert marketer_api.get(url).json()["unpublished_changes"] is True
    for n in range(5):
        published(f"Live {n}", LIVE)
    # Key or session, user, role, the page of flows with their versions.
    with django_assert_max_num_queries(5):
        listed = marketer_api.get("/api/v1/flows/").json()["results"]
    assert [(f["name"], f["unpublished_changes"]) for f in listed] == [
        *[(f"Live {n}", False) for n in reversed(range(5))],
        ("Welcome", True),
    ]


def test_sales_cannot_manage_flows(sales_api, client, sales):
    flow = flow_create(name="Draft")
    client.force_login(sales)

    assert sales_api.post(f"/api/v1/flows/{flow.pk}/duplicate/").status_code == 403
    assert sales_api.delete(f"/api/v1/flows/{flow.pk}/").status_code == 403
    for path in ("settings", "duplicate", "archive", "delete", "changes", "header"):
        assert client.post(f"/flows/{flow.pk}/{path}/").status_code == 403
    assert Flow.objects.count() == 1


# --- the pages ---------------------------------------------------------------------


def test_the_list_offers_each_flows_actions_and_says_what_is_unpublished(
    client, marketer, django_assert_max_num_queries
):
    for n in range(6):
        flow = published(f"Live {n}", LIVE)
        if n % 2:
            flow_draft_save(flow=flow, graph=graph(("t", "lead.created", {})), revision=0)
    draft = flow_create(name="Only a draft")
    client.force_login(marketer)

    # Session, user, role, unread notifications, the flows with their versions.
    with django_assert_max_num_queries(5):
        html = client.get("/flows/").content.decode()

    assert html.count("· unpublished changes</span>") == 3
    assert html.count('<span class="badge lf-status lf-status-active">Active</span>') == 6
    assert html.count(">Delete draft…</a>") == 1
    assert f'href="/flows/{draft.pk}/delete/"' in html
    assert html.count(">Duplicate</button>") == 7
    assert html.count(">Archive</button>") == 7


def test_the_settings_page_renames_and_refuses_a_taken_name(client, marketer):
    flow_create(name="Welcome")
    flow = flow_create(name="Nurture")
    client.force_login(marketer)
    url = f"/flows/{flow.pk}/settings/"

    shown = client.get(url).content.decode()
    taken = client.post(url, {"name": "welcome", "reentry": "once"}).content.decode()
    no_days = client.post(url, {"name": "Nurture", "reentry": "days"}).content.decode()
    saved = client.post(
        url,
        {
            "name": "Nurture CEOs",
            "description": "For CEOs",
            "reentry": "days",
            "reentry_days": "30",
            "next": "/flows/",
        },
    )

    assert 'value="Nurture"' in shown
    assert "A flow named “welcome” exists already. Choose another name." in taken
    assert "Give the number of days." in no_days
    assert saved["Location"] == "/flows/"
    flow.refresh_from_db()
    assert (flow.name, flow.description, flow.reentry, flow.reentry_days) == (
        "Nurture CEOs",
        "For CEOs",
        "days",
        30,
    )


def test_the_settings_dialog_closes_and_refreshes_the_header(client, marketer):
    flow = flow_create(name="Nurture")
    client.force_login(marketer)
    url = f"/flows/{flow.pk}/settings/"

    dialog = client.get(url, headers={"HX-Request": "true"}).content.decode()
    saved = client.post(
        url, {"name": "Renamed", "reentry": "always"}, headers={"HX-Request": "true"}
    )

    assert dialog.startswith("<form ")
    assert '<h2 id="flow-dialog-title" class="h5">Flow settings</h2>' in dialog
    assert saved.status_code == 200
    assert set(json.loads(saved.headers["HX-Trigger"])) == {
        "leadflow:dialog-close",
        "leadflow:flow-changed",
    }
    header = client.get(f"/flows/{flow.pk}/header/").content.decode()
    assert '<h1 class="h4 mb-0 me-1 text-break">Renamed</h1>' in header


def test_duplicate_archive_and_delete_through_the_pages(client, marketer):
    live = published("Welcome", LIVE)
    client.force_login(marketer)

    copied = client.post(f"/flows/{live.pk}/duplicate/")
    copy = Flow.objects.get(name="Copy of Welcome")
    asked = client.get(f"/flows/{copy.pk}/delete/").content.decode()
    refused_page = client.get(f"/flows/{live.pk}/delete/").content.decode()
    refused = client.post(f"/flows/{live.pk}/delete/")
    deleted = client.post(f"/flows/{copy.pk}/delete/")
    archived = client.post(f"/flows/{live.pk}/archive/", {"next": "/flows/"})

    assert copied["Location"] == f"/flows/{copy.pk}/"
    assert ">Delete the draft</button>" in asked
    assert ">Archive it</button>" in refused_page
    assert refused["Location"] == f"/flows/{live.pk}/"
    assert deleted["Location"] == "/flows/"
    assert archived["Location"] == "/flows/"
    assert list(Flow.objects.values_list("name", "status")) == [("Welcome", "archived")]
    # Somewhere else than this site is not a place to go back to.
    elsewhere = client.post(f"/flows/{live.pk}/archive/", {"unarchive": "1", "next": "//evil"})
    assert elsewhere["Location"] == f"/flows/{live.pk}/"
    assert Flow.objects.get().status == "paused"


def test_the_builder_header_tells_the_truth_about_versions(
    client, marketer, django_assert_max_num_queries
):
    flow = published("Welcome", LIVE)
    client.force_login(marketer)
    url = f"/flows/{flow.pk}/header/"

    before = client.get(url).content.decode()
    flow_draft_save(flow=flow, graph=graph(("t", "lead.created", {})), revision=0)
    # Session, user, role, the flow with its live version, the versions menu.
    with django_assert_max_num_queries(5):
        edited = client.get(url).content.decode()
    flow_publish(flow=flow)
    after = client.get(url).content.decode()

    assert "unpublished changes" not in before
    assert "· unpublished changes</span>" in edited
    assert f'hx-get="/flows/{flow.pk}/changes/"' in edited
    assert "unpublished changes" not in after
    menu = '<span class="fw-semibold">v{}</span>'
    assert (before.count(menu.format(1)), after.count(menu.format(2))) == (1, 1)
    assert "<span>v2</span>\n    \n  </span>" in after
    # The page's box reloads the header into itself: the box stays, so the
    # next change is always heard by an element on the page.
    assert "leadflow:flow-changed" not in after
    page = client.get(f"/flows/{flow.pk}/").content.decode()
    box = (
        f'<div id="flow-header-box" hx-get="{url}" '
        'hx-trigger="leadflow:flow-changed from:body" hx-sync="this:replace" '
        'hx-swap="innerHTML" hx-disinherit="*"><div id="flow-header"'
    )
    assert box in page


# --- what changed ------------------------------------------------------------------


def test_the_changes_against_the_live_version_in_words(client, marketer):
    segment = SegmentFactory.create(name="CEOs", static=True)
    flow = published("Welcome", LIVE)
    draft = graph(
        ("t", "app.event", {"event": "Signed up"}),
        ("s", "score.adjust", {"points": 10, "category": "engagement", "reason": "Signed up!"}),
        ("n", "segment.add", {"segment": segment.pk}),
    )
    flow = flow_draft_save(flow=flow, graph=draft, revision=0)

    changes = graph_changes(
        LIVE,
        draft,
        before_summaries=node_summaries(LIVE),
        after_summaries=node_summaries(draft),
    )

    assert [(c.label, c.settings) for c in changes.added] == [
        ("Add to static segment: Add to CEOs", ())
    ]
    assert [c.label for c in changes.removed] == ["Exit: End of the flow"]
    assert [(c.label, c.settings) for c in changes.changed] == [
        ("Adjust lead score: +10 Engagement: Signed up!", ("Points", "Reason"))
    ]
    assert changes.connections_added == ["+10 Engagement: Signed up! → Add to CEOs"]
    assert changes.connections_removed == ["+5 Engagement: Signed up → End of the flow"]
    client.force_login(marketer)
    page = client.get(f"/flows/{flow.pk}/changes/").content.decode()
    assert "<li>Adjust lead score: +10 Engagement: Signed up! " in page
    assert "changed: Points, Reason" in page


def test_graph_differs_ignores_positions_and_edge_ids_only():
    moved = {
        "nodes": [{**n, "position": {"x": 1, "y": 2}} for n in LIVE["nodes"]],
        "edges": [{**e, "id": f"other-{e['id']}"} for e in LIVE["edges"]],
    }
    rewired = {**LIVE, "edges": LIVE["edges"][:1]}

    assert graph_differs(LIVE, moved) is False
    assert graph_differs(LIVE, rewired) is True
    assert graph_differs(LIVE, {"nodes": [], "edges": []}) is True


# --- the template gallery ----------------------------------------------------------


def test_each_template_has_a_picture_of_its_graph_and_making_it_makes_nothing():
    for template in TEMPLATES:
        svg = str(template.preview_svg())
        nodes = template.build(None, preview=True)["nodes"]
        edges = template.build(None, preview=True)["edges"]
        assert svg.startswith('<svg class="lf-graph-preview" ')
        # A box and its coloured edge per step; a curve and an arrowhead per edge.
        assert svg.count("<rect ") == 2 * len(nodes)
        assert svg.count("<path ") == 2 * len(edges)
        assert f'aria-label="{template.name}: {len(nodes)} steps"' in svg
    # The dead-end template makes its segment when a flow is made from it, not
    # for its picture.
    assert not Segment.objects.exists()

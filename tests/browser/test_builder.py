"""The flow builder in a real browser: palette, drag and drop, connections,
autosave, validation on the canvas, undo / redo, two tabs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
from playwright.sync_api import Locator, Page, expect

from flows.lifecycle import flow_create, flow_draft_save, flow_publish
from flows.models import Enrollment, Flow, StepRun
from leads.models import Lead, Task
from scoring.models import ScoreChange
from segments.services import segment_create
from tests.factories import EventFactory, LeadFactory, UserFactory
from tests.flows.helpers import drain, graph, published
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def open_new_flow(page: Page, live_server: Any, name: str) -> Flow:
    page.goto(f"{live_server.url}/flows/")
    page.get_by_label("New flow").fill(name)
    page.get_by_role("button", name="Create and open").click()
    expect(page.locator(".react-flow__pane")).to_be_visible()
    return Flow.objects.get(name=name)


def drop(page: Page, node_type: str, x: int, y: int) -> Locator:
    """Drag a palette item onto the canvas at (x, y) inside it."""
    page.locator(f'.lf-palette [data-node-type="{node_type}"]').drag_to(
        page.locator(".lf-canvas .react-flow__pane"), target_position={"x": x, "y": y}
    )
    node = page.locator(f'.lf-node[data-node-type="{node_type}"]').last
    expect(node).to_be_visible()
    return node


def connect(page: Page, source: Locator, target: Locator, handle: str = "next") -> None:
    """Drag from an output handle to a node's input, slowly: React Flow ignores
    the first move of a drag."""
    start = source.locator(f'.react-flow__handle.source[data-handleid="{handle}"]').bounding_box()
    end = target.locator(".react-flow__handle.target").bounding_box()
    assert start
    assert end
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=12)
    page.mouse.up()


def saved(page: Page) -> None:
    expect(page.locator(".lf-save")).to_have_text("All changes saved", timeout=10_000)


def test_drag_connect_autosave_and_problems_on_the_canvas(page: Page, live_server, login):
    login(page, "marketer")
    flow = open_new_flow(page, live_server, "Trial scoring")
    expect(page.get_by_text("Drag a trigger from the palette")).to_be_visible()

    page.get_by_label("Search nodes").fill("score")
    expect(page.locator('.lf-palette [data-node-type="score.adjust"]')).to_be_visible()
    expect(page.locator('.lf-palette [data-node-type="app.event"]')).to_have_count(0)
    page.get_by_label("Search nodes").fill("")

    trigger = drop(page, "app.event", 300, 80)
    action = drop(page, "score.adjust", 300, 300)
    connect(page, trigger, action)
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    # Nothing leads into a trigger: the reverse connection is refused.
    start = action.locator('.react-flow__handle.source[data-handleid="next"]').bounding_box()
    assert start
    end = trigger.bounding_box()
    assert end
    page.mouse.move(start["x"] + 5, start["y"] + 5)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + 10, steps=12)
    page.mouse.up()
    expect(page.locator(".react-flow__edge")).to_have_count(1)

    saved(page)
    flow.refresh_from_db()
    assert sorted(n["type"] for n in flow.draft["nodes"]) == ["app.event", "score.adjust"]
    ids = {n["type"]: n["id"] for n in flow.draft["nodes"]}
    assert [(e["source"], e["sourceHandle"], e["target"]) for e in flow.draft["edges"]] == [
        (ids["app.event"], "next", ids["score.adjust"])
    ]

    # Neither node is configured: validation marks both, with the server's words.
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_role("alert").filter(has_text="The flow has problems")).to_be_visible()
    expect(trigger).to_have_class(re.compile(r"\blf-invalid\b"))
    expect(action.locator(".lf-node-problems")).to_contain_text("reason")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("alert").filter(has_text="Not published")).to_be_visible()
    flow.refresh_from_db()
    assert flow.published is None


def test_undo_redo_copy_paste_and_delete(page: Page, live_server, login):
    login(page, "marketer")
    flow = open_new_flow(page, live_server, "Keyboard")
    page.locator('.lf-palette [data-node-type="tag.add"]').click()
    nodes = page.locator(".lf-node")
    expect(nodes).to_have_count(1)
    page.locator(".react-flow__pane").click(position={"x": 20, "y": 20})
    page.keyboard.press("Control+z")
    expect(nodes).to_have_count(0)
    page.keyboard.press("Control+Shift+z")
    expect(nodes).to_have_count(1)

    nodes.first.click()
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    expect(nodes).to_have_count(2)
    page.keyboard.press("Delete")
    expect(nodes).to_have_count(1)
    saved(page)
    flow.refresh_from_db()
    assert [n["type"] for n in flow.draft["nodes"]] == ["tag.add"]


def test_two_tabs_do_not_overwrite_each_other(page: Page, live_server, login):
    login(page, "marketer")
    flow = open_new_flow(page, live_server, "Shared")
    other = page.context.new_page()
    other.goto(f"{live_server.url}/flows/{flow.pk}/")
    expect(other.locator(".react-flow__pane")).to_be_visible()

    page.locator('.lf-palette [data-node-type="tag.add"]').click()
    saved(page)
    other.locator('.lf-palette [data-node-type="exit"]').click()
    expect(other.get_by_role("alert")).to_contain_text("saved in another tab")
    expect(other.locator(".lf-save")).to_have_text("Changed elsewhere")
    flow.refresh_from_db()
    assert [n["type"] for n in flow.draft["nodes"]] == ["tag.add"]


def configure(page: Page, node: Locator, fill: dict[str, str], select: dict[str, str]) -> None:
    """Open a node's settings in the side panel and fill them in: they apply as
    they are typed (here, at the latest when the last box is left)."""
    node.click()
    panel = page.locator(".lf-panel form[data-ready]")
    expect(panel).to_be_visible()
    steps = [("select", label, value) for label, value in select.items()]
    steps += [("fill", label, value) for label, value in fill.items()]
    for index, (verb, label, value) in enumerate(steps):
        control = panel.get_by_label(label, exact=True)
        if index < len(steps) - 1:
            control.select_option(label=value) if verb == "select" else control.fill(value)
            continue
        with page.expect_response(lambda r: "/node-form/" in r.url and r.request.method == "POST"):
            control.select_option(label=value) if verb == "select" else control.fill(value)
            control.press("Tab")


def test_marketer_builds_a_flow_that_scores_and_notifies_through_the_worker(
    page: Page, live_server, login, full_key, celery_worker_process
):
    segment = segment_create(
        name="Active subscribers",
        conditions={"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]},
    )
    rep = UserFactory.create(username="rep-canvas", email="rep@example.com", role="sales")
    login(page, "marketer")
    flow = open_new_flow(page, live_server, "Hot subscribers")

    trigger = drop(page, "segment.entered", 320, 40)
    configure(page, trigger, {}, {"Segment": "Active subscribers"})
    expect(trigger.locator(".lf-node-summary")).to_have_text("Entered segment: Active subscribers")
    score = drop(page, "score.adjust", 320, 200)
    configure(
        page, score, {"Points": "5", "Reason": "Subscribed CEO"}, {"Score category": "Engagement"}
    )
    expect(score.locator(".lf-node-summary")).to_have_text("+5 Engagement: Subscribed CEO")
    notify = drop(page, "sales.notify", 320, 360)
    configure(page, notify, {"Task title": "Call {lead}"}, {})
    connect(page, trigger, score)
    connect(page, score, notify)
    expect(page.locator(".react-flow__edge")).to_have_count(2)

    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published version 1.")).to_be_visible()
    flow.refresh_from_db()
    assert flow.status == "active"
    assert flow.published is not None

    # A CEO arrives through the API; the worker puts them in the segment and
    # runs the published flow.
    response = requests.post(
        f"{live_server.url}/api/v1/events/",
        data=json.dumps(
            {
                "type": "identify",
                "email": "ceo@example.com",
                "properties": {"job_title": "CEO", "first_name": "Kim"},
                "idempotency_key": "canvas-1",
            }
        ),
        headers={"Authorization": f"Bearer {full_key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 202, response.content
    wait_for(lambda: Task.objects.exists(), 90, "the task")
    lead = Lead.objects.get(email="ceo@example.com")
    assert lead.score == 5
    assert list(ScoreChange.objects.filter(lead=lead).values_list("delta", "reason")) == [
        (5, "Subscribed CEO")
    ]
    task = Task.objects.get()
    assert (task.lead, task.assignee, task.title) == (lead, rep, "Call Kim")
    lead.refresh_from_db()
    assert lead.owner == rep
    assert segment.memberships.filter(lead=lead, left_at__isnull=True).count() == 1


def open_builder(page: Page, live_server: Any, flow: Flow) -> None:
    page.goto(f"{live_server.url}/flows/{flow.pk}/")
    expect(page.locator(".react-flow__pane")).to_be_visible()


def canvas_node(page: Page, node_id: str) -> Locator:
    return page.locator(f'.lf-node[data-node-id="{node_id}"]')


DEMO_GRAPH = graph(
    ("t", "app.event", {"event": "Requested demo"}),
    (
        "ceo",
        "condition",
        {"conditions": {"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}},
    ),
    extra=(
        ("score", "score.adjust", {"points": 5, "category": "fit", "reason": "Decision maker"}),
        ("notify", "sales.notify", {"title": "Call {lead}"}),
        ("nurture", "tag.add", {"tag": "nurture"}),
    ),
    branches=(
        ("ceo", "yes", "score"),
        ("score", "next", "notify"),
        ("ceo", "no", "nurture"),
    ),
)


def test_testing_a_flow_on_a_lead_highlights_its_path_and_writes_nothing(
    page: Page, live_server, login
):
    rep = UserFactory.create(
        username="rep-1", first_name="Sam", last_name="Rep", email="sam@example.com", role="sales"
    )
    flow = published("Demo requests", DEMO_GRAPH)
    LeadFactory.create(first_name="Kim", last_name="Other", email="other@example.com")
    lead = LeadFactory.create(
        first_name="Kim",
        last_name="Lee",
        email="kim@example.com",
        job_title="CEO",
        score=12,
        owner=rep,
    )
    login(page, "marketer")
    open_builder(page, live_server, flow)

    page.get_by_role("button", name="Test on a lead").click()
    test = page.locator(".lf-test")
    test.get_by_label("Lead", exact=True).fill("kim lee")
    test.get_by_role("button", name=re.compile("Kim Lee")).click()
    expect(test.locator("[data-lead-id]")).to_have_text("Kim Lee")
    test.get_by_label("A made-up event").check()
    # The made-up event starts filled in from the flow's trigger.
    expect(test.get_by_label("Event type")).to_have_value("track")
    expect(test.get_by_label("Event name")).to_have_value("Requested demo")
    test.get_by_role("button", name="Run", exact=True).click()

    effects = test.locator(".lf-test-steps .lf-test-effect")
    expect(effects).to_have_text(
        [
            "starts on App event: Requested demo, by the made-up event “App event: Requested demo”",
            "yes: job title contains “CEO” (“CEO”)",
            "+5 Fit: Decision maker (score 12 → 17)",
            "task 'Call Kim Lee' for Sam Rep (the owner); "
            "in-app notification and email to sam@example.com",
        ]
    )
    expect(test.locator(".lf-test-entry")).to_have_text(
        "Would enter the flow now. Not enrolled before; this flow lets a lead in once."
    )
    for node_id in ("t", "ceo", "score", "notify"):
        expect(canvas_node(page, node_id)).to_have_class(re.compile(r"\blf-on-path\b"))
    expect(canvas_node(page, "nurture")).not_to_have_class(re.compile(r"\blf-on-path\b"))
    expect(page.locator(".react-flow__edge.lf-edge-on-path.animated")).to_have_count(3)

    # The lead has no event of its own that starts the flow.
    test.get_by_label("The lead's latest matching event").check()
    test.get_by_role("button", name="Run", exact=True).click()
    expect(test.locator(".lf-test-trigger")).to_have_text(
        "The lead has done nothing yet that a trigger of this flow listens for. "
        "The flow starts on: App event: Requested demo."
    )
    expect(page.locator(".lf-on-path")).to_have_count(0)

    test.get_by_label("A made-up event").check()
    test.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator(".lf-on-path")).to_have_count(4)
    test.get_by_role("button", name="Clear").click()
    expect(page.locator(".lf-on-path")).to_have_count(0)
    expect(page.locator(".react-flow__edge.animated")).to_have_count(0)
    expect(test.locator(".lf-test-steps")).to_have_count(0)

    assert ScoreChange.objects.count() == 0
    assert Enrollment.objects.count() == 0
    assert StepRun.objects.count() == 0
    assert Task.objects.count() == 0
    lead.refresh_from_db()
    assert lead.score == 12


def test_testing_a_flow_with_problems_marks_them_on_the_canvas(page: Page, live_server, login):
    LeadFactory.create(first_name="Kim", last_name="Lee")
    login(page, "marketer")
    open_new_flow(page, live_server, "Unfinished")
    trigger = drop(page, "app.event", 300, 80)

    page.get_by_role("button", name="Test on a lead").click()
    test = page.locator(".lf-test")
    test.get_by_label("Lead", exact=True).fill("Kim")
    test.get_by_role("button", name=re.compile("Kim Lee")).click()
    test.get_by_role("button", name="Run", exact=True).click()

    expect(test.locator(".lf-test-errors")).to_have_text(
        "Not tested: fix the problems marked on the canvas first."
    )
    expect(trigger).to_have_class(re.compile(r"\blf-invalid\b"))
    expect(trigger.locator(".lf-node-problems")).to_contain_text("event")
    expect(page.get_by_role("alert").filter(has_text="The flow has problems;")).to_be_visible()


def test_a_count_on_a_node_lists_its_leads(page: Page, live_server, login):
    flow = published(
        "Trial",
        graph(
            ("t", "app.event", {"event": "Signed up for trial"}),
            ("wait", "wait", {"amount": 2, "unit": "days"}),
            ("end", "exit", {}),
        ),
    )
    lead = LeadFactory.create(first_name="Ada", last_name="Lovelace", email="ada@example.com")
    EventFactory.create(lead=lead, type="track", name="Signed up for trial", properties={})
    drain()
    login(page, "marketer")
    open_builder(page, live_server, flow)

    waiting = canvas_node(page, "wait").locator(".lf-stat-waiting")
    expect(waiting).to_have_text("1 waiting")
    expect(canvas_node(page, "t").locator(".lf-stat-waiting")).to_have_text("0 waiting")
    expect(canvas_node(page, "t").locator(".lf-stat-completed")).to_have_text("1 done")
    waiting.click()

    leads = page.locator(".lf-node-leads")
    expect(leads.get_by_role("heading")).to_have_text("Leads waiting at Wait 2 days")
    link = leads.get_by_role("link", name="Ada Lovelace")
    expect(link).to_have_attribute("href", f"/leads/{lead.pk}/")
    # The count is not a way to select the node.
    expect(canvas_node(page, "wait")).not_to_have_class(re.compile(r"\blf-selected\b"))

    canvas_node(page, "t").locator(".lf-stat-failed").click()
    expect(leads.get_by_role("heading")).to_have_text(
        "Leads that failed at App event: Signed up for trial"
    )
    expect(leads.get_by_text("No leads.")).to_be_visible()

    canvas_node(page, "wait").locator(".lf-stat-entered").click()
    link.click()
    page.wait_for_url(f"{live_server.url}/leads/{lead.pk}/")


def test_the_canvas_by_keyboard(page: Page, live_server, login):
    flow = published(
        "Keys",
        graph(("t", "app.event", {"event": "Signed up"}), ("tag", "tag.add", {"tag": "vip"})),
    )
    login(page, "marketer")
    open_builder(page, live_server, flow)
    toolbar = page.get_by_role("toolbar", name="Flow actions")
    expect(toolbar.get_by_role("button", name="Publish the draft")).to_be_visible()
    expect(toolbar.get_by_role("button", name="Tidy up the layout")).to_be_visible()

    # A palette item adds its node with Enter.
    page.locator('.lf-palette [data-node-type="exit"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator(".lf-node")).to_have_count(3)
    page.locator(".react-flow__pane").click(position={"x": 20, "y": 20})

    # Tab from the palette reaches the canvas's nodes, each named for a screen reader.
    tag = page.locator('.react-flow__node[data-id="tag"]')
    expect(tag).to_have_attribute("aria-label", "Add tag: Add tag vip")
    page.locator(".lf-palette-item").last.focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.id") == "tag":
            break
    expect(tag).to_be_focused()

    # Enter selects the focused node and opens its settings.
    expect(page.locator(".lf-panel form[data-ready]")).to_have_count(0)
    page.keyboard.press("Enter")
    expect(tag.locator(".lf-node")).to_have_class(re.compile(r"\blf-selected\b"))
    expect(
        page.locator(".lf-panel form[data-ready]").get_by_label("Tag", exact=True)
    ).to_have_value("vip")

    # Arrow keys move it.
    before = tag.bounding_box()
    assert before
    tag.focus()
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowDown")
    after = tag.bounding_box()
    assert after
    assert after["x"] > before["x"]
    assert after["y"] > before["y"]
    saved(page)
    flow.refresh_from_db()
    moved = next(n for n in flow.draft["nodes"] if n["id"] == "tag")
    assert moved["position"]["x"] > 0
    assert moved["position"]["y"] > 100

    # Delete removes it.
    page.keyboard.press("Delete")
    expect(tag).to_have_count(0)
    saved(page)
    flow.refresh_from_db()
    assert sorted(n["type"] for n in flow.draft["nodes"]) == ["app.event", "exit"]


def test_a_published_version_opens_read_only_and_is_restored_as_the_draft(
    page: Page, live_server, login
):
    login(page, "marketer")
    flow = published(
        "Versions",
        graph(("t", "app.event", {"event": "First"}), ("s", "tag.add", {"tag": "one"})),
    )
    first = flow.published
    assert first is not None
    flow_draft_save(
        flow=flow,
        graph=graph(("t", "app.event", {"event": "Second"})),
        revision=flow.draft_revision,
    )
    flow_publish(flow=flow)
    flow.refresh_from_db()
    flow_draft_save(
        flow=flow,
        graph=graph(("t", "app.event", {"event": "Draft"})),
        revision=flow.draft_revision,
    )

    page.goto(f"{live_server.url}/flows/{flow.pk}/")
    expect(page.locator(".lf-node")).to_have_count(1)
    page.get_by_role("button", name="Versions").click()
    page.locator("#flow-versions").get_by_role("link", name=re.compile(r"^v1\b")).click()
    page.wait_for_url(re.compile(r"\?version=1$"))
    expect(page.get_by_text("(read-only)")).to_be_visible()
    expect(page.locator(".lf-node")).to_have_count(2)
    expect(page.locator(".lf-palette")).to_have_count(0)

    page.get_by_role("button", name="Restore as draft").click()
    page.wait_for_url(f"{live_server.url}/flows/{flow.pk}/")
    expect(page.get_by_text("Version 1 is now the draft")).to_be_visible()
    expect(page.locator(".lf-node")).to_have_count(2)
    flow.refresh_from_db()
    assert flow.draft == first.graph


def test_connect_by_clicking_two_handles(page: Page, live_server, login):
    login(page, "marketer")
    flow = open_new_flow(page, live_server, "Touch")
    trigger = drop(page, "app.event", 300, 60)
    action = drop(page, "tag.add", 300, 300)
    trigger.locator('.react-flow__handle.source[data-handleid="next"]').click()
    action.locator(".react-flow__handle.target").click()
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    saved(page)
    flow.refresh_from_db()
    ids = {n["type"]: n["id"] for n in flow.draft["nodes"]}
    assert [(e["source"], e["target"]) for e in flow.draft["edges"]] == [
        (ids["app.event"], ids["tag.add"])
    ]


def test_a_node_secret_is_never_shown_and_survives_editing_and_copying(
    page: Page, live_server, login
):
    flow = flow_create(
        name="Signed",
        graph=graph(
            ("t", "app.event", {"event": "Paid"}),
            ("w", "webhook.send", {"url": "https://crm.example/hook", "secret": "k3y-hidden"}),
        ),
    )
    login(page, "marketer")
    open_builder(page, live_server, flow)
    assert "k3y-hidden" not in page.content()

    # The side panel says it is set, and editing the URL keeps it.
    webhook = canvas_node(page, "w")
    configure(page, webhook, {"URL": "https://crm.example/v2"}, {})
    panel = page.locator(".lf-panel form[data-ready]")
    expect(panel.get_by_label("Signing secret", exact=True)).to_have_value("")
    expect(panel.locator("[data-secret]")).to_have_attribute("data-secret", "set")
    saved(page)
    flow.refresh_from_db()
    by_id = {n["id"]: n["config"] for n in flow.draft["nodes"]}
    assert by_id["w"] == {"url": "https://crm.example/v2", "secret": "k3y-hidden"}

    # A new value typed in replaces it, and is not shown either.
    configure(page, webhook, {"Signing secret": "n3w-value"}, {})
    expect(panel.get_by_label("Signing secret", exact=True)).to_have_value("")

    def stored_secret() -> str:
        flow.refresh_from_db()
        return next(n["config"].get("secret") for n in flow.draft["nodes"] if n["id"] == "w")

    wait_for(lambda: stored_secret() == "n3w-value", 10, "the new secret saved")
    assert "n3w-value" not in page.locator(".lf-panel").inner_html()

    # After a reload, a copy has a new id the server keeps no secret for: it
    # starts without one.
    open_builder(page, live_server, flow)
    assert "n3w-value" not in page.content()
    webhook.click()
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    expect(page.locator(".lf-node")).to_have_count(3)
    expect(panel.locator("[data-secret]")).to_have_attribute("data-secret", "not-set")
    saved(page)
    flow.refresh_from_db()
    copies = [n for n in flow.draft["nodes"] if n["type"] == "webhook.send" and n["id"] != "w"]
    assert [c["config"] for c in copies] == [{"url": "https://crm.example/v2"}]
    assert stored_secret() == "n3w-value"

"""The flow builder in a real browser: palette, drag and drop, connections,
autosave, validation on the canvas, undo / redo, two tabs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
from playwright.sync_api import Locator, Page, expect

from flows.models import Flow
from leads.models import Lead, Task
from leads.services.segments import segment_create
from scoring.models import ScoreChange
from tests.factories import UserFactory
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
    assert start and end
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
    expect(page.get_by_text("Not published")).to_be_visible()
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
    """Open a node's settings in the side panel, fill them in and apply."""
    node.click()
    panel = page.locator(".lf-panel form")
    expect(panel).to_be_visible()
    for label, value in select.items():
        panel.get_by_label(label, exact=True).select_option(label=value)
    for label, value in fill.items():
        panel.get_by_label(label, exact=True).fill(value)
    panel.get_by_role("button", name="Apply").click()
    expect(page.locator(".lf-panel").get_by_role("status")).to_have_text("Applied")


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

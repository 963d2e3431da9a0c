"""Building a flow without dragging: "+" under a step and on a connection, the
If/else's conditions in the segment builder with their live count, settings
that apply as they are typed, and the canvas on a phone."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from flows.lifecycle import flow_create
from flows.models import Flow
from segments.services import segment_create
from tests.factories import LeadFactory
from tests.flows.helpers import graph
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def node_of(page: Page, node_type: str) -> Locator:
    return page.locator(f'.lf-node[data-node-type="{node_type}"]')


def add_after(page: Page, node: Locator, step: str, output: str | None = None) -> Locator:
    """Click the "+" under one of the node's outputs and pick a step."""
    name = f"Add a step after “{output}”" if output else "Add a step after this one"
    node.get_by_role("button", name=name).click()
    menu = page.get_by_role("dialog", name="Add a step")
    expect(menu).to_be_visible()
    menu.get_by_role("button", name=step, exact=True).click()
    expect(menu).to_have_count(0)
    added = page.locator(".lf-node").last.get_attribute("data-node-id")
    return page.locator(f'.lf-node[data-node-id="{added}"]')


def draft(flow: Flow) -> dict[str, Any]:
    flow.refresh_from_db()
    return flow.draft


def overlapping(page: Page) -> list[tuple[int, int]]:
    boxes = [n.bounding_box() for n in page.locator(".react-flow__node").all()]
    pairs = []
    for i, a in enumerate(boxes):
        for j, b in enumerate(boxes[i + 1 :], start=i + 1):
            assert a
            assert b
            if (
                a["x"] < b["x"] + b["width"]
                and b["x"] < a["x"] + a["width"]
                and a["y"] < b["y"] + b["height"]
                and b["y"] < a["y"] + a["height"]
            ):
                pairs.append((i, j))
    return pairs


def test_a_flow_built_with_plus_and_a_visual_condition(page: Page, live_server, login):
    ceos = segment_create(
        name="Newsletter",
        conditions={"all": [{"field": "company_name", "op": "contains", "value": "Acme"}]},
    )
    LeadFactory.create(job_title="CEO")
    LeadFactory.create(job_title="Founder and CEO")
    LeadFactory.create(job_title="Engineer")
    login(page, "marketer")
    page.goto(f"{live_server.url}/flows/")
    page.get_by_label("New flow").fill("CEO follow-up")
    page.get_by_role("button", name="Create and open").click()
    flow = Flow.objects.get(name="CEO follow-up")

    # The trigger comes from the palette; a second click never lands on the first.
    page.locator('.lf-palette [data-node-type="segment.entered"]').click()
    page.locator('.lf-palette [data-node-type="lead.created"]').click()
    expect(page.locator(".lf-node")).to_have_count(2)
    assert overlapping(page) == []
    # Its defaults are complete: it says what it does, not "not configured".
    expect(node_of(page, "lead.created").locator(".lf-node-summary")).to_have_text("Every new lead")
    node_of(page, "lead.created").click()
    page.keyboard.press("Delete")
    expect(page.locator(".lf-node")).to_have_count(1)

    trigger = node_of(page, "segment.entered")
    trigger.click()
    panel = page.locator(".lf-panel form[data-ready]")
    panel.get_by_label("Segment", exact=True).select_option(label="Newsletter")
    expect(trigger.locator(".lf-node-summary")).to_have_text("Entered segment: Newsletter")

    # "+" under the trigger: an If / else, connected, below it.
    condition = add_after(page, trigger, "If / else")
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    condition.click()
    builder = page.locator(".lf-panel form[data-ready] #condition-builder")
    expect(builder.get_by_label("Field")).to_have_value("job_title")
    expect(builder.get_by_label("Operator")).to_have_value("contains")
    builder.get_by_label("Value").fill("CEO")
    expect(page.locator("#condition-count")).to_have_text("2 leads would go through “Yes” today")
    expect(condition.locator(".lf-node-summary")).to_have_text("Job title contains “CEO”")
    # No JSON unless asked for.
    expect(panel.locator("textarea[name=conditions]")).to_be_hidden()

    # "+" under Yes and under No.
    score = add_after(page, condition, "Adjust lead score", "Yes")
    score.click()
    panel.get_by_label("Points", exact=True).fill("10")
    panel.get_by_label("Reason", exact=True).fill("CEO")
    expect(score.locator(".lf-node-summary")).to_have_text("+10 Engagement: CEO")
    notify = add_after(page, condition, "Notify sales", "No")
    expect(notify.locator(".lf-placeholder")).to_have_text("lead's name")
    expect(page.locator(".react-flow__edge")).to_have_count(3)
    assert overlapping(page) == []
    # Every connection ends in an arrow.
    for path in page.locator(".react-flow__edge-path").all():
        assert (path.get_attribute("marker-end") or "").startswith("url(")

    # "+" on the connection into the score: a tag step goes in between.
    page.locator(f'.lf-add-between[data-edge-id^="{condition_id(condition)}-yes-"]').click()
    page.get_by_role("dialog", name="Add a step").get_by_role("button", name="Add tag").click()
    expect(page.locator(".lf-node")).to_have_count(5)
    assert overlapping(page) == []

    wait_for(lambda: len(draft(flow)["edges"]) == 4, 15, "the draft saved")
    saved = draft(flow)
    by_type = {n["type"]: n for n in saved["nodes"]}
    ids = {key: node["id"] for key, node in by_type.items()}
    assert sorted((e["source"], e["sourceHandle"], e["target"]) for e in saved["edges"]) == sorted(
        [
            (ids["segment.entered"], "next", ids["condition"]),
            (ids["condition"], "yes", ids["tag.add"]),
            (ids["tag.add"], "next", ids["score.adjust"]),
            (ids["condition"], "no", ids["sales.notify"]),
        ]
    )
    assert by_type["segment.entered"]["config"]["segment"] == ceos.pk
    assert by_type["condition"]["config"] == {
        "conditions": {"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}
    }
    assert by_type["score.adjust"]["config"] == {
        "points": 10,
        "category": "engagement",
        "reason": "CEO",
    }


def condition_id(node: Locator) -> str:
    return node.get_attribute("data-node-id") or ""


def test_settings_typed_are_kept_when_the_step_is_left(page: Page, live_server, login):
    flow = flow_create(
        name="Kept",
        graph=graph(
            ("t", "app.event", {"event": "Signed up"}),
            ("s", "score.adjust", {"points": 5, "category": "fit", "reason": "Signed up"}),
        ),
    )
    login(page, "marketer")
    page.goto(f"{live_server.url}/flows/{flow.pk}/")
    score = page.locator('.lf-node[data-node-id="s"]')
    score.click()
    panel = page.locator(".lf-panel form[data-ready]")
    expect(panel).to_be_visible()
    expect(panel.get_by_role("button", name="Apply")).to_have_count(0)
    reason = panel.get_by_label("Reason", exact=True)
    reason.click()
    reason.press("End")
    # Typed, and at once another step is chosen: nothing typed is lost.
    reason.press_sequentially(" today")
    page.locator('.lf-node[data-node-id="t"]').click()
    expect(score.locator(".lf-node-summary")).to_have_text("+5 Fit: Signed up today")
    wait_for(
        lambda: (
            next(n for n in draft(flow)["nodes"] if n["id"] == "s")["config"]["reason"]
            == "Signed up today"
        ),
        15,
        "the draft saved",
    )
    # Back on the step, the panel shows what was typed.
    score.click()
    expect(panel.get_by_label("Reason", exact=True)).to_have_value("Signed up today")

    # Something still missing is said on the step, not in red, and kept too.
    panel.get_by_label("Points", exact=True).fill("")
    expect(score.locator(".lf-node-summary")).to_have_text(
        "To finish — Points: Choose how many points."
    )
    expect(score).not_to_have_class(re.compile(r"\blf-invalid\b"))


def test_the_canvas_on_a_phone_is_read_only(page: Page, live_server, login):
    flow = flow_create(
        name="On the go",
        graph=graph(
            ("t", "app.event", {"event": "Signed up"}),
            ("s", "score.adjust", {"points": 5, "category": "fit", "reason": "Signed up"}),
        ),
    )
    login(page, "marketer")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/flows/{flow.pk}/")
    expect(page.get_by_role("note")).to_have_text(
        "Editing a flow needs a larger screen. Here you can look at it and test it on a lead."
    )
    canvas = page.locator(".lf-canvas")
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    expect(page.locator(".lf-palette")).to_have_count(0)
    expect(page.locator(".lf-add-after, .lf-add-between")).to_have_count(0)
    expect(page.get_by_role("button", name="Publish")).to_have_count(0)
    page.locator('.lf-node[data-node-id="s"]').click()
    expect(page.locator(".lf-panel form fieldset[disabled]")).to_be_visible()
    expect(page.get_by_role("button", name="Test on a lead")).to_be_visible()

"""Flows as things to manage, in a real browser: the template gallery, the
builder's header keeping up with the canvas (unpublished changes, what they
are, the versions menu after publishing) and the settings dialog."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from flows.lifecycle import flow_create
from flows.models import Flow
from flows.templates_catalog import TEMPLATES
from tests.browser.test_builder import connect, drop, saved
from tests.flows.helpers import graph, published

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_flow_starts_from_the_template_gallery(page: Page, live_server: Any, login):
    login(page, "marketer")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/flows/")

    gallery = page.locator(".lf-template-gallery")
    expect(gallery.locator("svg.lf-graph-preview")).to_have_count(len(TEMPLATES))
    card = gallery.locator("article", has_text="Notify sales on hot lead")
    expect(card.get_by_role("img")).to_have_attribute(
        "aria-label", "Notify sales on hot lead: 4 steps"
    )
    card.get_by_role("button", name="Use this template").click()

    expect(page.locator(".lf-node")).to_have_count(4)
    flow = Flow.objects.get()
    assert (flow.name, flow.status, len(flow.draft["nodes"])) == (
        "Notify sales on hot lead",
        "draft",
        4,
    )
    expect(page.locator("#flow-header h1")).to_have_text("Notify sales on hot lead")


def test_the_header_keeps_up_with_the_canvas(page: Page, live_server: Any, login):
    flow_create(name="Onboarding")
    flow = published(
        "Welcome",
        graph(("t", "app.event", {"event": "Signed up"}), ("s", "tag.add", {"tag": "new"})),
    )
    login(page, "marketer")
    page.goto(f"{live_server.url}/flows/{flow.pk}/")
    header = page.locator("#flow-header")
    expect(header.locator("#flow-state")).to_have_text("Active v1")

    # An edit, saved by the canvas: the header says the live flow has changes.
    exit_node = drop(page, "exit", 520, 420)
    saved(page)
    expect(header.locator("#flow-state")).to_have_text("Active v1 · unpublished changes")
    header.get_by_role("button", name="See what changed").click()
    dialog = page.locator("#flow-dialog")
    expect(dialog.get_by_role("listitem")).to_have_text(["Exit: End of the flow"])
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    # Publishing refuses a step nothing leads to, in plain words.
    page.get_by_role("button", name="Publish the draft").click()
    expect(exit_node).to_contain_text("No trigger leads to this step.")
    connect(page, page.locator('.lf-node[data-node-type="tag.add"]'), exit_node)
    saved(page)
    page.get_by_role("button", name="Publish the draft").click()
    expect(page.get_by_text("Published version 2.")).to_be_visible()

    # No reload: the header and its versions menu show version 2 as current.
    expect(header.locator("#flow-state")).to_have_text("Active v2")
    header.get_by_role("button", name="Versions").click()
    current = header.locator("#flow-versions .dropdown-item", has_text="current")
    expect(current).to_contain_text("v2")
    expect(header.locator("#flow-versions .dropdown-item", has_text="v1")).to_have_count(1)

    # Renaming in the settings dialog: a taken name is refused, a free one shown.
    header.get_by_role("button", name="Flow", exact=True).click()
    header.get_by_role("button", name="Name and settings…").click()
    dialog.get_by_label("Name").fill("onboarding")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_contain_text("A flow named “onboarding” exists already.")
    dialog.get_by_label("Name").fill("Welcome CEOs")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(header.locator("h1")).to_have_text("Welcome CEOs")
    assert Flow.objects.get(pk=flow.pk).name == "Welcome CEOs"

"""The flow builder for a user who chose German: the canvas's palette, toolbar,
side panel and messages come from the embedded catalog, and the canvas works
as in English."""

from __future__ import annotations

import pytest
from django.utils import translation
from playwright.sync_api import Page, expect

from flows.lifecycle import flow_create
from leads.services.preferences import user_language_set

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_german_user_builds_on_a_german_canvas(page: Page, live_server, login):
    user = login(page, "marketer")
    user_language_set(user=user, language="de")
    flow = flow_create(name="Willkommen", created_by=user)

    page.goto(f"{live_server.url}/flows/{flow.pk}/")
    expect(page.locator(".react-flow__pane")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "de")

    # The palette: sections, search and the registry's labels.
    palette = page.get_by_role("complementary", name="Knotenpalette")
    expect(palette.locator(".lf-palette-title")).to_have_text(["Trigger", "Aktionen", "Logik"])
    expect(palette.locator('[data-node-type="tag.add"]')).to_have_text("Tag hinzufügen")
    palette.get_by_label("Knoten suchen").fill("Score")
    expect(palette.locator('[data-node-type="score.adjust"]')).to_have_text("Lead-Score anpassen")
    expect(palette.locator('[data-node-type="tag.add"]')).to_have_count(0)
    palette.get_by_label("Knoten suchen").fill("")

    # The toolbar.
    # The flow's state is told once, in the header above the canvas.
    expect(page.locator("#flow-state .lf-status")).to_have_text("Entwurf")
    toolbar = page.get_by_role("toolbar", name="Flow-Aktionen")
    expect(toolbar.locator(".lf-status")).to_have_count(0)
    for name in ("Rückgängig", "Wiederholen", "Anordnung aufräumen", "An einem Lead testen"):
        expect(toolbar.get_by_role("button", name=name)).to_be_visible()
    expect(toolbar.get_by_role("button", name="Entwurf prüfen")).to_have_text("Prüfen")
    expect(toolbar.get_by_role("button", name="Entwurf veröffentlichen")).to_have_text(
        "Veröffentlichen"
    )
    expect(page.get_by_role("button", name="Vergrößern")).to_be_visible()
    expect(page.locator(".lf-empty")).to_have_text(
        "Ziehen Sie einen Trigger aus der Palette hierher oder klicken Sie ihn an, "
        "um diesen Flow zu beginnen."
    )
    side = page.get_by_role("complementary", name="Knoteneinstellungen")
    expect(side).to_contain_text("Wählen Sie einen Knoten aus, um ihn einzurichten.")

    # The canvas works: add a node, configure it in the (German) side panel.
    palette.locator('[data-node-type="tag.add"]').click()
    node = page.locator('.lf-node[data-node-type="tag.add"]')
    expect(node).to_have_count(1)
    expect(node.locator(".lf-node-kind")).to_have_text("Aktion · Tag hinzufügen")
    expect(node.locator(".lf-node-summary")).to_have_text("Noch nicht eingerichtet")
    form = side.locator("form[data-ready]")
    expect(form.locator("h2")).to_have_text("Tag hinzufügen")
    # Settings apply as they are typed.
    form.get_by_label("Tag", exact=True).fill("vip")
    expect(node.locator(".lf-node-summary")).to_have_text("Tag vip hinzufügen")
    expect(toolbar.locator(".lf-save")).to_have_text("Alle Änderungen gespeichert", timeout=10_000)
    flow.refresh_from_db()
    assert [(n["type"], n["config"]) for n in flow.draft["nodes"]] == [("tag.add", {"tag": "vip"})]

    # Validation speaks German, from the canvas and from the server.
    toolbar.get_by_role("button", name="Entwurf prüfen").click()
    expect(page.get_by_role("alert").filter(has_text="Der Flow hat Probleme")).to_have_text(
        "Der Flow hat Probleme; sie sind auf der Arbeitsfläche markiert."
    )
    # The sentence in German, as far as the catalog has it yet.
    with translation.override("de"):
        no_trigger = translation.gettext(
            "Add a trigger: it decides which leads start the flow, and when."
        )
    expect(page.locator(".lf-graph-problems")).to_have_text(no_trigger)

    # Undo in German too: the setting goes, and the draft follows.
    toolbar.get_by_role("button", name="Rückgängig").click()
    expect(node.locator(".lf-node-summary")).to_have_text("Noch nicht eingerichtet")
    expect(toolbar.locator(".lf-save")).to_have_text("Alle Änderungen gespeichert", timeout=10_000)
    flow.refresh_from_db()
    assert [(n["type"], n["config"]) for n in flow.draft["nodes"]] == [("tag.add", {})]

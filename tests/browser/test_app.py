"""The web app in a real browser, as its users work with it: a sales rep
working a hot lead, an admin setting the team up."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from leads.models import ApiKey, Lead, Task
from tests.factories import EventFactory, LeadFactory
from tests.flows.helpers import drain, graph, published

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_sales_rep_reads_why_a_lead_is_hot_and_completes_the_task(page: Page, live_server, login):
    rep = login(page, "sales", "rep-anna")
    published(
        "Pricing interest",
        graph(
            ("t", "page.visited", {"url": {"op": "contains", "value": "/pricing"}}),
            (
                "s",
                "score.adjust",
                {"points": 15, "category": "engagement", "reason": "Read pricing"},
            ),
        ),
        reentry="always",
    )
    published(
        "Demo booked",
        graph(
            ("t", "app.event", {"event": "Booked a call"}),
            ("s", "score.adjust", {"points": 40, "category": "fit", "reason": "Booked a call"}),
            ("n", "sales.notify", {"title": "Call {lead} today", "priority": "high"}),
        ),
    )
    ada = LeadFactory.create(
        email="ada@umbrella.example", first_name="Ada", last_name="King", owner=rep
    )
    EventFactory.create(
        lead=ada, type="page", name="", properties={"url": "https://x.example/pricing"}
    )
    EventFactory.create(lead=ada, type="track", name="Booked a call")
    drain()
    ada.refresh_from_db()
    assert (ada.score, ada.grade) == (55, "hot")

    page.get_by_role("link", name="Tasks", exact=True).click()
    row = page.locator("tr", has_text="Call Ada King today")
    expect(row).to_be_visible()
    row.get_by_role("link", name="Ada King").click()

    expect(page.locator("#profile-name")).to_contain_text("Ada King")
    expect(page.locator("[data-grade]")).to_have_text("Hot")
    breakdown = page.locator("#score-breakdown")
    expect(breakdown.locator("tr", has_text="Booked a call")).to_contain_text("+40")
    expect(breakdown.locator("tr", has_text="Read pricing")).to_contain_text("+15")
    expect(breakdown.locator("tr", has_text="Booked a call")).to_contain_text("Demo booked")

    tasks = page.locator("#profile-tasks")
    tasks.get_by_role("button", name="Complete “Call Ada King today”").click()
    expect(tasks).to_contain_text("Call Ada King today: Completed.")
    expect(tasks.get_by_role("button", name=re.compile("Complete"))).to_have_count(0)
    assert Task.objects.get(lead=ada).status == "done"


def test_admin_creates_an_api_key_and_a_user(page: Page, live_server, login):
    login(page, "admin", "admin-ida")
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("Website")
    page.get_by_label("Scope").select_option("full")
    page.get_by_role("button", name="Create key").click()

    shown = page.locator("#new-api-key code")
    expect(shown).to_be_visible()
    key = shown.inner_text().strip()
    stored = ApiKey.objects.get(name="Website")
    assert key.startswith(f"lf_{stored.prefix}_")
    LeadFactory.create(email="seen@x.example")
    answer = requests.get(
        f"{live_server.url}/api/v1/leads/", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert answer.status_code == 200
    assert [r["email"] for r in answer.json()["results"]] == ["seen@x.example"]
    page.reload()
    expect(page.locator("#new-api-key")).to_have_count(0)
    expect(page.locator("tr", has_text="Website")).to_contain_text(stored.prefix)

    page.get_by_role("link", name="Users").click()
    page.get_by_label("Username").fill("ben")
    page.get_by_label("Email", exact=True).fill("ben@team.example")
    page.get_by_label("Role").select_option("sales")
    page.get_by_role("button", name="Invite").click()
    password = page.locator("#one-time-password code").inner_text().strip()
    expect(page.locator("tr", has_text="ben")).to_contain_text("Sales")

    # The new user signs in with the one-time password in a fresh session.
    browser = page.context.browser
    assert browser is not None
    other = browser.new_context()
    ben = other.new_page()
    ben.goto(f"{live_server.url}/login/")
    ben.get_by_label("Username").fill("ben")
    ben.get_by_label("Password").fill(password)
    ben.get_by_role("button", name="Log in").click()
    ben.wait_for_url(f"{live_server.url}/")
    expect(ben.locator(".who")).to_contain_text("ben · Sales")
    other.close()
    assert not Lead.objects.filter(email="ben@team.example").exists()


def test_long_work_runs_in_a_real_worker_with_progress_in_the_page(
    page: Page, live_server, login, celery_worker_process, monkeypatch
):
    from leads.views import list as views_list

    # The web side decides what is "long"; the worker process does the work.
    monkeypatch.setattr(views_list, "EXPORT_DIRECT_LIMIT", 5)
    monkeypatch.setattr(views_list, "BULK_INLINE_LIMIT", 5)
    for n in range(12):
        LeadFactory.create(email=f"w{n:02d}@x.example", grade="warm", score=20 + n)
    LeadFactory.create(email="cold@x.example", grade="cold")
    login(page, "marketer")
    page.goto(f"{live_server.url}/leads/?grade=warm")

    page.locator("#export-start").get_by_role("button", name="Export CSV").click()
    expect(page.get_by_role("heading", name="CSV export")).to_be_visible()
    download_link = page.locator("#job-download")
    expect(download_link).to_be_visible(timeout=30_000)
    expect(page.locator("#job-progress")).to_contain_text("12 leads written.")
    with page.expect_download() as info:
        download_link.click()
    rows = list(csv.reader(Path(info.value.path()).read_text().splitlines()))
    assert len(rows) == 13
    assert rows[0][:2] == ["Name", "Email"]
    assert sorted(row[1] for row in rows[1:]) == [f"w{n:02d}@x.example" for n in range(12)]

    page.goto(f"{live_server.url}/leads/?grade=warm")
    page.locator("#bulk-action").select_option("stage")
    page.locator("#bulk-stage").select_option("sql")
    page.locator("#bulk-all").check()
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#job-progress")).to_contain_text(
        "Change stage: 12 of 12 leads changed.", timeout=30_000
    )
    assert Lead.objects.filter(stage="sql").count() == 12
    assert Lead.objects.get(email="cold@x.example").stage != "sql"

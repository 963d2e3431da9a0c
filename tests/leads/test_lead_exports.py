"""A CSV export too big to stream at once: a worker writes it, the page shows
its progress and then offers the file."""

from __future__ import annotations

import pytest

from leads import views_list
from leads.models import LeadExport
from leads.services import exports
from tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setattr(views_list, "EXPORT_DIRECT_LIMIT", 2)
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 2)


def _leads(owner=None):
    for n, grade in enumerate(["hot", "hot", "hot", "cold"]):
        LeadFactory.create(email=f"l{n}@x.example", grade=grade, score=10 * n, owner=owner)


def test_a_big_export_runs_in_the_worker_and_offers_the_file(
    client, marketer, small_limit, django_capture_on_commit_callbacks, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path
    _leads()
    client.force_login(marketer)

    page = client.get("/leads/?grade=hot&sort=score").content.decode()
    assert 'id="export-start"' in page
    assert '<input type="hidden" name="grade" value="hot">' in page
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post("/leads/exports/", {"grade": "hot", "sort": "score"})
    export = LeadExport.objects.get()
    progress = client.get(started["Location"]).content.decode()
    download = client.get(f"/leads/exports/{export.pk}/download/")

    assert started["Location"] == f"/leads/exports/{export.pk}/"
    assert (export.status, export.rows_total, export.rows_done, export.query) == (
        "done",
        3,
        3,
        "grade=hot&sort=score",
    )
    assert "3 leads written." in progress
    assert 'id="export-download"' in progress
    assert "hx-trigger" not in progress
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    rows = b"".join(download.streaming_content).decode().splitlines()
    assert rows[0].startswith("email,first_name,")
    assert [row.split(",")[0] for row in rows[1:]] == [
        "l2@x.example",
        "l1@x.example",
        "l0@x.example",
    ]


def test_a_small_export_is_a_direct_download(client, marketer):
    _leads()
    client.force_login(marketer)
    page = client.get("/leads/?grade=hot").content.decode()
    assert 'href="/leads/export.csv?grade=hot"' in page
    assert 'id="export-start"' not in page


def test_progress_polls_until_done(client, marketer):
    client.force_login(marketer)
    waiting = LeadExport.objects.create(created_by=marketer, filters={}, sort="created")
    running = LeadExport.objects.create(
        created_by=marketer,
        filters={},
        sort="created",
        status="running",
        rows_total=10,
        rows_done=4,
    )

    waiting_html = client.get(
        f"/leads/exports/{waiting.pk}/", headers={"HX-Request": "true"}
    ).content.decode()
    running_html = client.get(f"/leads/exports/{running.pk}/").content.decode()

    assert "Waiting for a worker to start…" in waiting_html
    assert f'hx-get="/leads/exports/{waiting.pk}/" hx-trigger="every 1s"' in waiting_html
    assert "<html" not in waiting_html
    assert 'aria-valuenow="40"' in running_html
    assert "4 of 10 leads written" in running_html
    assert client.get(f"/leads/exports/{running.pk}/download/").status_code == 404


def test_an_export_holds_what_its_creator_sees_and_is_theirs_alone(
    client, sales, other_sales, small_limit, django_capture_on_commit_callbacks, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path
    _leads(owner=other_sales)
    LeadFactory.create(email="mine@x.example", owner=sales, grade="hot")
    client.force_login(sales)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/leads/exports/", {"grade": "hot"})
    export = LeadExport.objects.get()
    rows = b"".join(client.get(f"/leads/exports/{export.pk}/download/").streaming_content)

    assert rows.decode().splitlines()[1].split(",")[0] == "mine@x.example"
    assert len(rows.decode().splitlines()) == 2
    client.force_login(other_sales)
    assert client.get(f"/leads/exports/{export.pk}/").status_code == 404
    assert client.get(f"/leads/exports/{export.pk}/download/").status_code == 404
    client.force_login(UserFactory.create(username="adm-x", role="admin"))
    assert client.get(f"/leads/exports/{export.pk}/").status_code == 404


def test_a_failed_export_says_so(client, marketer, monkeypatch):
    def broken(leads):
        raise RuntimeError("disk full")
        yield ""

    monkeypatch.setattr(exports, "export_rows", broken)
    export = LeadExport.objects.create(created_by=marketer, filters={}, sort="created")
    exports.lead_export_run(export_id=export.pk)
    export.refresh_from_db()
    client.force_login(marketer)

    assert (export.status, export.error) == ("failed", "disk full")
    assert "The export failed." in client.get(f"/leads/exports/{export.pk}/").content.decode()

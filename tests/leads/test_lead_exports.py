"""A CSV export too big to stream at once: a worker writes it, the page shows
its progress and then offers the file."""

from __future__ import annotations

import pytest

from leads.models import Lead, LeadJob
from leads.services import jobs
from leads.services.background import JobClaim
from leads.views import list as views_list
from tests.factories import LeadFactory, LeadJobFactory, SegmentFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setattr(views_list, "EXPORT_DIRECT_LIMIT", 2)
    monkeypatch.setattr(jobs, "PROGRESS_EVERY", 2)


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
    export = LeadJob.objects.get()
    progress = client.get(started["Location"]).content.decode()
    download = client.get(f"/leads/jobs/{export.pk}/download/")

    assert started["Location"] == f"/leads/jobs/{export.pk}/"
    assert (export.status, export.rows_total, export.rows_done, export.query) == (
        "done",
        3,
        3,
        "grade=hot&sort=score",
    )
    assert "3 leads written." in progress
    assert 'id="job-download"' in progress
    assert "hx-trigger" not in progress
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    rows = b"".join(download.streaming_content).decode().splitlines()
    assert rows[0] == "Name,Email,Company,Stage,Score,Owner,Last activity"
    assert [row.split(",")[1] for row in rows[1:]] == [
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
    waiting = LeadJobFactory.create(created_by=marketer, sort="created")
    running = LeadJobFactory.create(
        created_by=marketer,
        sort="created",
        status="running",
        rows_total=10,
        rows_done=4,
    )

    waiting_html = client.get(
        f"/leads/jobs/{waiting.pk}/", headers={"HX-Request": "true"}
    ).content.decode()
    running_html = client.get(f"/leads/jobs/{running.pk}/").content.decode()

    assert "Waiting for a worker to start…" in waiting_html
    assert f'hx-get="/leads/jobs/{waiting.pk}/" hx-trigger="every 1s"' in waiting_html
    assert "<html" not in waiting_html
    assert 'aria-valuenow="40"' in running_html
    assert "4 of 10 leads" in running_html
    assert client.get(f"/leads/jobs/{running.pk}/download/").status_code == 404


def test_an_export_holds_what_its_creator_sees_and_is_theirs_alone(
    client, sales, other_sales, small_limit, django_capture_on_commit_callbacks, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path
    _leads(owner=other_sales)
    LeadFactory.create(email="mine@x.example", owner=sales, grade="hot")
    client.force_login(sales)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/leads/exports/", {"grade": "hot"})
    export = LeadJob.objects.get()
    rows = b"".join(client.get(f"/leads/jobs/{export.pk}/download/").streaming_content)

    assert rows.decode().splitlines()[1].split(",")[1] == "mine@x.example"
    assert len(rows.decode().splitlines()) == 2
    client.force_login(other_sales)
    assert client.get(f"/leads/jobs/{export.pk}/").status_code == 404
    assert client.get(f"/leads/jobs/{export.pk}/download/").status_code == 404
    client.force_login(UserFactory.create(username="adm-x", role="admin"))
    assert client.get(f"/leads/jobs/{export.pk}/").status_code == 404


def test_a_failed_export_says_so(client, marketer, monkeypatch):
    def broken(leads, columns):
        raise RuntimeError("disk full")
        yield ""

    monkeypatch.setattr(jobs, "export_rows", broken)
    export = LeadJobFactory.create(created_by=marketer, sort="created")
    jobs.lead_job_run(job_id=export.pk)
    export.refresh_from_db()
    client.force_login(marketer)

    assert (export.status, export.error) == ("failed", "disk full")
    assert "The export failed;" in client.get(f"/leads/jobs/{export.pk}/").content.decode()


@pytest.fixture
def small_bulk(monkeypatch):
    monkeypatch.setattr(views_list, "BULK_INLINE_LIMIT", 2)


def _bulk_all(client, action, **values):
    data = {
        "grade": "hot",
        "bulk-action": action,
        "bulk-all_matching": "on",
        "bulk-confirmed": "on",
        **{f"bulk-{k}": v for k, v in values.items()},
    }
    return client.post("/leads/bulk/", data, headers={"HX-Request": "true"})


def test_a_big_bulk_change_runs_in_the_worker_with_progress(
    client, marketer, small_bulk, django_capture_on_commit_callbacks, monkeypatch
):
    _leads()
    client.force_login(marketer)
    seen = []
    original = JobClaim.touch

    def watch(claim, **values):
        seen.append(values)
        original(claim, **values)

    monkeypatch.setattr(JobClaim, "touch", watch)

    with django_capture_on_commit_callbacks(execute=True):
        response = _bulk_all(client, "stage", stage="sql")
    job = LeadJob.objects.get()
    page = client.get(f"/leads/jobs/{job.pk}/").content.decode()

    assert response["HX-Redirect"] == f"/leads/jobs/{job.pk}/"
    assert (job.kind, job.action, job.params, job.status) == (
        "bulk",
        "stage",
        {"stage": "sql"},
        "done",
    )
    assert (job.rows_total, job.rows_done, job.rows_changed) == (3, 3, 3)
    assert sorted(
        str(e) for e in Lead.objects.filter(stage="sql").values_list("email", flat=True)
    ) == [
        "l0@x.example",
        "l1@x.example",
        "l2@x.example",
    ]
    # Started at zero, then progress after the (one) batch.
    assert [v["rows_done"] for v in seen] == [0, 3]
    assert "Change stage: 3 of 3 leads changed." in page
    assert 'href="/leads/?grade=hot"' in page


def test_a_small_bulk_change_stays_in_the_request(client, marketer, small_bulk):
    LeadFactory.create(email="one@x.example", grade="hot")
    client.force_login(marketer)
    response = _bulk_all(client, "tag_add", tag="vip")
    assert response.status_code == 200
    assert "Add tag: 1 of 1 lead changed." in response.content.decode()
    assert not LeadJob.objects.exists()


def test_a_bulk_job_whose_segment_is_gone_fails_clearly(client, marketer):
    from leads.selectors import LeadFilters

    segment = SegmentFactory.create(name="Gone", static=True)
    LeadFactory.create(email="one@x.example")
    job = jobs.lead_job_start(
        user=marketer,
        kind="bulk",
        filters=LeadFilters(),
        action="segment",
        params={"segment": segment.pk},
    )
    segment.delete()
    jobs.lead_job_run(job_id=job.pk)
    job.refresh_from_db()
    client.force_login(marketer)

    assert (job.status, job.error) == ("failed", "The static segment no longer exists.")
    assert (
        "The change stopped after 0 leads (0 changed)"
        in client.get(f"/leads/jobs/{job.pk}/").content.decode()
    )

"""Work handed to the workers while the broker is out of reach (an export from the
leads list, a segment's "Refresh now") is not lost: the request answers as usual,
the job waits in the database, and beat's sweeper sends it once the broker is
back, where a real worker runs it once."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.test import Client
from django.utils import timezone

from leads.models import LeadJob, Segment
from leads.services.background import jobs_sweep
from tests.factories import LeadFactory, SegmentFactory, UserFactory
from tests.integration.conftest import database_url, free_port, wait_for, web_process

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _signed_in(url: str, user) -> requests.Session:
    """A browser session of ``user`` (made here: signing in is not what is tested)."""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    page = session.get(f"{url}/leads/", timeout=10)
    assert page.status_code == 200, page.text[:500]
    return session


def test_jobs_handed_over_while_the_broker_is_down_run_once_the_sweeper_runs(
    tmp_path, full_key, settings, request
):
    marketer = UserFactory.create(username="marketer-j", role="marketer")
    for n in range(3):
        LeadFactory.create(email=f"ceo{n}@x.example", job_title="CEO", grade="hot")
    LeadFactory.create(email="intern@x.example", job_title="Intern", grade="cold")
    segment = SegmentFactory.create(
        conditions={"all": [{"field": "job_title", "op": "is", "value": "CEO"}]}
    )
    env = {
        "DATABASE_URL": database_url(),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        # The session made here must be readable there.
        "SECRET_KEY": settings.SECRET_KEY,
    }
    with web_process(env, tmp_path / "web.log") as url:
        session = _signed_in(url, marketer)
        export = session.post(
            f"{url}/leads/exports/",
            data={
                "grade": "hot",
                "sort": "score",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{url}/leads/"},
            allow_redirects=False,
            timeout=10,
        )
        refresh = requests.post(
            f"{url}/api/v1/segments/{segment.pk}/refresh/",
            headers={"Authorization": f"Bearer {full_key}"},
            timeout=10,
        )

    job = LeadJob.objects.get()
    assert (export.status_code, export.headers["Location"]) == (302, f"/leads/jobs/{job.pk}/")
    assert refresh.status_code == 202, refresh.text
    segment.refresh_from_db()
    assert (job.status, job.attempts, segment.member_count, segment.refreshing) == (
        "pending",
        0,
        0,
        True,
    )

    # A minute later the broker is back (the test's own), with a worker on it,
    # and beat's sweeper runs.
    minute_ago = timezone.now() - timedelta(minutes=1)
    LeadJob.objects.update(created_at=minute_ago)
    Segment.objects.update(refresh_requested_at=minute_ago)
    request.getfixturevalue("celery_worker_process")
    assert jobs_sweep() == 2

    def finished() -> bool:
        job.refresh_from_db()
        segment.refresh_from_db()
        return job.status == "done" and not segment.refreshing

    wait_for(finished, 60, "the export and the refresh to run")
    assert (job.attempts, job.resends, job.rows_total, job.rows_done) == (1, 1, 3, 3)
    with job.file.open("rb") as exported:
        lines = exported.read().decode().splitlines()
    assert sorted(line.split(",")[1] for line in lines[1:]) == [
        "ceo0@x.example",
        "ceo1@x.example",
        "ceo2@x.example",
    ]
    assert (segment.member_count, segment.refresh_resends) == (3, 1)
    assert jobs_sweep() == 0

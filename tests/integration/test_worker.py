"""Events posted to /v1/batch are processed by a real Celery worker process."""

import base64
import json

import pytest
import requests

from leads.models import Event, Lead
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_batch_is_processed_by_a_worker(live_server, ingest_key, celery_worker_process):
    batch = []
    for user in range(5):
        batch.append(
            {
                "type": "identify",
                "userId": f"user-{user}",
                "messageId": f"id-{user}",
                "traits": {"email": f"person{user}@example.com", "title": "VP Sales"},
            }
        )
        batch += [
            {
                "type": "track",
                "userId": f"user-{user}",
                "event": "Created project",
                "messageId": f"t-{user}-{n}",
                "properties": {"n": n},
            }
            for n in range(9)
        ]
    auth = "Basic " + base64.b64encode(f"{ingest_key}:".encode()).decode()
    response = requests.post(
        f"{live_server.url}/v1/batch",
        data=json.dumps({"batch": batch}),
        headers={"Authorization": auth, "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == 50

    wait_for(
        lambda: Event.objects.filter(source="segment", processed_at__isnull=False).count() == 50,
        timeout=90,
        what="the worker to process 50 events",
    )
    wait_for(
        lambda: not Event.objects.filter(processed_at__isnull=True).exists(),
        timeout=60,
        what="derived events to be processed",
    )
    leads = Lead.objects.order_by("external_id")
    assert [(lead.external_id, lead.email, lead.job_title) for lead in leads] == [
        (f"user-{u}", f"person{u}@example.com", "VP Sales") for u in range(5)
    ]
    for lead in leads:
        assert lead.events.filter(type="track").count() == 9
    assert Event.objects.filter(type="lead.created").count() == 5
    assert celery_worker_process.poll() is None


def test_segment_entry_and_exit_exactly_once_through_a_worker(
    live_server, full_key, celery_worker_process
):
    from leads.models import Segment, SegmentMembership
    from segments.services import segment_create

    segment_create(
        name="CEOs", conditions={"all": [{"field": "job_title", "op": "is", "value": "CEO"}]}
    )
    segment = Segment.objects.get()
    # A server-side key: an ingest key may not change a known lead's title.
    auth = "Basic " + base64.b64encode(f"{full_key}:".encode()).decode()

    def identify(message_id: str, title: str) -> None:
        body = {"userId": "u-1", "messageId": message_id, "traits": {"title": title}}
        for _ in range(2):  # a client retry: the same message twice
            response = requests.post(
                f"{live_server.url}/v1/identify",
                data=json.dumps(body),
                headers={"Authorization": auth, "Content-Type": "application/json"},
                timeout=30,
            )
            assert response.status_code == 200

    def settled() -> bool:
        return not Event.objects.filter(processed_at__isnull=True).exists()

    identify("m-1", "CEO")
    wait_for(lambda: Event.objects.filter(type="segment.entered").exists(), 90, "the entry")
    wait_for(settled, 60, "the pipeline to settle")
    identify("m-2", "CTO")
    wait_for(lambda: Event.objects.filter(type="segment.left").exists(), 90, "the exit")
    wait_for(settled, 60, "the pipeline to settle")

    lead = Lead.objects.get(external_id="u-1")
    assert Event.objects.filter(type="segment.entered", lead=lead).count() == 1
    assert Event.objects.filter(type="segment.left", lead=lead).count() == 1
    stay = SegmentMembership.objects.get(segment=segment, lead=lead)
    assert stay.left_at is not None
    segment.refresh_from_db()
    assert segment.member_count == 0


def _worker_sessions() -> dict[int, object]:
    """The database sessions other than this test's: the worker's."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return dict(cursor.fetchall())


def test_a_worker_keeps_its_database_session_from_one_message_to_the_next(
    celery_worker_process,
):
    """Celery's Django fixup closed the connection around every task: each
    message connected again and prepared its statements again."""
    from django.db import connection
    from django.utils import timezone

    from leads.services.events import events_record

    if connection.vendor != "postgresql":
        pytest.skip("reads PostgreSQL's sessions; the embedded default closes them per task")
    lead = Lead.objects.create(external_id="kept", email="kept@example.com")

    def batch(name: str) -> None:
        now = timezone.now()
        events_record(
            events=[
                Event(
                    lead=lead,
                    type="track",
                    name=name,
                    source="api",
                    idempotency_key=f"{name}-{n}",
                    occurred_at=now,
                    received_at=now,
                )
                for n in range(3)
            ]
        )
        wait_for(
            lambda: not Event.objects.filter(processed_at__isnull=True).exists(),
            timeout=90,
            what=f"the worker to process {name}",
        )

    batch("first")
    after_first = _worker_sessions()
    for name in ("second", "third", "fourth"):
        batch(name)
    after_last = _worker_sessions()

    kept = after_first.keys() & after_last.keys()
    assert kept, (after_first, after_last)
    assert all(after_first[pid] == after_last[pid] for pid in kept)
    assert Event.objects.filter(lead=lead, type="track", processed_at__isnull=False).count() == 12

"""/metrics: the backlog a self-hoster should see before their users do."""

import datetime as dt

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from leads.models import Event
from tests.factories import (
    DeliveryFactory,
    EventFactory,
    HeartbeatFactory,
    LeadFactory,
    LeadJobFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def _samples(response) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_metrics_report_the_backlog(client, settings, admin_user):
    settings.METRICS_TOKEN = "scrape-me"
    now = timezone.now()
    lead = LeadFactory.create()
    EventFactory.create(lead=lead, received_at=now - dt.timedelta(seconds=90))
    EventFactory.create(lead=lead, received_at=now - dt.timedelta(seconds=10))
    EventFactory.create(lead=lead, attempts=5)
    EventFactory.create(lead=lead, processed_at=now)
    DeliveryFactory.create(status="failed")
    DeliveryFactory.create()
    LeadJobFactory.create(created_by=admin_user)
    HeartbeatFactory.create(name="scheduler", seen_at=now - dt.timedelta(seconds=30))
    HeartbeatFactory.create(name="worker:celery@a", seen_at=now - dt.timedelta(seconds=12))
    HeartbeatFactory.create(name="worker:celery@b", seen_at=now - dt.timedelta(minutes=12))

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = _samples(response)
    assert samples[("leadflow_events_waiting", ())] == 2
    assert samples[("leadflow_events_failed", ())] == 1
    assert 89 <= samples[("leadflow_event_lag_seconds", ())] < 120
    assert samples[("leadflow_deliveries", (("status", "pending"),))] == 1
    assert samples[("leadflow_deliveries", (("status", "failed"),))] == 1
    assert samples[("leadflow_background_jobs_running", (("kind", "export"),))] == 1
    assert samples[("leadflow_background_jobs_running", (("kind", "import"),))] == 0
    assert samples[("leadflow_wakeups_due", ())] == 0
    assert 29 <= samples[("leadflow_scheduler_seen_seconds_ago", ())] < 60
    assert 12 <= samples[("leadflow_worker_seen_seconds_ago", ())] < 40
    assert samples[("leadflow_broker_up", ())] == 1
    assert {labels for name, labels in samples if name == "leadflow_queue_messages"} == {
        (("queue", q),) for q in ("ingest", "flows", "deliveries", "periodic")
    }
    assert Event.objects.count() == 4


def test_metrics_are_guarded(client, settings):
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    client.force_login(UserFactory.create(username="m-x", role="marketer"))
    assert client.get("/metrics").status_code == 401
    client.force_login(UserFactory.create(username="a-x", role="admin"))
    assert client.get("/metrics").status_code == 200


def test_no_token_configured_means_admins_only(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401

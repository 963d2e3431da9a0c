"""Outages answered honestly: a server that cannot reach its database answers 503
with Retry-After (JSON under /api/ and /v1/, a short page elsewhere); a server
that cannot reach its broker still stores what it is sent and answers 200, and
its /healthz and /metrics answer at once."""

from __future__ import annotations

import base64
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from leads.models import Event
from tests.integration.conftest import database_url, free_port, web_process

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MESSAGE = "Leadflow cannot reach its database or message broker. Please try again in a minute."


# Well formed, so that checking it needs the database.
SOME_KEY = "lf_0a1b2c3d_secret"


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_database_unreachable_is_503_with_retry_after(tmp_path):
    closed = free_port()
    env = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed}/leadflow",
        "LEADFLOW_DATA_DIR": str(tmp_path / "data"),
    }
    with web_process(env, tmp_path / "web.log") as url:
        track = requests.post(
            f"{url}/v1/track",
            json={"userId": "u-1", "event": "Signed up"},
            headers=_basic(SOME_KEY),
            timeout=10,
        )
        api = requests.get(
            f"{url}/api/v1/leads/", headers={"Authorization": f"Bearer {SOME_KEY}"}, timeout=10
        )
        page = requests.get(
            f"{url}/leads/", cookies={"sessionid": "a" * 32}, allow_redirects=False, timeout=10
        )
        health = requests.get(f"{url}/healthz", timeout=10)

    for response in (track, api):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "30"
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {
            "error": {"code": "unavailable", "message": MESSAGE, "fields": {}}
        }
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "30"
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>Temporarily unavailable</h1>" in page.text
    assert MESSAGE in page.text
    assert len(page.text) < 600
    assert health.status_code == 503
    assert (health.json()["status"], health.json()["database"]) == ("error", "error")


def test_broker_unreachable_stores_events_and_answers_200(tmp_path, ingest_key):
    closed = free_port()
    env = {
        "DATABASE_URL": database_url(),
        "REDIS_URL": f"redis://127.0.0.1:{closed}/0",
        "LEADFLOW_DATA_DIR": str(tmp_path / "data"),
        "METRICS_TOKEN": "scrape",
    }
    with web_process(env, tmp_path / "web.log") as url:
        track = requests.post(
            f"{url}/v1/track",
            json={"userId": "u-1", "event": "Signed up", "messageId": "m-1"},
            headers=_basic(ingest_key),
            timeout=10,
        )
        batch = requests.post(
            f"{url}/v1/batch",
            json={
                "batch": [
                    {"type": "track", "userId": "u-2", "event": "Opened", "messageId": "m-2"},
                    {"type": "identify", "userId": "u-2", "traits": {"email": "b@example.com"}},
                ]
            },
            headers=_basic(ingest_key),
            timeout=10,
        )
        began = time.monotonic()
        health = requests.get(f"{url}/healthz", timeout=10)
        health_seconds = time.monotonic() - began
        began = time.monotonic()
        metrics = requests.get(
            f"{url}/metrics", headers={"Authorization": "Bearer scrape"}, timeout=10
        )
        metrics_seconds = time.monotonic() - began

    assert (track.status_code, track.json()) == (200, {"success": True})
    assert batch.status_code == 200, batch.text
    assert batch.json()["accepted"] == 2
    stored = sorted(Event.objects.values_list("type", "user_id", "processed_at"))
    assert stored == [("identify", "u-2", None), ("track", "u-1", None), ("track", "u-2", None)]

    assert health.status_code == 503
    assert (health.json()["status"], health.json()["broker"], health.json()["database"]) == (
        "error",
        "error",
        "ok",
    )
    assert health.json()["events_waiting"] == 3
    assert health_seconds < 2.5
    assert metrics.status_code == 200
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics.text)
        for sample in family.samples
        if not sample.labels
    }
    assert samples["leadflow_broker_up"] == 0
    assert samples["leadflow_events_waiting"] == 3
    assert metrics_seconds < 2.5

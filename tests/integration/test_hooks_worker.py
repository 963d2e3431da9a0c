"""REST hooks end to end: a real Celery worker processes the events, matches
them to subscriptions and posts each one, signed, to a receiver in this test;
an event processed twice is still delivered once."""

import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest
from rest_framework.test import APIClient

from flows.models import Delivery
from leads.models import Event, Lead
from leads.tasks import events_process_task
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(monkeypatch, settings):
    # The receiver is local: allowed here and in the worker started after this.
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    monkeypatch.setenv("OUTBOUND_ALLOWED_HOSTS", "127.0.0.1")
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/leadflow"
    server.shutdown()


def test_a_worker_delivers_lead_mql_signed_and_once(full_key, receiver, celery_worker_process):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {full_key}")
    subscribed = api.post(
        "/api/v1/hooks/", {"target_url": receiver, "event": "lead.mql"}, format="json"
    )
    assert subscribed.status_code == 201
    hook_id, secret = subscribed.json()["id"], subscribed.json()["secret"]
    lead = api.post(
        "/api/v1/leads/",
        {"email": "ada@acme.example", "first_name": "Ada", "last_name": "Lovelace"},
        format="json",
    ).json()
    adjusted = api.post(
        f"/api/v1/leads/{lead['id']}/score/adjust/",
        {"delta": 60, "category": "fit", "reason": "Booked a demo"},
        format="json",
    )
    assert adjusted.status_code == 201

    wait_for(lambda: len(_Receiver.received) == 1, 60, "the lead.mql delivery")
    crossing = Event.objects.get(type="score.changed", lead_id=lead["id"])
    ((headers, body),) = _Receiver.received
    assert json.loads(body) == {
        "event": "lead.mql",
        "event_id": crossing.pk,
        "occurred_at": crossing.occurred_at.isoformat(),
        "name": "fit",
        "data": {
            "delta": 60,
            "from": 0,
            "to": 60,
            "category": "fit",
            "category_from": 0,
            "category_to": 60,
            "reason": "Booked a demo",
        },
        "lead": {
            "id": lead["id"],
            "email": "ada@acme.example",
            "external_id": None,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "job_title": "",
            "company_name": "",
            "company_size": None,
            "stage": "mql",
            "score": 60,
            "grade": "hot",
            "custom_fields": {},
        },
    }
    timestamp, signature = (
        part.split("=", 1)[1] for part in headers["X-Leadflow-Signature"].split(",")
    )
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert signature == expected
    assert headers["X-Leadflow-Event"] == "lead.mql"
    key = f"hook:{hook_id}:lead.mql:{crossing.pk}"
    assert headers["X-Leadflow-Delivery"] == key
    wait_for(
        lambda: Delivery.objects.filter(key=key, status="sent").exists(), 30, "the delivery sent"
    )

    # The same event processed again (a redelivered message after a crash):
    # its delivery exists already, nothing more is sent.
    Event.objects.filter(pk=crossing.pk).update(processed_at=None)
    events_process_task.delay([crossing.pk])
    wait_for(lambda: Event.objects.get(pk=crossing.pk).processed_at is not None, 60, "reprocessing")
    # A second lead crossing afterwards: once its delivery is in, a duplicate of
    # the first (sent after the reprocessing) would have arrived too.
    other = api.post("/api/v1/leads/", {"email": "bob@acme.example"}, format="json").json()
    api.post(
        f"/api/v1/leads/{other['id']}/score/adjust/",
        {"delta": 50, "category": "fit", "reason": "Pricing page"},
        format="json",
    )
    wait_for(lambda: len(_Receiver.received) >= 2, 60, "the second lead's delivery")
    time.sleep(2)
    assert [json.loads(body)["lead"]["email"] for _, body in _Receiver.received] == [
        "ada@acme.example",
        "bob@acme.example",
    ]
    assert Delivery.objects.filter(hook_id=hook_id).count() == 2
    assert Lead.objects.get(pk=lead["id"]).score == 60

"""Outbound event subscriptions (REST hooks): the API, matching processed events
to subscriptions, one delivery per (subscription, event), the signature."""

import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest
from django.test import TestCase

from flows.hooks import hook_events_of
from flows.models import Delivery, HookSubscription
from flows.services import delivery_send, hook_signature
from leads.models import Event
from leads.services.events import events_process
from scoring.models import ScoreCategory
from scoring.services import score_adjust
from tests.factories import (
    DeliveryFactory,
    EventFactory,
    HookSubscriptionFactory,
    LeadFactory,
    UserFactory,
)
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db


# --- the API --------------------------------------------------------------------


def test_rest_hooks_subscribe_shows_the_secret_once_and_unsubscribe_deletes(admin_api):
    response = admin_api.post(
        "/api/v1/hooks/",
        {"target_url": "https://hooks.zapier.example/abc", "event": "lead.mql"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    hook = HookSubscription.objects.get()
    assert body == {
        "id": hook.pk,
        "target_url": "https://hooks.zapier.example/abc",
        "events": ["lead.mql"],
        "description": "",
        "created_by": hook.created_by_id,
        "created_at": body["created_at"],
        "secret": hook.secret,
    }
    assert hook.secret.startswith("whsec_")
    assert len(hook.secret) == 54
    listed = admin_api.get("/api/v1/hooks/").json()["results"]
    assert [sorted(row) for row in listed] == [
        ["created_at", "created_by", "description", "events", "id", "target_url"]
    ]
    assert admin_api.delete(f"/api/v1/hooks/{hook.pk}/").status_code == 204
    assert not HookSubscription.objects.exists()


def test_hooks_crud_for_admins_and_full_keys_only(full_api, marketer_api, ingest_api):
    created = full_api.post(
        "/api/v1/hooks/",
        {
            "target_url": "https://crm.example/in",
            "events": ["score.changed", "task.created"],
            "description": "CRM sync",
        },
        format="json",
    )
    assert created.status_code == 201
    pk = created.json()["id"]
    patched = full_api.patch(f"/api/v1/hooks/{pk}/", {"events": ["segment.entered"]}, format="json")
    assert patched.json()["events"] == ["segment.entered"]
    rotated = full_api.post(f"/api/v1/hooks/{pk}/rotate-secret/").json()["secret"]
    assert rotated != created.json()["secret"]
    assert HookSubscription.objects.get().secret == rotated
    assert marketer_api.get("/api/v1/hooks/").status_code == 403
    assert ingest_api.post("/api/v1/hooks/", {}, format="json").status_code == 403


def test_bad_subscriptions_get_the_one_error_shape(admin_api):
    response = admin_api.post(
        "/api/v1/hooks/",
        {"target_url": "ftp://files.example/x", "events": ["lead.mql", "lead.exploded"]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "target_url": ["Use an http:// or https:// URL."],
        "events[1]": ['"lead.exploded" is not a valid choice.'],
    }
    missing = admin_api.post("/api/v1/hooks/", {"target_url": "https://x.example/"}, format="json")
    assert missing.json()["error"]["fields"] == {"events": ["Subscribe to at least one event."]}


def test_local_and_private_targets_are_refused_when_subscribing(admin_api):
    for target in ("http://127.0.0.1:6379/", "http://169.254.169.254/latest", "http://[::1]/x"):
        response = admin_api.post(
            "/api/v1/hooks/", {"target_url": target, "event": "lead.mql"}, format="json"
        )
        assert response.status_code == 400
        (message,) = response.json()["error"]["fields"]["target_url"]
        assert "is a local or private address" in message
    assert not HookSubscription.objects.exists()


def test_event_types_are_listed(admin_api):
    types = admin_api.get("/api/v1/hooks/event-types/").json()
    assert [t["key"] for t in types][:3] == ["field.changed", "grade.changed", "lead.created"]
    assert {"key": "lead.mql", "description": "A lead's score reached the MQL threshold"} in types


# --- matching -------------------------------------------------------------------


def _event(type_, name="", **properties):
    return Event(type=type_, name=name, properties=properties)


def test_which_hook_events_an_event_stands_for():
    assert hook_events_of(_event("score.changed", **{"from": 40, "to": 55}), mql_threshold=50) == [
        "score.changed",
        "lead.mql",
    ]
    assert hook_events_of(_event("score.changed", **{"from": 50, "to": 60}), mql_threshold=50) == [
        "score.changed"
    ]
    assert hook_events_of(
        _event("field.changed", "stage", **{"from": "lead", "to": "sql"}), mql_threshold=50
    ) == ["field.changed", "lead.stage_changed"]
    assert hook_events_of(_event("track", "Paid"), mql_threshold=50) == []


def _score(lead, points, key):
    with TestCase.captureOnCommitCallbacks(execute=False):
        score_adjust(
            lead=lead,
            delta=points,
            category=ScoreCategory.objects.get(key="engagement"),
            reason="Demo request",
            source="manual",
            source_key=key,
        )


def test_a_crossing_of_the_mql_threshold_is_one_delivery_per_subscription():
    mql = HookSubscriptionFactory.create(events=["lead.mql"])
    both = HookSubscriptionFactory.create(events=["lead.mql", "score.changed"])
    HookSubscriptionFactory.create(events=["segment.left"])
    lead = LeadFactory.create(email="ada@x.example", stage="lead")
    _score(lead, 30, "k1")
    _score(lead, 25, "k2")
    with TestCase.captureOnCommitCallbacks(execute=False):
        events_process(event_ids=list(Event.objects.order_by("id").values_list("id", flat=True)))
    changes = list(Event.objects.filter(type="score.changed").order_by("id"))
    crossing = changes[1]
    assert sorted(Delivery.objects.values_list("key", flat=True)) == sorted(
        [
            f"hook:{mql.pk}:lead.mql:{crossing.pk}",
            f"hook:{both.pk}:lead.mql:{crossing.pk}",
            f"hook:{both.pk}:score.changed:{changes[0].pk}",
            f"hook:{both.pk}:score.changed:{crossing.pk}",
        ]
    )
    delivery = Delivery.objects.get(key=f"hook:{mql.pk}:lead.mql:{crossing.pk}")
    assert (delivery.kind, delivery.hook_id, delivery.step_id, delivery.target) == (
        "webhook",
        mql.pk,
        None,
        "https://hooks.example.com/leadflow",
    )
    assert delivery.payload["body"] == {
        "event": "lead.mql",
        "event_id": crossing.pk,
        "occurred_at": crossing.occurred_at.isoformat(),
        "name": "engagement",
        "data": crossing.properties,
        "lead": {
            "id": lead.pk,
            "email": "ada@x.example",
            "external_id": None,
            "first_name": lead.first_name,
            "last_name": lead.last_name,
            "job_title": "Head of Marketing",
            "company_name": "Acme GmbH",
            "company_size": None,
            "stage": "mql",
            "score": 55,
            "grade": "hot",
            "custom_fields": {},
        },
    }
    # Processing the same event again makes no second delivery.
    Event.objects.filter(pk=crossing.pk).update(processed_at=None)
    with TestCase.captureOnCommitCallbacks(execute=False):
        events_process(event_ids=[crossing.pk])
    assert Delivery.objects.count() == 4


def test_a_flow_task_is_a_task_created_hook():
    hook = HookSubscriptionFactory.create(events=["task.created"])
    rep = UserFactory.create(username="rep-h", role="sales")
    published(
        "Hot",
        graph(
            ("t", "app.event", {"event": "Asked for demo"}),
            ("n", "sales.notify", {"title": "Call {lead}", "email": False, "priority": "high"}),
        ),
    )
    lead = LeadFactory.create(email="t@x.example", first_name="Tia", last_name="Lo", owner=rep)
    EventFactory.create(lead=lead, type="track", name="Asked for demo")
    with TestCase.captureOnCommitCallbacks(execute=False):
        drain()
    delivery = Delivery.objects.get(hook=hook)
    task = lead.tasks.get()
    assert delivery.payload["body"]["event"] == "task.created"
    assert delivery.payload["body"]["data"] == {
        "task_id": task.pk,
        "title": "Call Tia Lo",
        "assignee": rep.pk,
        "due_at": None,
        "priority": "high",
    }


def test_without_subscriptions_nothing_is_delivered():
    lead = LeadFactory.create()
    _score(lead, 80, "k1")
    drain()
    assert not Delivery.objects.exists()


# --- sending --------------------------------------------------------------------


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((dict(self.headers), body))
        self.send_response(_Receiver.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    _Receiver.received = []
    _Receiver.status = 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/in"
    server.shutdown()


def test_a_delivery_is_signed_with_the_time_of_the_attempt(receiver):
    hook = HookSubscriptionFactory.create(target_url=receiver, events=["tag.added"])
    lead = LeadFactory.create()
    with TestCase.captureOnCommitCallbacks(execute=False):
        lead_tag = EventFactory.create(lead=lead, type="tag.added", name="vip")
        events_process(event_ids=[lead_tag.pk])
    delivery = Delivery.objects.get()
    before = int(time.time())
    delivery_send(delivery_id=delivery.pk)
    ((headers, body),) = _Receiver.received
    timestamp = int(headers["X-Leadflow-Signature"].split(",")[0].removeprefix("t="))
    assert before <= timestamp <= int(time.time())
    expected = hmac.new(
        hook.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Leadflow-Signature"] == f"t={timestamp},v1={expected}"
    assert headers["X-Leadflow-Signature"] == hook_signature(hook.secret, body, timestamp)
    assert headers["X-Leadflow-Event"] == "tag.added"
    assert headers["X-Leadflow-Delivery"] == f"hook:{hook.pk}:tag.added:{lead_tag.pk}"
    assert json.loads(body) == delivery.payload["body"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_code, delivery.attempts) == ("sent", 200, 1)


def test_a_failing_receiver_is_retried_and_logged(receiver, admin_api):
    _Receiver.status = 500
    hook = HookSubscriptionFactory.create(target_url=receiver, events=["tag.added"])
    lead_tag = EventFactory.create(type="tag.added", name="vip")
    with TestCase.captureOnCommitCallbacks(execute=False):
        events_process(event_ids=[lead_tag.pk])
    delivery = Delivery.objects.get()
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at is not None
    log = admin_api.get(f"/api/v1/hooks/{hook.pk}/deliveries/").json()["results"]
    assert [
        (d["event"], d["status"], d["attempts"], d["response_code"], d["last_error"]) for d in log
    ] == [("tag.added", "pending", 1, 500, "HTTP 500")]


def test_a_receiver_answering_410_gone_unsubscribes(receiver):
    # Given a subscription whose receiver was removed (Zapier answers 410 Gone)
    _Receiver.status = 410
    hook = HookSubscriptionFactory.create(target_url=receiver, events=["tag.added"])
    kept = HookSubscriptionFactory.create(events=["tag.added"])
    lead_tag = EventFactory.create(type="tag.added", name="vip")
    with TestCase.captureOnCommitCallbacks(execute=False):
        events_process(event_ids=[lead_tag.pk])
    gone = Delivery.objects.get(hook=hook)

    # When its delivery is sent
    delivery_send(delivery_id=gone.pk)

    # Then the subscription is gone with its log, and the other one stays
    assert len(_Receiver.received) == 1
    assert list(HookSubscription.objects.values_list("pk", flat=True)) == [kept.pk]
    assert list(Delivery.objects.values_list("hook_id", flat=True)) == [kept.pk]


def test_erasing_a_lead_drops_its_hook_deliveries():
    from leads.services.privacy import lead_erase

    HookSubscriptionFactory.create(events=["tag.added"])
    ada, bob = LeadFactory.create(), LeadFactory.create()
    for lead in (ada, bob):
        EventFactory.create(lead=lead, type="tag.added", name="vip")
    with TestCase.captureOnCommitCallbacks(execute=False):
        drain()
    assert Delivery.objects.count() == 2
    erasure = lead_erase(lead=ada, user=None, via="command")
    assert erasure.rows["deliveries"] == 1
    assert [d.payload["body"]["lead"]["id"] for d in Delivery.objects.all()] == [bob.pk]


def test_hook_lists_have_no_n_plus_one(
    admin_api, client, admin_user, django_assert_max_num_queries
):
    hooks = HookSubscriptionFactory.create_batch(5, created_by=admin_user)
    for hook in hooks:
        for _ in range(4):
            DeliveryFactory.create(hook=hook, payload={"body": {"event": "lead.mql"}})
    with django_assert_max_num_queries(3):
        assert len(admin_api.get("/api/v1/hooks/").json()["results"]) == 5
    with django_assert_max_num_queries(4):
        log = admin_api.get(f"/api/v1/hooks/{hooks[0].pk}/deliveries/").json()["results"]
    assert len(log) == 4
    client.force_login(admin_user)
    with django_assert_max_num_queries(8):
        page = client.get("/settings/webhooks/")
    assert page.content.decode().count('id="delivery-') == 20

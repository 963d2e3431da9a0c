"""Secrets in node configs (a webhook's signing secret, a Slack incoming-webhook
URL) are write-only: every graph or config that leaves the server shows them as
set or not set, saving keeps what came back masked, and only the engine (through
the published version) reads them."""

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from flows.dryrun import flow_dry_run
from flows.lifecycle import flow_create, flow_publish
from flows.models import Delivery, Flow, FlowVersion
from flows.nodes import REGISTRY
from flows.nodes.base import SECRET_SET
from tests.factories import EventFactory, LeadFactory, UserFactory
from tests.flows.helpers import drain, graph

pytestmark = pytest.mark.django_db

HMAC = "hmac-k3y-never-shown"
SLACK = "https://hooks.slack.com/services/T0/B0/sl4ck-t0ken"
EVENT = "leadflow:node-configured"


def _graph(webhook: dict[str, Any] | None = None, notify: dict[str, Any] | None = None):
    return graph(
        ("t", "app.event", {"event": "Asked for a demo"}),
        ("w", "webhook.send", webhook or {"url": "https://crm.example/hook", "secret": HMAC}),
        ("n", "sales.notify", notify or {"title": "Call {lead}", "slack_webhook": SLACK}),
    )


def _config(g: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n["config"] for n in g["nodes"] if n["id"] == node_id)


@pytest.fixture
def flow() -> Flow:
    return flow_create(name="Demo asked", graph=_graph())


def test_the_registry_declares_the_secrets():
    secrets = {key: t.secrets for key, t in REGISTRY.items() if t.secrets}
    assert secrets == {"webhook.send": ("secret",), "sales.notify": ("slack_webhook",)}


def test_the_api_shows_secrets_only_as_set(marketer_api, flow):
    response = marketer_api.get(f"/api/v1/flows/{flow.pk}/draft/")

    assert response.status_code == 200
    assert _config(response.json()["graph"], "w") == {
        "url": "https://crm.example/hook",
        "secret": SECRET_SET,
    }
    assert _config(response.json()["graph"], "n") == {
        "title": "Call {lead}",
        "slack_webhook": SECRET_SET,
    }
    published = marketer_api.post(f"/api/v1/flows/{flow.pk}/publish/")
    versions = marketer_api.get(f"/api/v1/flows/{flow.pk}/versions/")
    restored = marketer_api.post(f"/api/v1/flows/{flow.pk}/versions/1/restore/")
    for answer in (published, versions, restored):
        assert answer.status_code in (200, 201)
        assert HMAC not in answer.content.decode()
        assert "sl4ck-t0ken" not in answer.content.decode()
    assert _config(versions.json()["results"][0]["graph"], "w")["secret"] == SECRET_SET
    # The immutable version keeps the real values: the engine signs with them.
    version = FlowVersion.objects.get(flow=flow, number=1)
    assert _config(version.graph, "w")["secret"] == HMAC
    assert _config(version.graph, "n")["slack_webhook"] == SLACK


def test_saving_the_masked_graph_back_keeps_the_secrets(marketer_api, flow):
    loaded = marketer_api.get(f"/api/v1/flows/{flow.pk}/draft/").json()
    loaded["graph"]["nodes"][0]["position"] = {"x": 300, "y": 0}

    response = marketer_api.put(f"/api/v1/flows/{flow.pk}/draft/", loaded, format="json")

    assert response.status_code == 200
    assert _config(response.json()["graph"], "w")["secret"] == SECRET_SET
    flow.refresh_from_db()
    assert _config(flow.draft, "w") == {"url": "https://crm.example/hook", "secret": HMAC}
    assert _config(flow.draft, "n")["slack_webhook"] == SLACK
    assert flow.draft["nodes"][0]["position"] == {"x": 300, "y": 0}


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ({"url": "https://crm.example/hook"}, {"url": "https://crm.example/hook", "secret": HMAC}),
        (
            {"url": "https://crm.example/v2", "secret": "new-one"},
            {"url": "https://crm.example/v2", "secret": "new-one"},
        ),
        ({"url": "https://crm.example/hook", "secret": ""}, {"url": "https://crm.example/hook"}),
        ({"url": "https://crm.example/hook", "secret": None}, {"url": "https://crm.example/hook"}),
    ],
    ids=["left-out-keeps", "new-value-replaces", "empty-clears", "null-clears"],
)
def test_saving_a_draft_keeps_replaces_or_clears_a_secret(marketer_api, flow, sent, stored):
    g = _graph(webhook=sent)

    response = marketer_api.put(
        f"/api/v1/flows/{flow.pk}/draft/",
        {"graph": g, "revision": flow.draft_revision},
        format="json",
    )

    assert response.status_code == 200
    flow.refresh_from_db()
    assert _config(flow.draft, "w") == stored
    shown = _config(response.json()["graph"], "w")
    assert shown == {k: SECRET_SET if k == "secret" else v for k, v in stored.items()}


def test_a_copied_node_does_not_inherit_a_secret_it_cannot_name(marketer_api, flow):
    loaded = marketer_api.get(f"/api/v1/flows/{flow.pk}/draft/").json()
    copy = {**loaded["graph"]["nodes"][1], "id": "w2", "position": {"x": 40, "y": 140}}
    loaded["graph"]["nodes"].append(copy)

    marketer_api.put(f"/api/v1/flows/{flow.pk}/draft/", loaded, format="json")

    flow.refresh_from_db()
    assert _config(flow.draft, "w2") == {"url": "https://crm.example/hook"}
    assert _config(flow.draft, "w")["secret"] == HMAC


def test_the_builder_page_embeds_the_graph_masked(client, marketer, flow):
    client.force_login(marketer)
    flow_publish(flow=flow)

    for url in (f"/flows/{flow.pk}/", f"/flows/{flow.pk}/?version=1"):
        html = client.get(url).content.decode()
        assert HMAC not in html
        assert "sl4ck-t0ken" not in html
        assert f'"secret": "{SECRET_SET}"' in html


@pytest.fixture
def editor(marketer) -> Client:
    client = Client()
    client.force_login(marketer)
    return client


def _form_url(flow: Flow) -> str:
    return reverse("flow-node-form", args=[flow.pk])


def test_the_side_panel_shows_a_set_secret_without_its_value(editor, flow):
    config = {"url": "https://crm.example/hook", "secret": SECRET_SET}
    response = editor.get(
        _form_url(flow), {"type": "webhook.send", "node": "w", "config": json.dumps(config)}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert 'type="password"' in html
    assert 'name="secret" value=""' in html
    assert SECRET_SET not in html
    assert 'data-secret="set"' in html
    assert '<input type="hidden" name="secret-set" value="secret">' in html

    unset = editor.get(
        _form_url(flow),
        {"type": "webhook.send", "node": "w", "config": json.dumps({"url": "https://x.example"})},
    ).content.decode()
    assert 'data-secret="not-set"' in unset
    assert 'name="secret-clear"' not in unset


@pytest.mark.parametrize(
    ("posted", "secret"),
    [
        ({"secret": "", "secret-set": "secret"}, SECRET_SET),
        ({"secret": "", "secret-set": "secret", "secret-clear": "secret"}, ""),
        ({"secret": "brand-new", "secret-set": "secret"}, "brand-new"),
        ({"secret": ""}, None),
    ],
    ids=["blank-keeps", "clear", "new-value", "never-set"],
)
def test_the_side_panel_keeps_clears_or_replaces_a_secret(editor, flow, posted, secret):
    response = editor.post(
        _form_url(flow),
        {"type": "webhook.send", "node": "w", "url": "https://crm.example/hook", **posted},
    )

    assert response.status_code == 200
    config = json.loads(response.headers["HX-Trigger"])[EVENT]["config"]
    assert config.get("secret") == secret
    # The form that comes back never carries a value in its input.
    assert 'name="secret" value=""' in response.content.decode()
    assert "brand-new" not in response.content.decode()


def test_a_masked_slack_url_counts_as_valid_and_summarises(editor, flow):
    response = editor.post(
        _form_url(flow),
        {
            "type": "sales.notify",
            "node": "n",
            "title": "Call {lead}",
            "priority": "normal",
            "slack_webhook": "",
            "secret-set": "slack_webhook",
        },
    )

    detail = json.loads(response.headers["HX-Trigger"])[EVENT]
    assert detail["config"]["slack_webhook"] == SECRET_SET
    assert detail["summary"] == "Call {lead}"


def test_a_mistyped_new_slack_url_is_refused_in_the_side_panel(editor, flow):
    response = editor.post(
        _form_url(flow),
        {"type": "sales.notify", "node": "n", "title": "Hi", "slack_webhook": "http://x.example"},
    )

    event = json.loads(response.headers["HX-Trigger"])["leadflow:node-configured"]
    assert (event["complete"], event["summary"]) == (False, "")
    assert "is not in the form it needs." in response.content.decode()
    assert 'name="slack_webhook" value=""' in response.content.decode()


def test_the_dry_run_uses_the_stored_secret_for_a_masked_graph(marketer_api, flow):
    lead = LeadFactory.create(email="ada@x.example")
    masked = marketer_api.get(f"/api/v1/flows/{flow.pk}/draft/").json()["graph"]

    response = marketer_api.post(
        f"/api/v1/flows/{flow.pk}/dry-run/",
        {"lead": lead.pk, "graph": masked, "event": {"type": "track", "name": "Asked for a demo"}},
        format="json",
    )

    assert response.status_code == 200
    effects = [step["effect"] for step in response.json()["steps"]]
    assert any("Slack message to hooks.slack.com" in e for e in effects)
    assert HMAC not in response.content.decode()
    assert "sl4ck-t0ken" not in response.content.decode()
    # The same graph straight to the service, unmasked: the same words.
    direct = flow_dry_run(
        flow=flow,
        graph=flow.draft,
        lead=lead,
        event={"type": "track", "name": "Asked for a demo", "properties": {}},
    )
    assert [s["effect"] for s in direct["steps"]] == effects


def test_the_privacy_export_masks_delivery_credentials(client, admin_user, settings):
    UserFactory.create(username="rep", role="sales")
    # Nothing listens on port 9: the deliveries fail, their rows stay.
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    slack = "https://127.0.0.1:9/services/T0/B0/sl4ck-t0ken"
    g = graph(
        ("t", "app.event", {"event": "Asked for a demo"}),
        ("n", "sales.notify", {"title": "Call {lead}", "email": False, "slack_webhook": slack}),
        ("w", "webhook.send", {"url": "https://127.0.0.1:9/hook", "secret": HMAC}),
    )
    flow = flow_create(name="Demo asked", graph=g)
    flow_publish(flow=flow)
    lead = LeadFactory.create(email="ada@x.example")
    EventFactory.create(lead=lead, type="track", name="Asked for a demo")
    drain()
    assert sorted(Delivery.objects.values_list("kind", "target")) == [
        ("slack", slack),
        ("webhook", "https://127.0.0.1:9/hook"),
    ]
    assert Delivery.objects.get(kind="webhook").payload["secret"] == HMAC
    client.force_login(admin_user)

    response = client.get(f"/leads/{lead.pk}/export.json")

    body = b"".join(response.streaming_content).decode()
    assert HMAC not in body
    assert "sl4ck-t0ken" not in body
    deliveries = json.loads(body)["deliveries"]
    assert sorted((d["kind"], d["target"]) for d in deliveries) == [
        ("slack", SECRET_SET),
        ("webhook", "https://127.0.0.1:9/hook"),
    ]
    assert next(d for d in deliveries if d["kind"] == "webhook")["payload"]["secret"] == SECRET_SET

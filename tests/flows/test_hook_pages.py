"""Settings → Webhooks: subscribe a URL (the secret shown once), the delivery
log, delete; admins only."""

import pytest

from flows.models import HookSubscription
from tests.factories import DeliveryFactory, HookSubscriptionFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def test_an_admin_subscribes_a_url_and_sees_the_secret_once(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/settings/webhooks/",
        {
            "target_url": "https://n8n.example/webhook/1",
            "events": ["lead.mql", "task.created"],
            "description": "n8n",
        },
        follow=True,
    )
    hook = HookSubscription.objects.get()
    assert (hook.target_url, hook.events, hook.description, hook.created_by) == (
        "https://n8n.example/webhook/1",
        ["lead.mql", "task.created"],
        "n8n",
        admin_user,
    )
    page = response.content.decode()
    assert hook.secret in page
    assert 'id="new-hook-secret"' in page
    again = client.get("/settings/webhooks/").content.decode()
    assert hook.secret not in again
    assert "https://n8n.example/webhook/1" in again


def test_a_bad_subscription_is_shown_with_its_errors(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/settings/webhooks/", {"target_url": "ftp://x.example/", "events": []})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Use an http:// or https:// URL." in page
    assert "This field is required." in page
    assert not HookSubscription.objects.exists()


def test_a_private_address_is_refused_on_the_page(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/settings/webhooks/", {"target_url": "http://10.0.0.7/in", "events": ["lead.mql"]}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "10.0.0.7 is a local or private address (10.0.0.7)" in page
    assert not HookSubscription.objects.exists()


def test_the_delivery_log_shows_each_delivery_and_narrows_to_one_subscription(client, admin_user):
    first = HookSubscriptionFactory.create(target_url="https://a.example/in")
    second = HookSubscriptionFactory.create(target_url="https://b.example/in")
    DeliveryFactory.create(
        hook=first,
        target=first.target_url,
        payload={"body": {"event": "lead.mql"}},
        status="failed",
        attempts=5,
        response_code=500,
        last_error="HTTP 500",
    )
    DeliveryFactory.create(
        hook=second,
        target=second.target_url,
        payload={"body": {"event": "segment.entered"}},
        status="sent",
        attempts=1,
        response_code=200,
    )
    client.force_login(admin_user)
    page = client.get("/settings/webhooks/").content.decode()
    assert "HTTP 500" in page
    assert "segment.entered" in page
    narrowed = client.get(f"/settings/webhooks/?hook={second.pk}", **HX).content.decode()
    assert "segment.entered" in narrowed
    assert "HTTP 500" not in narrowed
    assert "Latest deliveries to https://b.example/in" in narrowed


def test_delete_through_htmx_removes_the_row(client, admin_user):
    hook = HookSubscriptionFactory.create()
    client.force_login(admin_user)
    response = client.post(f"/settings/webhooks/{hook.pk}/delete/", **HX)
    assert (response.status_code, response.content) == (200, b"")
    assert not HookSubscription.objects.exists()


def test_marketers_cannot_subscribe_or_delete(client, marketer):
    hook = HookSubscriptionFactory.create()
    client.force_login(marketer)
    assert client.get("/settings/webhooks/").status_code == 403
    assert client.post(f"/settings/webhooks/{hook.pk}/delete/").status_code == 403
    assert HookSubscription.objects.count() == 1

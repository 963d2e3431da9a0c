"""A REST hook subscription cannot point at the network Leadflow runs in: the
target is refused when it is saved, as webhook nodes and Slack URLs are."""

from __future__ import annotations

import pytest

from flows.models import HookSubscription
from tests.factories import HookSubscriptionFactory

pytestmark = pytest.mark.django_db

LOCAL = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "169.254.169.254"),
    ("http://localhost:8000/in", "localhost", "127.0.0.1"),
    ("http://[::1]/in", "::1", "::1"),
    ("https://10.0.0.5/in", "10.0.0.5", "10.0.0.5"),
]


def _refusal(host: str, address: str) -> str:
    return (
        f"{host} is a local or private address ({address}); Leadflow does not send there "
        "unless an administrator allows it in OUTBOUND_ALLOWED_HOSTS."
    )


@pytest.mark.parametrize(("url", "host", "address"), LOCAL)
def test_a_hook_to_a_local_or_private_address_is_refused(admin_api, url, host, address):
    response = admin_api.post(
        "/api/v1/hooks/", {"target_url": url, "event": "lead.mql"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"target_url": [_refusal(host, address)]}
    assert HookSubscription.objects.count() == 0


def test_a_hook_cannot_be_moved_to_a_local_address(admin_api):
    hook = HookSubscriptionFactory.create(target_url="https://crm.example/in")

    response = admin_api.patch(
        f"/api/v1/hooks/{hook.pk}/",
        {"target_url": "http://169.254.169.254/latest/"},
        format="json",
    )
    hook.refresh_from_db()

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "target_url": [_refusal("169.254.169.254", "169.254.169.254")]
    }
    assert hook.target_url == "https://crm.example/in"


def test_an_allowed_local_receiver_may_be_subscribed(admin_api, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]

    response = admin_api.post(
        "/api/v1/hooks/",
        {"target_url": "http://127.0.0.1:9000/in", "event": "lead.mql"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert HookSubscription.objects.get().target_url == "http://127.0.0.1:9000/in"

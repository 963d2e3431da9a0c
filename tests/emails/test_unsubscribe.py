"""The unsubscribe link of every marketing email: no login, GET changes nothing,
POST (the button or a provider's RFC 8058 one-click) unsubscribes once."""

from __future__ import annotations

import pytest
from django.test import Client

from emails.links import unsubscribe_url
from leads.models import ConsentRecord, ConsentState, Event, Lead
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = "https://leads.example.com"


def _path(url: str) -> str:
    assert url.startswith("https://leads.example.com/email/unsubscribe/")
    return url.removeprefix("https://leads.example.com")


@pytest.fixture
def anonymous():
    return Client(enforce_csrf_checks=True)


def test_get_shows_one_button_and_changes_nothing(anonymous):
    lead = LeadFactory.create(email="pat@example.com", consent_state=ConsentState.CONFIRMED)

    response = anonymous.get(_path(unsubscribe_url(lead=lead, send_key="s-1")))

    assert response.status_code == 200
    assert response["Referrer-Policy"] == "no-referrer"
    body = response.content.decode()
    assert body.count('<button type="submit">Unsubscribe</button>') == 1
    assert "pat@example.com" in body
    lead.refresh_from_db()
    assert (lead.unsubscribed, lead.consent_state) == (False, ConsentState.CONFIRMED)
    assert not ConsentRecord.objects.exists()
    assert not Event.objects.filter(type="email.unsubscribed").exists()


def test_post_unsubscribes_without_login_or_csrf(anonymous, django_capture_on_commit_callbacks):
    lead = LeadFactory.create(email="pat@example.com", consent_state=ConsentState.CONFIRMED)
    path = _path(unsubscribe_url(lead=lead, send_key="send-42"))

    with django_capture_on_commit_callbacks(execute=True):
        response = anonymous.post(
            path, REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Mozilla/5.0 Test"
        )

    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    lead.refresh_from_db()
    assert lead.unsubscribed is True
    assert lead.consent_state == ConsentState.WITHDRAWN
    record = ConsentRecord.objects.get(lead=lead)
    assert (record.state, record.source, record.source_detail) == (
        "withdrawn",
        "unsubscribe",
        "send-42",
    )
    assert (record.ip_address, record.user_agent) == ("203.0.113.9", "Mozilla/5.0 Test")
    assert record.wording == "Unsubscribe from marketing email"
    event = Event.objects.get(type="email.unsubscribed")
    assert (event.lead_id, event.source, event.processed_at is not None) == (
        lead.pk,
        "email:leadflow",
        True,
    )
    assert event.properties == {
        "email": "pat@example.com",
        "one_click": False,
        "send_key": "send-42",
    }
    changed = Event.objects.get(type="consent.changed")
    assert changed.properties == {
        "from": "confirmed",
        "to": "withdrawn",
        "source": "unsubscribe",
        "record": record.pk,
    }


def test_one_click_post_from_the_provider(anonymous, django_capture_on_commit_callbacks):
    lead = LeadFactory.create(consent_state=ConsentState.CONFIRMED)

    with django_capture_on_commit_callbacks(execute=True):
        response = anonymous.post(
            _path(unsubscribe_url(lead=lead)),
            "List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )

    assert response.status_code == 200
    lead.refresh_from_db()
    assert (lead.unsubscribed, lead.consent_state) == (True, ConsentState.WITHDRAWN)
    assert Event.objects.get(type="email.unsubscribed").properties["one_click"] is True


def test_double_click_is_one_event_and_one_record(anonymous, django_capture_on_commit_callbacks):
    lead = LeadFactory.create(consent_state=ConsentState.CONFIRMED)
    path = _path(unsubscribe_url(lead=lead, send_key="s"))

    with django_capture_on_commit_callbacks(execute=True):
        first = anonymous.post(path)
    with django_capture_on_commit_callbacks(execute=True):
        second = anonymous.post(
            path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        )

    assert (first.status_code, second.status_code) == (200, 200)
    assert Event.objects.filter(type="email.unsubscribed").count() == 1
    assert Event.objects.filter(type="consent.changed").count() == 1
    assert ConsentRecord.objects.filter(lead=lead).count() == 1


def test_page_in_the_leads_language(anonymous):
    lead = LeadFactory.create(language="de", consent_state=ConsentState.CONFIRMED)

    response = anonymous.get(_path(unsubscribe_url(lead=lead)))

    assert response.status_code == 200
    assert '<html lang="de">' in response.content.decode()


@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_token_shows_a_clear_page_and_changes_nothing(anonymous, method):
    lead = LeadFactory.create(consent_state=ConsentState.CONFIRMED)
    other = LeadFactory.create(consent_state=ConsentState.CONFIRMED)
    path = _path(unsubscribe_url(lead=lead))
    token = path.split("/")[-2]
    # The same signature over another lead's id, and a broken signature.
    forged = token.replace(token.split(":")[0], "eyJsIjo" + str(other.pk))

    for bad in (forged, token[:-3] + "abc", "nonsense"):
        response = getattr(anonymous, method)(f"/email/unsubscribe/{bad}/")
        assert response.status_code == 404
        assert "This link does not work" in response.content.decode()

    assert list(Lead.objects.filter(unsubscribed=True)) == []
    assert not ConsentRecord.objects.exists()
    assert not Event.objects.exists()


def test_link_of_an_erased_lead(anonymous):
    lead = LeadFactory.create()
    path = _path(unsubscribe_url(lead=lead))
    lead.delete()

    response = anonymous.post(path)

    assert response.status_code == 404
    assert not Event.objects.exists()


def test_urls_differ_per_lead_and_send_and_need_the_sites_secret(anonymous, settings):
    one, two = LeadFactory.create(), LeadFactory.create()
    url = unsubscribe_url(lead=one)

    assert url != unsubscribe_url(lead=two)
    assert unsubscribe_url(lead=one, send_key="a") != unsubscribe_url(lead=one, send_key="b")
    assert anonymous.get(_path(url)).status_code == 200
    settings.SECRET_KEY = "another-site-" + "x" * 50
    assert anonymous.get(_path(url)).status_code == 404

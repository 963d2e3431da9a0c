"""What an ingest key (public, in a website snippet) may change on a lead that
exists: fill its empty fields and add tags, never overwrite — unless the call
carries the user's identity hash. A full key (server-side) may overwrite."""

import base64
import json

import pytest

from leads.models import Event, Lead
from leads.services.ingest import identity_hash
from leads.services.users import identity_secret_rotate
from tests.factories import FieldDefinitionFactory, LeadFactory

pytestmark = pytest.mark.django_db

MALLORY = {
    "email": "ada@acme.example",
    "firstName": "Mallory",
    "lastName": "Evil",
    "title": "Intern",
    "phone": "+49 30 1234",
    "company": {"name": "Evil Corp", "employee_count": 5},
    "tags": ["webinar", "pricing-page"],
}


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@pytest.fixture
def ada():
    return LeadFactory.create(
        email="ada@acme.example",
        external_id="u-ada",
        first_name="Ada",
        last_name="Lovelace",
        job_title="CTO",
        company_name="Acme GmbH",
        phone="",
        company_size=None,
        raw_traits={"plan": "team"},
    )


@pytest.fixture
def identify(client, django_capture_on_commit_callbacks):
    def send(key, message):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/v1/identify",
                json.dumps(message),
                content_type="application/json",
                HTTP_AUTHORIZATION=basic(key),
            )
        assert response.status_code == 200, response.content
        return response

    return send


def fields(lead):
    lead.refresh_from_db()
    return {
        "email": lead.email,
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "job_title": lead.job_title,
        "phone": lead.phone,
        "company_name": lead.company_name,
        "company_size": lead.company_size,
        "tags": sorted(lead.tags.values_list("name", flat=True)),
    }


KEPT_AND_FILLED = {
    "email": "ada@acme.example",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "job_title": "CTO",
    "phone": "+49 30 1234",
    "company_name": "Acme GmbH",
    "company_size": 5,
    "tags": ["pricing-page", "webinar"],
}
OVERWRITTEN = {
    "email": "ada@acme.example",
    "first_name": "Mallory",
    "last_name": "Evil",
    "job_title": "Intern",
    "phone": "+49 30 1234",
    "company_name": "Evil Corp",
    "company_size": 5,
    "tags": ["pricing-page", "webinar"],
}


def test_an_ingest_key_fills_empty_fields_and_adds_tags_but_rewrites_nothing(
    ada, identify, ingest_key
):
    identify(ingest_key, {"anonymousId": "anon-9", "messageId": "m1", "traits": MALLORY})
    assert fields(ada) == KEPT_AND_FILLED
    assert Lead.objects.count() == 1
    event = Event.objects.get(type="identify")
    assert event.context == {"leadflow": {"key": "ingest", "verified": False}}
    assert sorted(
        Event.objects.filter(lead=ada, type="field.changed").values_list("name", flat=True)
    ) == ["company_size", "phone"]


def test_an_ingest_key_may_not_replace_the_email_of_a_lead_found_by_user_id(
    ada, identify, ingest_key
):
    identify(ingest_key, {"userId": "u-ada", "traits": {"email": "mallory@evil.example"}})
    ada.refresh_from_db()
    assert ada.email == "ada@acme.example"
    assert ada.raw_traits == {"plan": "team"}


def test_a_valid_user_hash_lets_an_ingest_key_overwrite(ada, identify, ingest_key):
    secret = identity_secret_rotate()
    user_hash = identity_hash(secret=secret, user_id="u-ada", email="")
    identify(
        ingest_key,
        {"userId": "u-ada", "traits": MALLORY, "context": {"userHash": user_hash, "ip": "1.2.3.4"}},
    )
    assert fields(ada) == OVERWRITTEN
    # The hash is not kept: it would let anyone who reads the events act as this user.
    assert Event.objects.get(type="identify").context == {
        "ip": "1.2.3.4",
        "leadflow": {"key": "ingest", "verified": True},
    }


def test_the_email_is_hashed_when_there_is_no_user_id(ada, identify, ingest_key):
    secret = identity_secret_rotate()
    user_hash = identity_hash(secret=secret, user_id="", email="ADA@acme.example")
    identify(
        ingest_key,
        {"anonymousId": "anon-1", "traits": MALLORY, "context": {"userHash": user_hash}},
    )
    assert fields(ada) == OVERWRITTEN


def test_a_wrong_or_stale_hash_is_no_verification(ada, identify, ingest_key):
    old = identity_secret_rotate()
    stale = identity_hash(secret=old, user_id="u-ada", email="")
    identity_secret_rotate()
    identify(ingest_key, {"userId": "u-ada", "traits": MALLORY, "context": {"userHash": stale}})
    assert fields(ada) == KEPT_AND_FILLED
    assert Event.objects.get(type="identify").context == {
        "leadflow": {"key": "ingest", "verified": False}
    }


def test_a_hash_of_any_text_is_refused_quietly(ada, identify, ingest_key):
    identity_secret_rotate()
    for n, user_hash in enumerate(("ä" * 64, 42, "")):
        identify(
            ingest_key,
            {
                "userId": "u-ada",
                "messageId": f"h{n}",
                "traits": MALLORY,
                "context": {"userHash": user_hash},
            },
        )
    assert fields(ada) == KEPT_AND_FILLED


def test_a_client_cannot_claim_the_mark_itself(ada, identify, ingest_key):
    identify(
        ingest_key,
        {
            "userId": "u-ada",
            "traits": MALLORY,
            "context": {"leadflow": {"key": "full", "verified": True}},
        },
    )
    assert fields(ada) == KEPT_AND_FILLED


def test_a_full_key_overwrites(ada, identify, full_key):
    identify(full_key, {"userId": "u-ada", "traits": MALLORY, "context": {"leadflow": "x"}})
    assert fields(ada) == OVERWRITTEN
    assert Event.objects.get(type="identify").context == {}


def test_group_through_an_ingest_key_fills_only(
    ada, client, ingest_key, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/v1/group",
            json.dumps(
                {
                    "userId": "u-ada",
                    "groupId": "g-1",
                    "traits": {"name": "Evil Corp", "employees": 7, "industry": "Crime"},
                }
            ),
            content_type="application/json",
            HTTP_AUTHORIZATION=basic(ingest_key),
        )
    assert response.status_code == 200
    ada.refresh_from_db()
    assert (ada.company_name, ada.company_size, ada.industry) == ("Acme GmbH", 7, "Crime")


def test_track_and_page_through_an_ingest_key_are_stored_as_sent(ada, client, ingest_key):
    context = {"page": {"url": "https://acme.example/pricing"}, "ip": "1.2.3.4"}
    for path, message in (
        ("/v1/track", {"userId": "u-ada", "event": "Viewed plan", "context": context}),
        ("/v1/page", {"userId": "u-ada", "name": "Pricing", "context": context}),
    ):
        response = client.post(
            path,
            json.dumps(message),
            content_type="application/json",
            HTTP_AUTHORIZATION=basic(ingest_key),
        )
        assert response.status_code == 200
    assert [e.context for e in Event.objects.order_by("id")] == [context, context]


def test_the_rest_api_takes_the_hash_as_user_hash(
    ada, ingest_api, django_capture_on_commit_callbacks
):
    secret = identity_secret_rotate()
    payload = {"type": "identify", "user_id": "u-ada", "properties": {"firstName": "Augusta"}}
    with django_capture_on_commit_callbacks(execute=True):
        assert ingest_api.post("/api/v1/events/", payload, format="json").status_code == 202
    ada.refresh_from_db()
    assert ada.first_name == "Ada"
    signed = {
        **payload,
        "idempotency_key": "second",
        "user_hash": identity_hash(secret=secret, user_id="u-ada", email=""),
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert ingest_api.post("/api/v1/events/", signed, format="json").status_code == 202
    ada.refresh_from_db()
    assert ada.first_name == "Augusta"


def test_a_new_lead_from_an_ingest_key_gets_every_trait(identify, ingest_key):
    identify(ingest_key, {"userId": "u-new", "traits": MALLORY})
    lead = Lead.objects.get(external_id="u-new")
    assert fields(lead) == {**OVERWRITTEN, "email": "ada@acme.example"}


def test_identify_maps_segment_reserved_traits(identify, full_key):

    FieldDefinitionFactory.create(key="website")
    FieldDefinitionFactory.create(key="signed_up_at", label="Signed up", type="date")
    FieldDefinitionFactory.create(key="postal_code")
    identify(
        full_key,
        {
            "userId": "u-7",
            "traits": {
                "name": "Grace Brewster Hopper",
                "email": "grace@navy.example",
                "website": "https://navy.example",
                "createdAt": "2026-03-01T10:00:00Z",
                "address": {
                    "city": "Arlington",
                    "country": "US",
                    "postalCode": "22201",
                    "street": "1 Navy Way",
                },
                "company": {"name": "Navy", "employee_count": "250", "plan": "gov"},
                "tags": "vip, navy ,",
            },
        },
    )
    lead = Lead.objects.get(external_id="u-7")
    assert (lead.first_name, lead.last_name, lead.email) == (
        "Grace",
        "Brewster Hopper",
        "grace@navy.example",
    )
    assert (lead.city, lead.country, lead.company_name, lead.company_size) == (
        "Arlington",
        "US",
        "Navy",
        250,
    )
    assert lead.custom_fields == {
        "website": "https://navy.example",
        "signed_up_at": "2026-03-01",
        "postal_code": "22201",
    }
    assert lead.raw_traits == {"street": "1 Navy Way", "company": {"plan": "gov"}}
    assert sorted(lead.tags.values_list("name", flat=True)) == ["navy", "vip"]


def test_tags_that_cannot_be_tags_are_kept_as_raw_traits(identify, full_key):
    identify(full_key, {"userId": "u-8", "traits": {"tags": ["ok", 42, "x" * 101]}})
    lead = Lead.objects.get(external_id="u-8")
    assert list(lead.tags.values_list("name", flat=True)) == ["ok"]
    assert lead.raw_traits == {"tags": [42, "x" * 101]}


def test_admins_make_replace_and_remove_the_identity_secret(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/settings/integrations/identity-secret/", follow=True)
    page = response.content.decode()
    from leads.services.users import integration_settings

    secret = integration_settings().identity_secret
    assert len(secret) == 64
    assert secret in page
    # Shown once.
    assert secret not in client.get("/settings/integrations/").content.decode()
    client.post("/settings/integrations/identity-secret/")
    assert integration_settings().identity_secret not in ("", secret)
    client.post("/settings/integrations/identity-secret/", {"remove": "1"})
    assert integration_settings().identity_secret == ""


def test_only_admins_touch_the_identity_secret(client, marketer):
    client.force_login(marketer)
    response = client.post("/settings/integrations/identity-secret/")
    assert response.status_code in (302, 403)
    from leads.services.users import integration_settings

    assert integration_settings().identity_secret == ""

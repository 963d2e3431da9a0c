import datetime as dt
import json

import pytest

from leads.models import Event, Lead
from tests.factories import EventFactory, LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    def _send(api, payload, path="/api/v1/events/"):
        with django_capture_on_commit_callbacks(execute=True):
            return api.post(path, payload, format="json")

    return _send


def test_ingest_key_posts_one_event(ingest_api, send):
    lead = LeadFactory.create(email="a@example.com")
    response = send(
        ingest_api,
        {
            "type": "page",
            "email": "A@example.com",
            "properties": {"url": "https://x.example/pricing"},
            "occurred_at": "2026-02-01T10:00:00Z",
        },
    )
    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    event = Event.objects.get(type="page")
    assert (event.lead_id, event.source) == (lead.pk, "api")
    assert event.occurred_at == dt.datetime(2026, 2, 1, 10, tzinfo=dt.UTC)
    assert event.processed_at is not None


def test_batch_is_all_or_nothing(ingest_api, send):
    response = send(
        ingest_api,
        {
            "events": [
                {"type": "track", "name": "A", "user_id": "u1"},
                {"type": "lead.created", "user_id": "u1"},
                {"type": "track", "name": "B"},
            ]
        },
    )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields == {
        "events[1].type": ['"lead.created" is not a valid choice.'],
        "events[2].lead": ["Give one of lead, email, user_id or anonymous_id."],
    }
    assert not Event.objects.exists()


def test_batch_with_idempotency_keys(ingest_api, send):
    events = [
        {"type": "track", "name": f"E{i}", "user_id": "u1", "idempotency_key": f"k{i}"}
        for i in range(3)
    ]
    assert send(ingest_api, {"events": events}).status_code == 202
    assert send(ingest_api, {"events": events}).status_code == 202
    assert Event.objects.filter(source="api").count() == 3
    assert Lead.objects.get().external_id == "u1"


def test_identify_via_rest_sets_traits(ingest_api, send):
    send(
        ingest_api,
        {"type": "identify", "properties": {"email": "t@example.com", "firstName": "Tess"}},
    )
    assert Lead.objects.get().first_name == "Tess"


def test_limits(ingest_api, send):
    too_many = {"events": [{"type": "track", "name": "E", "user_id": "u"}] * 501}
    assert send(ingest_api, too_many).status_code == 413
    big = {
        "events": [
            {"type": "track", "name": "E", "user_id": "u", "properties": {"p": "x" * 600_000}}
        ]
    }
    assert send(ingest_api, big).status_code == 413
    one_big = {"type": "track", "name": "E", "user_id": "u", "properties": {"p": "ü" * 17_000}}
    response = send(ingest_api, one_big)
    assert response.status_code == 413
    assert response.json()["error"]["message"] == "Event 0 is larger than 32768 bytes."


def test_unknown_lead_id_is_400(full_api, send):
    response = send(full_api, {"type": "track", "name": "E", "lead": 999999})
    assert response.json()["error"]["fields"] == {"lead": ["No such lead."]}


def test_ingest_key_cannot_address_leads_by_id_or_send_email_activity(ingest_api, send):
    lead = LeadFactory.create(email="victim@example.com")
    by_id = send(ingest_api, {"type": "track", "name": "E", "lead": lead.pk})
    assert by_id.json()["error"]["fields"] == {
        "lead": ["An ingest key names leads by email, user_id or anonymous_id."]
    }
    email_type = send(ingest_api, {"type": "email.unsubscribed", "email": "victim@example.com"})
    assert email_type.json()["error"]["fields"] == {
        "type": ["An ingest key cannot send email events; use a full key."]
    }
    generic = send(
        ingest_api,
        {"type": "unsubscribed", "email": "victim@example.com"},
        "/api/v1/email-events/",
    )
    assert generic.status_code == 403
    lead.refresh_from_db()
    assert lead.unsubscribed is False
    assert not Event.objects.filter(type__startswith="email.").exists()


def test_nul_characters_are_refused(full_api, send):
    response = send(
        full_api, {"type": "track", "name": "E", "user_id": "u", "properties": {"a": "x\x00y"}}
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "properties.a": ["Text may not contain NUL characters."]
    }


def test_identify_with_a_blank_or_invalid_email_needs_another_identifier(ingest_api, send):
    for value in (" ", "not an email"):
        response = send(ingest_api, {"type": "identify", "properties": {"email": value}})
        assert response.status_code == 400
    assert not Event.objects.exists()


def test_list_filters(marketer_api):
    lead = LeadFactory.create()
    other = LeadFactory.create()
    EventFactory.create(
        lead=lead, type="page", name="Pricing", occurred_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    )
    EventFactory.create(
        lead=lead,
        type="track",
        name="Created project",
        occurred_at=dt.datetime(2026, 1, 10, tzinfo=dt.UTC),
    )
    EventFactory.create(
        lead=other,
        type="track",
        name="Created project",
        occurred_at=dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
    )

    def names(query):
        response = marketer_api.get(f"/api/v1/events/?{query}")
        assert response.status_code == 200
        return [(r["lead"], r["type"], r["name"]) for r in response.json()["results"]]

    assert names(f"lead={lead.pk}") == [
        (lead.pk, "track", "Created project"),
        (lead.pk, "page", "Pricing"),
    ]
    assert names("type=track&name=Created%20project") == [
        (other.pk, "track", "Created project"),
        (lead.pk, "track", "Created project"),
    ]
    assert names("occurred_after=2026-01-06T00:00:00Z&occurred_before=2026-01-12T00:00:00Z") == [
        (lead.pk, "track", "Created project")
    ]


def test_ingest_key_cannot_list_events(ingest_api):
    assert ingest_api.get("/api/v1/events/").status_code == 403


def test_sales_lists_events_of_visible_leads_only(
    sales_api, sales, other_sales, django_assert_max_num_queries
):
    mine = EventFactory.create(lead=LeadFactory.create(owner=sales))
    EventFactory.create(lead=LeadFactory.create(owner=other_sales))
    with django_assert_max_num_queries(4):
        results = sales_api.get("/api/v1/events/").json()["results"]
    assert [r["id"] for r in results] == [mine.pk]


def test_generic_email_events(full_api, send):
    lead = LeadFactory.create(email="r@example.com")
    payload = {
        "events": [
            {
                "type": "replied",
                "email": "R@example.com",
                "event_id": "rep-1",
                "campaign": "Q1 outreach",
            },
            {
                "type": "unsubscribed",
                "email": "r@example.com",
                "event_id": "uns-1",
                "provider": "acme-mail",
            },
        ]
    }
    assert send(full_api, payload, "/api/v1/email-events/").status_code == 202
    assert send(full_api, payload, "/api/v1/email-events/").status_code == 202
    events = Event.objects.filter(type__startswith="email.").order_by("type")
    assert [(e.type, e.source, e.name, e.lead_id) for e in events] == [
        ("email.replied", "email:generic", "Q1 outreach", lead.pk),
        ("email.unsubscribed", "email:acme-mail", "", lead.pk),
    ]
    lead.refresh_from_db()
    assert lead.unsubscribed is True


def test_generic_email_event_validation(full_api, send):
    response = send(full_api, {"type": "exploded", "email": "nope"}, "/api/v1/email-events/")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"type", "email"}


def test_event_list_page_is_json_api(marketer_api):
    response = marketer_api.get("/api/v1/events/")
    assert json.loads(response.content)["results"] == []

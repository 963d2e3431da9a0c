import base64
import datetime as dt
import gzip
import json

import pytest

from leads.models import Event, Identity, Lead

pytestmark = pytest.mark.django_db


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@pytest.fixture
def post(client, ingest_key, django_capture_on_commit_callbacks):
    def send(path, payload, *, key=ingest_key, raw=None, headers=None, process=True):
        body = raw if raw is not None else json.dumps(payload)
        extra = {"HTTP_AUTHORIZATION": basic(key)} if key else {}
        extra.update(headers or {})
        with django_capture_on_commit_callbacks(execute=process):
            return client.post(path, body, content_type="application/json", **extra)

    return send


def test_identify_then_track_creates_one_lead_with_traits(post):
    response = post(
        "/v1/identify",
        {
            "userId": "u-1",
            "messageId": "m-1",
            "traits": {
                "email": "Grace@Example.com",
                "name": "Grace Hopper",
                "title": "CTO",
                "company": {"name": "Navy", "employee_count": 250, "industry": "Defense"},
                "address": {"city": "Arlington", "country": "US"},
                "favourite_colour": "blue",
            },
        },
    )
    assert response.status_code == 200
    assert response.json() == {"success": True}
    post("/v1/track", {"userId": "u-1", "event": "Created project", "messageId": "m-2"})
    lead = Lead.objects.get()
    assert (lead.email, lead.external_id, lead.first_name, lead.last_name) == (
        "grace@example.com",
        "u-1",
        "Grace",
        "Hopper",
    )
    assert (lead.job_title, lead.company_name, lead.company_size, lead.industry) == (
        "CTO",
        "Navy",
        250,
        "Defense",
    )
    assert (lead.city, lead.country) == ("Arlington", "US")
    assert lead.raw_traits == {"favourite_colour": "blue"}
    track = Event.objects.get(type="track")
    assert (track.lead_id, track.name, track.processed_at is not None) == (
        lead.pk,
        "Created project",
        True,
    )
    assert lead.last_activity_at == track.occurred_at


def test_same_message_id_twice_is_one_event(post):
    message = {"userId": "u-1", "event": "Signed up for trial", "messageId": "dup-1"}
    post("/v1/track", message)
    post("/v1/track", message)
    post("/v1/batch", {"batch": [{**message, "type": "track"}]})
    assert Event.objects.filter(source="segment").count() == 1


def test_message_without_id_deduplicates_an_exact_resend(post):
    message = {"userId": "u-1", "event": "Clicked", "timestamp": "2026-01-01T00:00:00Z"}
    post("/v1/track", message)
    post("/v1/track", message)
    post("/v1/track", {**message, "event": "Other"})
    assert Event.objects.filter(source="segment").count() == 2


def test_anonymous_lead_is_merged_into_known_lead(post):
    post("/v1/page", {"anonymousId": "anon-9", "properties": {"url": "https://x.example/pricing"}})
    post("/v1/identify", {"userId": "u-7", "traits": {"email": "known@example.com"}})
    assert Lead.objects.count() == 2
    anonymous = Lead.objects.get(identities__value="anon-9")
    post("/v1/identify", {"userId": "u-7", "anonymousId": "anon-9", "traits": {"plan": "pro"}})
    lead = Lead.objects.get()
    assert lead.email == "known@example.com"
    assert lead.raw_traits == {"plan": "pro"}
    assert list(lead.identities.values_list("value", flat=True)) == ["anon-9"]
    page = Event.objects.get(type="page")
    assert page.lead_id == lead.pk
    assert page.properties["url"] == "https://x.example/pricing"
    merged = Event.objects.get(type="lead.merged")
    assert merged.properties == {"merged_lead_id": anonymous.pk}
    # Merging again (the same identify resent with a new id) changes nothing.
    post("/v1/identify", {"userId": "u-7", "anonymousId": "anon-9", "messageId": "again"})
    assert Lead.objects.count() == 1
    assert Event.objects.filter(type="lead.merged").count() == 1


def test_anonymous_lead_becomes_known_when_identified(post):
    post("/v1/track", {"anonymousId": "anon-1", "event": "Viewed demo"})
    post("/v1/identify", {"anonymousId": "anon-1", "traits": {"email": "new@example.com"}})
    lead = Lead.objects.get()
    assert lead.email == "new@example.com"
    assert Event.objects.filter(lead=lead, type__in=["track", "identify"]).count() == 2


def test_alias_merges_previous_id(post):
    post("/v1/track", {"anonymousId": "old-anon", "event": "A"})
    post("/v1/identify", {"userId": "new-user", "traits": {"email": "n@example.com"}})
    post("/v1/alias", {"userId": "new-user", "previousId": "old-anon"})
    lead = Lead.objects.get()
    assert lead.external_id == "new-user"
    assert Identity.objects.get().lead_id == lead.pk


def test_group_sets_company(post):
    post("/v1/identify", {"userId": "u-1"})
    post(
        "/v1/group",
        {"userId": "u-1", "groupId": "g-1", "traits": {"name": "Initech", "employees": 40}},
    )
    lead = Lead.objects.get()
    assert (lead.company_name, lead.company_size) == ("Initech", 40)


def test_timestamp_corrected_for_client_clock_skew(post):
    # The client's clock is 1 hour fast: it sent at 13:00 (its time) an event it
    # recorded at 12:55 (its time). The event happened 5 minutes before arrival.
    response = post(
        "/v1/batch",
        {
            "sentAt": "2026-03-01T13:00:00Z",
            "batch": [
                {
                    "type": "track",
                    "userId": "u",
                    "event": "E",
                    "originalTimestamp": "2026-03-01T12:55:00Z",
                }
            ],
        },
    )
    assert response.status_code == 200
    event = Event.objects.get(type="track")
    assert event.received_at - event.occurred_at == dt.timedelta(minutes=5)


def test_timestamp_without_sent_at_is_taken_as_is(post):
    post("/v1/track", {"userId": "u", "event": "E", "timestamp": "2025-12-24T18:00:00+01:00"})
    event = Event.objects.get(type="track")
    assert event.occurred_at == dt.datetime(2025, 12, 24, 17, 0, tzinfo=dt.UTC)


def test_batch_accepts_good_events_and_reports_bad_ones(post):
    response = post(
        "/v1/batch",
        {
            "batch": [
                {"type": "track", "userId": "u", "event": "Good", "messageId": "g1"},
                {"type": "track", "userId": "u", "messageId": "b1"},
                {"type": "teleport", "userId": "u"},
                {"type": "page", "anonymousId": "a", "messageId": "g2"},
                {"type": "track", "event": "No identity"},
            ]
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["fields"]) for r in body["rejected"]] == [
        (1, {"batch[1].event": ["This field is required."]}),
        (2, {"batch[2].type": ["Expected one of: identify, track, page, screen, group, alias."]}),
        (4, {"batch[4].userId": ["Either userId or anonymousId is required."]}),
    ]
    assert sorted(
        Event.objects.filter(source="segment").values_list("idempotency_key", flat=True)
    ) == [
        "g1",
        "g2",
    ]


def test_batch_with_no_valid_event_is_400(post):
    response = post("/v1/batch", {"batch": [{"type": "track", "userId": "u"}]})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"batch[0].event": ["This field is required."]}


def test_bad_json_is_400(post):
    response = post("/v1/track", None, raw="{not json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "The body is not valid JSON."


def test_no_key_or_bad_key_is_401(post):
    assert post("/v1/track", {"userId": "u", "event": "E"}, key=None).status_code == 401
    assert post("/v1/track", {"userId": "u", "event": "E"}, key="lf_bad_key").status_code == 401
    assert not Event.objects.exists()


def test_write_key_in_body_is_accepted(post, ingest_key):
    response = post("/v1/track", {"userId": "u", "event": "E", "writeKey": ingest_key}, key=None)
    assert response.status_code == 200


def test_oversize_event_is_413(post):
    big = {"userId": "u", "event": "E", "properties": {"blob": "x" * 33_000}}
    assert post("/v1/track", big).status_code == 413
    response = post(
        "/v1/batch",
        {"batch": [{"type": "track", **big}, {"type": "track", "userId": "u", "event": "ok"}]},
    )
    assert response.status_code == 200
    assert response.json()["rejected"][0]["code"] == "too_large"
    assert response.json()["accepted"] == 1


def test_oversize_batch_is_413(post):
    events = [
        {"type": "track", "userId": "u", "event": "E", "properties": {"p": "x" * 20_000}}
        for _ in range(30)
    ]
    assert post("/v1/batch", {"batch": events}).status_code == 413
    too_many = [{"type": "track", "userId": "u", "event": "E"} for _ in range(501)]
    assert post("/v1/batch", {"batch": too_many}).status_code == 413
    assert not Event.objects.exists()


def test_gzip_body(post):
    payload = json.dumps({"batch": [{"type": "track", "userId": "u", "event": "Zipped"}]})
    response = post(
        "/v1/batch",
        None,
        raw=gzip.compress(payload.encode()),
        headers={"HTTP_CONTENT_ENCODING": "gzip"},
    )
    assert response.status_code == 200
    assert Event.objects.get(type="track").name == "Zipped"


def test_gzip_bomb_is_413_not_memory(post):
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]")
    response = post("/v1/batch", None, raw=bomb, headers={"HTTP_CONTENT_ENCODING": "gzip"})
    assert response.status_code == 413


def test_full_scope_key_may_also_send(post, full_key):
    assert post("/v1/track", {"userId": "u", "event": "E"}, key=full_key).status_code == 200


def test_get_is_405(client, ingest_key):
    assert client.get("/v1/track", HTTP_AUTHORIZATION=basic(ingest_key)).status_code == 405


def test_nul_character_rejects_only_that_event(post):
    response = post(
        "/v1/batch",
        {
            "batch": [
                {"type": "track", "userId": "u", "event": "ok", "messageId": "a"},
                {"type": "track", "userId": "u", "event": "E", "properties": {"x": "a\u0000b"}},
            ]
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["fields"] == {"batch[1]": ["Text may not contain NUL characters."]}
    assert Event.objects.filter(source="segment").count() == 1


def test_huge_company_size_trait_goes_to_raw_traits(post):
    post("/v1/identify", {"userId": "u", "traits": {"company_size": 99_999_999_999}})
    lead = Lead.objects.get()
    assert lead.company_size is None
    assert lead.raw_traits == {"company_size": 99_999_999_999}


@pytest.mark.parametrize(
    "message",
    [
        {"timestamp": "9999-12-31T23:59:59-05:00"},
        {"timestamp": "0001-01-01T00:00:00Z"},
        {"originalTimestamp": "2199-12-31T00:00:00Z", "sentAt": "1970-01-02T00:00:00Z"},
    ],
)
def test_out_of_range_timestamps_are_400(post, message):
    response = post("/v1/track", {"userId": "u", "event": "E", **message})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Bad timestamp."


def test_gzip_body_over_the_limit_is_413(post):
    import os

    noise = os.urandom(40_000).hex()  # incompressible, so the gzip stays large
    payload = json.dumps({"userId": "u", "event": "E", "properties": {"n": noise}})
    response = post(
        "/v1/track",
        None,
        raw=gzip.compress(payload.encode()),
        headers={"HTTP_CONTENT_ENCODING": "gzip"},
    )
    assert response.status_code == 413

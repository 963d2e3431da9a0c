"""The official Segment Python SDK, pointed at a live Leadflow, works unchanged."""

import datetime as dt

import pytest
from segment.analytics.client import Client

from leads.models import Event, Identity, Lead

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_segment_sdk_calls_land_as_events(live_server, ingest_key, gzip):
    errors = []
    client = Client(
        ingest_key,
        host=live_server.url,
        sync_mode=True,
        gzip=gzip,
        max_retries=1,
        on_error=lambda error, batch: errors.append(error),
    )
    client.page(
        anonymous_id="anon-42", name="Pricing", properties={"url": "https://x.example/pricing"}
    )
    client.identify(
        "user-42",
        {"email": "Sam@Example.com", "firstName": "Sam", "title": "Head of Growth", "plan": "team"},
        anonymous_id="anon-42",
    )
    client.track("user-42", "Signed up for trial", {"seats": 3}, message_id="fixed-id-1")
    client.track("user-42", "Signed up for trial", {"seats": 3}, message_id="fixed-id-1")
    client.group("user-42", "company-7", {"name": "Globex", "employees": 120, "industry": "Energy"})
    client.screen("user-42", name="Dashboard")
    client.track(
        "user-42",
        "Created project",
        timestamp=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    )
    client.alias("user-42-new", "user-42")
    client.flush()
    assert errors == []

    lead = Lead.objects.get()
    assert (lead.email, lead.first_name, lead.job_title) == (
        "sam@example.com",
        "Sam",
        "Head of Growth",
    )
    assert (lead.company_name, lead.company_size, lead.industry) == ("Globex", 120, "Energy")
    assert lead.external_id == "user-42"
    assert lead.raw_traits == {"plan": "team"}
    assert list(Identity.objects.values_list("value", flat=True)) == ["anon-42"]
    sdk_events = Event.objects.filter(source="segment")
    assert sorted(sdk_events.values_list("type", "name")) == [
        ("alias", ""),
        ("group", "company-7"),
        ("identify", ""),
        ("page", "Pricing"),
        ("screen", "Dashboard"),
        ("track", "Created project"),
        ("track", "Signed up for trial"),
    ]
    assert not sdk_events.filter(processed_at__isnull=True).exists()
    assert set(sdk_events.values_list("lead_id", flat=True)) == {lead.pk}
    created = sdk_events.get(name="Created project")
    # The SDK sends timestamp and sentAt from the same clock, so the skew rule
    # keeps the historical time to within the request's transit time.
    assert abs(
        created.occurred_at - dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ) < dt.timedelta(seconds=5)

"""The official Segment and RudderStack Python SDKs, pointed at a live Leadflow,
work unchanged."""

import datetime as dt

import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from leads.models import Event, Identity, Lead

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("sdk", [SegmentClient, RudderClient], ids=["segment", "rudderstack"])
def test_sdk_calls_land_as_events(live_server, ingest_key, gzip, sdk):
    errors: list[Exception] = []
    client = sdk(
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
        user_id="user-42",
        traits={
            "email": "Sam@Example.com",
            "firstName": "Sam",
            "title": "Head of Growth",
            "plan": "team",
        },
        anonymous_id="anon-42",
    )
    for _ in range(2):
        client.track(
            user_id="user-42",
            event="Signed up for trial",
            properties={"seats": 3},
            message_id="fixed-id-1",
        )
    client.group(
        user_id="user-42",
        group_id="company-7",
        traits={"name": "Globex", "employees": 120, "industry": "Energy"},
    )
    client.screen(user_id="user-42", name="Dashboard")
    client.track(
        user_id="user-42",
        event="Created project",
        timestamp=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    )
    # The app renames the user: the old id folds into the new one.
    client.alias(previous_id="user-42", user_id="user-42-renamed")
    client.flush()
    assert errors == []

    lead = Lead.objects.get()
    assert (lead.email, lead.first_name, lead.job_title) == (
        "sam@example.com",
        "Sam",
        "Head of Growth",
    )
    assert (lead.company_name, lead.company_size, lead.industry) == ("Globex", 120, "Energy")
    assert lead.external_id == "user-42-renamed"
    assert lead.raw_traits == {"plan": "team"}
    # The anonymous id, and the user id from before the alias, both still find the lead.
    assert sorted(Identity.objects.values_list("kind", "value")) == [
        ("anonymous_id", "anon-42"),
        ("user_id", "user-42"),
    ]
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

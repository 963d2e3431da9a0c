"""Marketing consent: its rules, its evidence, and where it comes from (the API,
identify traits, forms, imports, the profile, provider webhooks)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone

from leads.models import ConsentRecord, ConsentSource, ConsentState, Event, Lead
from leads.services.consent import (
    ConsentRefused,
    Outcome,
    consent_set,
    consent_transition,
)
from leads.services.imports import import_guess_mapping, leads_import_stream
from leads.services.ingest import INGEST_MARK
from tests.factories import ConsentRecordFactory, EventFactory, LeadFactory, UserFactory
from tests.flows.helpers import drain

pytestmark = pytest.mark.django_db

P, C, W, U = (
    ConsentState.PENDING,
    ConsentState.CONFIRMED,
    ConsentState.WITHDRAWN,
    ConsentState.UNKNOWN,
)
FORM, IMPORT, API, LINK, USER, UNSUB = (
    ConsentSource.FORM,
    ConsentSource.IMPORT,
    ConsentSource.API,
    ConsentSource.CONFIRMATION,
    ConsentSource.USER,
    ConsentSource.UNSUBSCRIBE,
)


@pytest.mark.parametrize(
    ("current", "new", "source", "admin", "restricted", "outcome"),
    [
        (U, P, FORM, False, False, Outcome.CHANGED),
        (U, C, IMPORT, False, False, Outcome.CHANGED),
        (P, C, LINK, False, False, Outcome.CHANGED),
        (U, C, LINK, False, False, Outcome.REFUSED),
        (W, C, LINK, False, False, Outcome.REFUSED),
        (C, P, FORM, False, False, Outcome.UNCHANGED),
        (C, P, API, False, False, Outcome.UNCHANGED),
        (C, C, IMPORT, False, False, Outcome.UNCHANGED),
        # Saying no always works, from any source that speaks for the person.
        (C, W, API, False, False, Outcome.CHANGED),
        (P, W, UNSUB, False, False, Outcome.CHANGED),
        (W, W, UNSUB, False, False, Outcome.UNCHANGED),
        # A withdrawal is lifted by the person's own sign-up or an admin only.
        (W, P, FORM, False, False, Outcome.CHANGED),
        (W, P, IMPORT, False, False, Outcome.REFUSED),
        (W, C, API, False, False, Outcome.REFUSED),
        (W, C, USER, False, False, Outcome.REFUSED),
        (W, C, USER, True, False, Outcome.CHANGED),
        (W, C, API, True, False, Outcome.REFUSED),
        # Forgetting is a person's correction.
        (C, U, API, False, False, Outcome.REFUSED),
        (C, U, USER, False, False, Outcome.CHANGED),
        # A public key may only ask.
        (U, P, API, False, True, Outcome.CHANGED),
        (U, C, API, False, True, Outcome.REFUSED),
        (C, W, API, False, True, Outcome.REFUSED),
    ],
)
def test_the_rules(current, new, source, admin, restricted, outcome):
    decision = consent_transition(
        current=current, new=new, source=source, admin=admin, restricted=restricted
    )

    assert decision.outcome is outcome
    assert bool(decision.reason) is (outcome is not Outcome.CHANGED)


def test_pending_again_is_a_new_request_only_after_a_day():
    now = timezone.now()

    def again(hours):
        return consent_transition(
            current=P, new=P, source=FORM, changed_at=now - dt.timedelta(hours=hours), now=now
        ).outcome

    assert (again(23), again(24)) == (Outcome.UNCHANGED, Outcome.CHANGED)


def test_consent_set_writes_the_lead_the_evidence_and_the_event(admin_user):
    lead = LeadFactory.create()
    at = timezone.now() - dt.timedelta(hours=2)

    record = consent_set(
        lead=lead,
        state=C,
        source=API,
        source_detail="CRM sync",
        occurred_at=at,
        ip_address="2001:db8::1",
        user_agent="CRM/2",
        wording="Yes, send me news",
        user=admin_user,
    )

    lead.refresh_from_db()
    assert (lead.consent_state, lead.consent_changed_at is not None) == ("confirmed", True)
    assert (
        record.state,
        record.source,
        record.source_detail,
        record.occurred_at,
        record.ip_address,
        record.user_agent,
        record.wording,
        record.created_by,
    ) == (
        "confirmed",
        "api",
        "CRM sync",
        at,
        "2001:db8::1",
        "CRM/2",
        "Yes, send me news",
        admin_user,
    )
    event = Event.objects.get(type="consent.changed")
    assert (event.lead_id, event.name, event.occurred_at, event.properties) == (
        lead.pk,
        "confirmed",
        at,
        {"from": "unknown", "to": "confirmed", "source": "api", "record": record.pk},
    )


def test_nothing_to_change_writes_nothing_and_a_refusal_says_why():
    lead = LeadFactory.create(consent_state=W)

    with pytest.raises(ConsentRefused) as refused:
        consent_set(lead=lead, state=C, source=IMPORT)
    assert consent_set(lead=lead, state=W, source=API) is None

    assert "withdrew" in refused.value.message
    assert not ConsentRecord.objects.exists()
    assert not Event.objects.exists()


def test_a_bad_ip_address_is_left_out_not_an_error():
    lead = LeadFactory.create()

    record = consent_set(lead=lead, state=P, source=FORM, ip_address="not, an ip")

    assert record.ip_address is None


# --- identify traits -------------------------------------------------------------


def _identify(lead, traits, *, restricted=False, context=None):
    context = dict(context or {})
    if restricted:
        context[INGEST_MARK] = {"key": "ingest", "verified": False}
    EventFactory.create(lead=lead, type="identify", properties=traits, context=context)
    drain()
    lead.refresh_from_db()


def test_identify_trait_sets_consent_with_the_context_as_evidence():
    lead = LeadFactory.create()

    _identify(
        lead,
        {"marketing_consent": "confirmed", "marketing_consent_wording": "Newsletter: yes"},
        context={"ip": "203.0.113.5", "userAgent": "Chrome/150"},
    )

    assert lead.consent_state == C
    record = ConsentRecord.objects.get(lead=lead)
    assert (record.source, record.source_detail, record.ip_address, record.user_agent) == (
        "api",
        "identify",
        "203.0.113.5",
        "Chrome/150",
    )
    assert record.wording == "Newsletter: yes"
    assert "marketing_consent" not in lead.raw_traits


@pytest.mark.parametrize(
    ("value", "state"), [(True, P), (False, W), ("Withdrawn", W), ("pending", P)]
)
def test_identify_trait_values(value, state):
    lead = LeadFactory.create()

    _identify(lead, {"marketing_consent": value})

    assert lead.consent_state == state


def test_an_unknown_trait_value_is_kept_raw_and_changes_nothing():
    lead = LeadFactory.create()

    _identify(lead, {"marketing_consent": "maybe"})

    assert (lead.consent_state, lead.raw_traits) == (U, {"marketing_consent": "maybe"})


def test_a_public_key_can_only_ask():
    asked, withdrawn = LeadFactory.create(), LeadFactory.create(consent_state=C)

    _identify(asked, {"marketing_consent": "confirmed"}, restricted=True)
    _identify(withdrawn, {"marketing_consent": False}, restricted=True)

    assert (asked.consent_state, withdrawn.consent_state) == (P, C)


# --- forms ------------------------------------------------------------------------


def test_a_ticked_form_box_asks_for_consent():
    lead = LeadFactory.create()
    EventFactory.create(
        lead=lead,
        type="form.submitted",
        name="Newsletter footer",
        properties={"marketing_consent": "yes", "consent_wording": "Send me the newsletter"},
        context={"ip": "192.0.2.1"},
    )

    drain()

    lead.refresh_from_db()
    assert lead.consent_state == P
    record = ConsentRecord.objects.get(lead=lead)
    assert (record.source, record.source_detail, record.wording, record.ip_address) == (
        "form",
        "Newsletter footer",
        "Send me the newsletter",
        "192.0.2.1",
    )


def test_an_unticked_box_is_no_withdrawal():
    lead = LeadFactory.create(consent_state=C)
    EventFactory.create(lead=lead, type="form.submitted", properties={"marketing_consent": False})

    drain()

    lead.refresh_from_db()
    assert lead.consent_state == C
    assert not ConsentRecord.objects.exists()


# --- provider webhooks ------------------------------------------------------------


def test_a_providers_unsubscribe_or_complaint_withdraws_consent():
    one = LeadFactory.create(email="one@example.com", consent_state=C)
    two = LeadFactory.create(email="two@example.com", consent_state=P)
    for lead, kind in ((one, "email.unsubscribed"), (two, "email.complained")):
        EventFactory.create(lead=lead, type=kind, source="email:postmark", email=lead.email)

    drain()

    assert list(
        Lead.objects.order_by("email").values_list("email", "unsubscribed", "consent_state")
    ) == [("one@example.com", True, "withdrawn"), ("two@example.com", True, "withdrawn")]
    assert list(
        ConsentRecord.objects.order_by("lead__email").values_list("source", "source_detail")
    ) == [
        ("unsubscribe", "email.unsubscribed (email:postmark)"),
        ("unsubscribe", "email.complained (email:postmark)"),
    ]


@pytest.mark.parametrize(
    ("bounce_type", "address", "bounced"),
    [
        ("hard", "pat@example.com", True),
        ("soft", "pat@example.com", False),
        ("hard", "old@example.com", False),
    ],
)
def test_a_hard_bounce_of_the_leads_address_marks_it(bounce_type, address, bounced):
    lead = LeadFactory.create(email="pat@example.com")
    event = EventFactory.create(
        lead=lead,
        type="email.bounced",
        email=address,
        properties={"email": address, "bounce_type": bounce_type},
    )

    drain()

    lead.refresh_from_db()
    assert lead.email_bounced_at == (event.occurred_at if bounced else None)


def test_the_generic_endpoint_takes_a_bounce_type(full_api, django_capture_on_commit_callbacks):
    hard = LeadFactory.create(email="hard@example.com")
    soft = LeadFactory.create(email="soft@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        response = full_api.post(
            "/api/v1/email-events/",
            {
                "events": [
                    {"type": "bounced", "email": "hard@example.com", "event_id": "b1"},
                    {
                        "type": "bounced",
                        "email": "soft@example.com",
                        "event_id": "b2",
                        "bounce_type": "soft",
                    },
                ]
            },
            format="json",
        )
    drain()

    assert response.status_code == 202
    hard.refresh_from_db()
    soft.refresh_from_db()
    assert (hard.email_bounced_at is not None, soft.email_bounced_at) == (True, None)


# --- imports ----------------------------------------------------------------------


def test_an_import_sets_consent_with_its_file_name_and_keeps_a_withdrawal():
    LeadFactory.create(email="no@example.com", consent_state=W)
    text = (
        "email,consent\n"
        "new@example.com,confirmed\n"
        "no@example.com,Confirmed\n"
        "ask@example.com,pending\n"
        "bad@example.com,perhaps\n"
    )

    totals = leads_import_stream(
        stream=io.BytesIO(text.encode()),
        mapping=import_guess_mapping(["email", "consent"]),
        file_name="fair-2026.csv",
    )

    assert (totals["created"], totals["failed"]) == (2, 1)
    assert totals["errors"][0]["row"] == 5
    assert "perhaps" in totals["errors"][0]["error"]
    assert dict(Lead.objects.values_list("email", "consent_state")) == {
        "new@example.com": "confirmed",
        "no@example.com": "withdrawn",
        "ask@example.com": "pending",
    }
    assert set(ConsentRecord.objects.values_list("lead__email", "source", "source_detail")) == {
        ("new@example.com", "import", "fair-2026.csv"),
        ("ask@example.com", "import", "fair-2026.csv"),
    }


# --- the API ----------------------------------------------------------------------


def test_api_reads_the_state_and_the_trail(admin_api, django_assert_max_num_queries):
    lead = LeadFactory.create(consent_state=C)
    for state in (P, C):
        ConsentRecordFactory.create(lead=lead, state=state, created_by=UserFactory.create())

    with django_assert_max_num_queries(4):
        response = admin_api.get(f"/api/v1/leads/{lead.pk}/consent/")

    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "confirmed"
    assert [r["state"] for r in body["trail"]] == ["pending", "confirmed"]
    assert admin_api.get(f"/api/v1/leads/{lead.pk}/").json()["consent_state"] == "confirmed"


def test_api_sets_consent_with_the_keys_name(full_api):
    lead = LeadFactory.create()

    response = full_api.post(
        f"/api/v1/leads/{lead.pk}/consent/",
        {"state": "confirmed", "wording": "Yes please", "ip_address": "192.0.2.9"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["state"] == "confirmed"
    record = ConsentRecord.objects.get(lead=lead)
    assert (record.source, record.source_detail, record.wording, record.ip_address) == (
        "api",
        "full",
        "Yes please",
        "192.0.2.9",
    )


def test_api_refusal_is_a_conflict(marketer_api):
    lead = LeadFactory.create(consent_state=W)

    response = marketer_api.post(
        f"/api/v1/leads/{lead.pk}/consent/", {"state": "confirmed"}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "consent_refused"
    lead.refresh_from_db()
    assert lead.consent_state == W


def test_api_sales_reads_but_does_not_write(sales_api, sales):
    lead = LeadFactory.create(owner=sales)

    assert sales_api.get(f"/api/v1/leads/{lead.pk}/consent/").status_code == 200
    response = sales_api.post(
        f"/api/v1/leads/{lead.pk}/consent/", {"state": "withdrawn"}, format="json"
    )
    assert response.status_code == 403
    assert not ConsentRecord.objects.exists()


# --- the profile ------------------------------------------------------------------


def test_profile_shows_the_state_and_trail(client, marketer):
    lead = LeadFactory.create(consent_state=P, email_bounced_at=timezone.now())
    ConsentRecordFactory.create(
        lead=lead, source_detail="Webinar form", wording="Keep me posted", ip_address="192.0.2.3"
    )
    client.force_login(marketer)

    page = client.get(f"/leads/{lead.pk}/").content.decode()

    assert 'data-consent-state="pending"' in page
    assert "Webinar form" in page
    assert '<q class="text-break">Keep me posted</q>' in page
    assert "Address bounced" in page
    assert f'action="/leads/{lead.pk}/consent/"' in page


def test_profile_marketer_sets_consent_with_a_reason(client, marketer):
    lead = LeadFactory.create()
    client.force_login(marketer)

    response = client.post(
        f"/leads/{lead.pk}/consent/",
        {"state": "confirmed", "reason": "Asked by phone"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert "Saved." in response.content.decode()
    record = ConsentRecord.objects.get(lead=lead)
    assert (record.state, record.source, record.source_detail, record.created_by) == (
        "confirmed",
        "user",
        "Asked by phone",
        marketer,
    )


def test_profile_only_an_admin_lifts_a_withdrawal(client, marketer, admin_user):
    lead = LeadFactory.create(consent_state=W)
    client.force_login(marketer)

    refused = client.post(
        f"/leads/{lead.pk}/consent/",
        {"state": "confirmed", "reason": "Said yes at the fair"},
        HTTP_HX_REQUEST="true",
    )
    client.force_login(admin_user)
    lifted = client.post(
        f"/leads/{lead.pk}/consent/",
        {"state": "confirmed", "reason": "Signed form on file"},
        HTTP_HX_REQUEST="true",
    )

    assert refused.status_code == 422
    assert "only their own new sign-up or an admin" in refused.content.decode()
    assert lifted.status_code == 200
    lead.refresh_from_db()
    assert lead.consent_state == C


def test_profile_needs_a_reason_and_sales_cannot_change(client, marketer, sales):
    lead = LeadFactory.create(owner=sales)
    client.force_login(marketer)
    no_reason = client.post(f"/leads/{lead.pk}/consent/", {"state": "confirmed", "reason": ""})
    client.force_login(sales)
    by_sales = client.post(f"/leads/{lead.pk}/consent/", {"state": "confirmed", "reason": "x"})
    page = client.get(f"/leads/{lead.pk}/").content.decode()

    assert no_reason.status_code == 422
    assert by_sales.status_code == 403
    assert 'data-consent-state="unknown"' in page
    assert f'action="/leads/{lead.pk}/consent/"' not in page
    assert not ConsentRecord.objects.exists()

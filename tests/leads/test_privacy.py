"""Privacy: an admin downloads everything held about a lead, and erases a lead
with all its data, leaving a record without anything about the person."""

import json

import pytest
from django.core.management import call_command

from flows.models import Delivery, Enrollment, StepRun
from leads.models import (
    ConsentRecord,
    ConsentSource,
    ConsentState,
    Event,
    Identity,
    Lead,
    LeadErasure,
    Note,
    Notification,
    Opportunity,
    SegmentMembership,
    Task,
)
from leads.services.consent import consent_set
from leads.services.privacy import lead_erase, lead_export
from scoring.models import LeadScore, ScoreChange
from scoring.services import scoring_mismatches
from segments.services import segment_create
from tests.factories import (
    EventFactory,
    IdentityFactory,
    LeadFactory,
    NoteFactory,
    OpportunityFactory,
    ScoreChangeFactory,
    SegmentFactory,
    SegmentMembershipFactory,
    TaskFactory,
    UserFactory,
)
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(django_capture_on_commit_callbacks):
    """Two leads through the same flow and segment; ``ada`` is the one asked about."""
    rep = UserFactory.create(username="rep", email="rep@example.com", role="sales")
    with django_capture_on_commit_callbacks(execute=True):
        segment = segment_create(
            name="Paid", conditions={"all": [{"field": "tags", "op": "has", "value": "paid"}]}
        )
    published(
        "Paid",
        graph(
            ("t", "app.event", {"event": "Paid"}),
            ("s", "score.adjust", {"points": 7, "category": "fit", "reason": "Paid"}),
            ("tag", "tag.add", {"tag": "paid"}),
            ("n", "sales.notify", {"title": "Call {lead}"}),
        ),
    )
    ada = LeadFactory.create(
        email="ada@x.example", first_name="Ada", last_name="King", external_id="u-ada", owner=rep
    )
    bob = LeadFactory.create(email="bob@x.example", first_name="Bob", owner=rep)
    IdentityFactory.create(lead=ada, value="anon-ada")
    for lead in (ada, bob):
        EventFactory.create(lead=lead, type="track", name="Paid", properties={"plan": "pro"})
    drain()
    NoteFactory.create(lead=ada, author=rep, body="Called Ada, wants a demo")
    NoteFactory.create(lead=bob, author=rep, body="Bob is away")
    # Sent but not yet matched to a lead: processing it would bring Ada back.
    EventFactory.create(lead=None, name="Paid", anonymous_id="anon-ada")
    EventFactory.create(lead=None, name="Paid", user_id="u-bob")
    return {"ada": ada, "bob": bob, "rep": rep, "segment": segment}


def _json(response) -> dict:
    return json.loads(b"".join(response.streaming_content))


def test_admin_downloads_everything_about_a_lead(client, admin_user, history):
    ada = history["ada"]
    client.force_login(admin_user)

    response = client.get(f"/leads/{ada.pk}/export.json")

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="lead-{ada.pk}.json"'
    data = _json(response)
    assert data["format"] == "leadflow.lead-export/1"
    assert (data["lead"]["email"], data["lead"]["first_name"], data["lead"]["score"]) == (
        "ada@x.example",
        "Ada",
        7,
    )
    assert (data["lead"]["owner"], data["lead"]["tags"]) == ("rep", ["paid"])
    assert data["identities"][0]["value"] == "anon-ada"
    assert [(c["delta"], c["category"], c["reason"]) for c in data["score_changes"]] == [
        (7, "fit", "Paid")
    ]
    assert [(s["category"], s["score"]) for s in data["score_by_category"]] == [("fit", 7)]
    assert [(s["segment"], s["left_at"]) for s in data["segments"]] == [("Paid", None)]
    assert [(f["flow"], f["version"], f["status"]) for f in data["flows"]] == [
        ("Paid", 1, "completed")
    ]
    assert [s["node_id"] for s in data["flow_steps"]] == ["t", "s", "tag", "n"]
    assert [(t["title"], t["assignee"]) for t in data["tasks"]] == [("Call Ada King", "rep")]
    assert [n["body"] for n in data["notes"]] == ["Called Ada, wants a demo"]
    assert [n["message"] for n in data["notifications"]] == ["New task: Call Ada King"]
    assert [d["target"] for d in data["deliveries"]] == ["rep@example.com"]
    events = [(e["type"], e["name"]) for e in data["events"]]
    assert ("track", "Paid") in events
    assert all(e["type"] != "track" or e["properties"] == {"plan": "pro"} for e in data["events"])
    assert Event.objects.filter(lead=ada).count() == len(data["events"])
    assert "Bob" not in json.dumps(data)


def test_erasing_removes_every_row_about_the_lead_and_keeps_a_record(client, admin_user, history):
    ada, bob, segment = history["ada"], history["bob"], history["segment"]
    segment.refresh_from_db()
    assert segment.member_count == 2
    bob_rows = {
        "events": Event.objects.filter(lead=bob).count(),
        "changes": ScoreChange.objects.filter(lead=bob).count(),
        "steps": StepRun.objects.filter(enrollment__lead=bob).count(),
    }
    client.force_login(admin_user)

    page = client.get(f"/leads/{ada.pk}/erase/")
    wrong = client.post(f"/leads/{ada.pk}/erase/", {"confirm": "bob@x.example"})
    assert Lead.objects.filter(pk=ada.pk).exists()
    response = client.post(f"/leads/{ada.pk}/erase/", {"confirm": "ADA@x.example "})

    assert page.status_code == 200
    assert "Type <strong>ada@x.example</strong> to confirm" in page.content.decode()
    assert wrong.status_code == 422
    assert "That does not match. Nothing was erased." in wrong.content.decode()
    assert response["Location"] == "/leads/"
    assert not Lead.objects.filter(pk=ada.pk).exists()
    for model, lookup in [
        (Event, {"lead_id": ada.pk}),
        (Identity, {"lead_id": ada.pk}),
        (ScoreChange, {"lead_id": ada.pk}),
        (LeadScore, {"lead_id": ada.pk}),
        (SegmentMembership, {"lead_id": ada.pk}),
        (Enrollment, {"lead_id": ada.pk}),
        (Task, {"lead_id": ada.pk}),
        (Note, {"lead_id": ada.pk}),
        (Notification, {"lead_id": ada.pk}),
    ]:
        assert not model._default_manager.filter(**lookup).exists(), model
    assert not Event.objects.filter(anonymous_id="anon-ada").exists()
    assert Delivery.objects.count() == 1  # Bob's email to the rep
    # Bob is untouched, the segment counts one member, the ledger still adds up.
    assert Event.objects.filter(user_id="u-bob", processed_at__isnull=True).count() == 1
    assert {
        "events": Event.objects.filter(lead=bob).count(),
        "changes": ScoreChange.objects.filter(lead=bob).count(),
        "steps": StepRun.objects.filter(enrollment__lead=bob).count(),
    } == bob_rows
    segment.refresh_from_db()
    assert segment.member_count == 1
    assert scoring_mismatches() == []
    record = LeadErasure.objects.get()
    assert (record.lead_ref, record.erased_by, record.via) == (ada.pk, admin_user, "web")
    assert record.rows["score_changes"] == 1
    assert record.rows["waiting_events"] == 1
    assert record.rows["notes"] == 1
    assert "ada" not in json.dumps(record.rows).lower()
    call_command("scoring_verify")


def test_an_erased_lead_comes_back_only_with_new_data(history):
    ada = history["ada"]
    from leads.services.privacy import lead_erase

    lead_erase(lead=ada, user=None, via="command")
    drain()
    # The unmatched event naming Ada was erased with her: nothing recreated her.
    assert not Lead.objects.filter(email="ada@x.example").exists()
    assert not Identity.objects.filter(value="anon-ada").exists()


@pytest.mark.parametrize("role", ["marketer", "sales"])
def test_only_admins_export_or_erase(client, history, role):
    ada = history["ada"]
    user = UserFactory.create(username=f"{role}-p", role=role)
    client.force_login(user)
    if role == "sales":
        ada.owner = user
        ada.save(update_fields=["owner"])
    assert client.get(f"/leads/{ada.pk}/export.json").status_code == 403
    assert client.get(f"/leads/{ada.pk}/erase/").status_code == 403
    assert client.post(f"/leads/{ada.pk}/erase/", {"confirm": ada.email}).status_code == 403
    assert Lead.objects.filter(pk=ada.pk).exists()
    profile = client.get(f"/leads/{ada.pk}/").content.decode()
    assert 'id="profile-privacy"' not in profile


def test_profile_offers_privacy_actions_to_admins(client, admin_user, history):
    client.force_login(admin_user)
    html = client.get(f"/leads/{history['ada'].pk}/").content.decode()
    assert f'href="/leads/{history["ada"].pk}/export.json"' in html
    assert f'href="/leads/{history["ada"].pk}/erase/"' in html


def test_api_export_and_delete_are_for_admins(admin_api, marketer_api, history):
    ada = history["ada"]
    assert marketer_api.get(f"/api/v1/leads/{ada.pk}/export/").status_code == 403
    assert marketer_api.delete(f"/api/v1/leads/{ada.pk}/").status_code == 403

    export = admin_api.get(f"/api/v1/leads/{ada.pk}/export/")
    assert export.status_code == 200
    assert _json(export)["lead"]["email"] == "ada@x.example"
    assert admin_api.delete(f"/api/v1/leads/{ada.pk}/").status_code == 204
    assert not Lead.objects.filter(pk=ada.pk).exists()
    assert LeadErasure.objects.get().via == "api"


def test_settings_privacy_lists_erasures_without_personal_data(
    client, admin_user, history, django_assert_max_num_queries
):
    client.force_login(admin_user)
    empty = client.get("/settings/privacy/").content.decode()
    client.post(f"/leads/{history['ada'].pk}/erase/", {"confirm": "ada@x.example"})
    client.post(f"/leads/{history['bob'].pk}/erase/", {"confirm": "bob@x.example"})

    with django_assert_max_num_queries(6):
        page = client.get("/settings/privacy/")
    partial = client.get("/settings/privacy/", headers={"HX-Request": "true"}).content.decode()

    html = page.content.decode()
    assert 'id="erasures-empty"' in empty
    assert html.count("<tr>") == 3  # the header and two erasures
    assert f"#{history['ada'].pk}" in html
    assert f"#{history['bob'].pk}" in html
    assert "ada@x.example" not in html
    assert "King" not in html
    assert "<html" not in partial
    assert 'id="erasures"' in partial
    assert client.get("/settings/privacy/").status_code == 200
    client.force_login(UserFactory.create(username="m-p", role="marketer"))
    assert client.get("/settings/privacy/").status_code == 403


def test_unsubscribed_leads_are_marked_wherever_they_are_listed(client, admin_user):
    from django.utils import timezone

    lead = LeadFactory.create(
        email="gone@x.example", first_name="Gus", unsubscribed=True, grade="hot", score=80
    )
    TaskFactory.create(lead=lead, assignee=admin_user, title="Call Gus", due_at=timezone.now())
    segment = SegmentFactory.create(name="Static", static=True)
    SegmentMembershipFactory.create(segment=segment, lead=lead)
    ScoreChangeFactory.create(lead=lead, delta=80, category__key="fit", reason="Big fit")
    client.force_login(admin_user)

    for url in ["/", "/leads/", "/tasks/", f"/segments/{segment.pk}/", f"/leads/{lead.pk}/"]:
        html = client.get(url).content.decode()
        assert "data-unsubscribed" in html, url


def test_a_leads_opportunities_are_exported_and_erased(admin_user):
    lead = LeadFactory.create()
    OpportunityFactory.create(lead=lead, name="Pilot", value="1200.50", currency="USD")
    data = json.loads("".join(lead_export(lead=lead)))
    assert [(o["name"], o["value"], o["currency"], o["status"]) for o in data["opportunities"]] == [
        ("Pilot", "1200.50", "USD", "open")
    ]
    record = lead_erase(lead=lead, user=admin_user, via="web")
    assert record.rows["opportunities"] == 1
    assert not Opportunity.objects.exists()


def test_the_consent_trail_is_exported_and_erased(admin_user):
    lead = LeadFactory.create(email="eve@x.example")
    other = LeadFactory.create()
    consent_set(
        lead=lead,
        state=ConsentState.PENDING,
        source=ConsentSource.FORM,
        source_detail="Newsletter",
        ip_address="192.0.2.4",
        user_agent="Safari",
        wording="Yes, send me news",
    )
    consent_set(lead=lead, state=ConsentState.WITHDRAWN, source=ConsentSource.USER, user=admin_user)
    consent_set(lead=other, state=ConsentState.PENDING, source=ConsentSource.API)

    data = json.loads("".join(lead_export(lead=lead)))

    assert [
        (c["state"], c["source"], c["source_detail"], c["ip_address"], c["user_agent"])
        for c in data["consent"]
    ] == [
        ("pending", "form", "Newsletter", "192.0.2.4", "Safari"),
        ("withdrawn", "user", "", None, ""),
    ]
    assert data["consent"][0]["wording"] == "Yes, send me news"
    assert data["consent"][1]["created_by"] == admin_user.username
    assert data["lead"]["consent_state"] == "withdrawn"

    record = lead_erase(lead=lead, user=admin_user, via="web")

    assert record.rows["consent_records"] == 2
    assert list(ConsentRecord.objects.values_list("lead_id", flat=True)) == [other.pk]

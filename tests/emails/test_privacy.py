"""The emails sent to a lead are theirs: the send records and what the outbox
kept are in the privacy export and go with the erasure, other leads' stay."""

from __future__ import annotations

import json

import pytest

from emails.models import EmailSend, OutboxMessage
from emails.sending import email_send_queue
from leads.models import ConsentState
from leads.services.privacy import lead_erase, lead_export
from tests.factories import EmailTemplateFactory, LeadFactory, OutboxMessageFactory

pytestmark = pytest.mark.django_db


def test_a_leads_sends_and_outbox_messages_are_exported_and_erased(admin_user):
    template = EmailTemplateFactory.create(name="Welcome")
    lead = LeadFactory.create(email="eve@x.example", consent_state=ConsentState.CONFIRMED)
    other = LeadFactory.create(email="bob@x.example", consent_state=ConsentState.CONFIRMED)
    sent = email_send_queue(key="step:1", lead=lead, template=template, subject_override="Hi Eve")
    skipped = email_send_queue(key="step:2", lead=lead, template=template)
    EmailSend.objects.filter(pk=skipped.pk).update(status="skipped", reason="unsubscribed")
    kept = email_send_queue(key="step:3", lead=other, template=template)
    OutboxMessageFactory.create(
        to=["eve@x.example"], subject="Hi Eve", message_id=f"<{sent.message_id}>"
    )
    theirs = OutboxMessageFactory.create(
        to=["bob@x.example"], subject="Hello Bob", message_id=f"<{kept.message_id}>"
    )
    OutboxMessageFactory.create(to=["admin@acme.example"], subject="Reset", message_id="<r@x>")

    data = json.loads("".join(lead_export(lead=lead)))

    assert [
        (s["template"], s["subject_override"], s["to_email"], s["status"], s["reason"])
        for s in data["email_sends"]
    ] == [
        ("Welcome", "Hi Eve", "eve@x.example", "queued", ""),
        ("Welcome", "", "eve@x.example", "skipped", "unsubscribed"),
    ]
    assert data["email_sends"][0]["message_id"] == sent.message_id
    assert [(m["to"], m["subject"], m["message_id"]) for m in data["outbox_messages"]] == [
        (["eve@x.example"], "Hi Eve", f"<{sent.message_id}>")
    ]
    assert list(data).index("email_sends") > list(data).index("flows")
    assert list(data).index("email_sends") < list(data).index("score_changes")

    record = lead_erase(lead=lead, user=admin_user, via="web")

    assert record.rows["email_sends"] == 2
    assert record.rows["outbox_messages"] == 1
    assert list(EmailSend.objects.values_list("pk", flat=True)) == [kept.pk]
    assert sorted(OutboxMessage.objects.values_list("subject", flat=True)) == [
        "Hello Bob",
        "Reset",
    ]
    assert OutboxMessage.objects.filter(pk=theirs.pk).exists()


def test_a_lead_without_emails_exports_empty_sections(admin_user):
    lead = LeadFactory.create()
    OutboxMessageFactory.create(subject="Reset")

    data = json.loads("".join(lead_export(lead=lead)))

    assert data["email_sends"] == []
    assert data["outbox_messages"] == []
    record = lead_erase(lead=lead, user=admin_user, via="web")
    assert "email_sends" not in record.rows
    assert OutboxMessage.objects.count() == 1

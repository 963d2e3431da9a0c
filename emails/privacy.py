"""A lead's email data for the privacy export and erasure: the send records
and what the outbox kept of the messages sent to them."""

from __future__ import annotations

from typing import Any

from django.db.models import F, Q, QuerySet

from emails.models import EmailSend, OutboxMessage
from leads.models import Lead
from leads.services.privacy import Gone, export_rows


def _outbox_of(lead: Lead) -> QuerySet[OutboxMessage]:
    # The outbox keeps the Message-ID with its angle brackets, the send without.
    ids = list(EmailSend.objects.filter(lead=lead).values_list("message_id", flat=True))
    wanted = Q(message_id__in=ids) | Q(message_id__in=[f"<{i}>" for i in ids])
    return OutboxMessage.objects.filter(wanted) if ids else OutboxMessage.objects.none()


def lead_emails_export(lead: Lead) -> dict[str, list[dict[str, Any]]]:
    return {
        "email_sends": export_rows(
            EmailSend.objects.filter(lead=lead).order_by("id"),
            "kind",
            "subject_override",
            "to_email",
            "status",
            "reason",
            "message_id",
            "created_at",
            "sent_at",
            "delivered_at",
            "opened_at",
            "clicked_at",
            "bounced_at",
            "unsubscribed_at",
            template=F("template__name"),
        ),
        "outbox_messages": export_rows(
            _outbox_of(lead).order_by("id"),
            "from_email",
            "to",
            "subject",
            "text",
            "html",
            "headers",
            "message_id",
            "created_at",
        ),
    }


def lead_emails_erase(lead: Lead, gone: Gone) -> None:
    gone("outbox_messages", _outbox_of(lead))
    gone("email_sends", EmailSend.objects.filter(lead=lead))

"""Reads for the email pages and API."""

from __future__ import annotations

from django.db.models import QuerySet

from emails.models import EmailTemplate, OutboxMessage, Sender
from leads.models import Lead

PREVIEW_LEAD_CHOICES = 50


def templates_listed() -> QuerySet[EmailTemplate]:
    return EmailTemplate.objects.select_related("sender").order_by("name", "id")


def senders_listed() -> QuerySet[Sender]:
    return Sender.objects.order_by("name", "id")


def outbox_listed() -> QuerySet[OutboxMessage]:
    """The outbox, newest first, without the bodies (a list needs none)."""
    return OutboxMessage.objects.defer("text", "html", "headers").order_by("-created_at", "-id")


def preview_lead_choices() -> list[str]:
    """Addresses of the latest leads, offered when choosing whom to preview for."""
    emails = (
        Lead.objects.exclude(email__isnull=True)
        .order_by("-id")
        .values_list("email", flat=True)[:PREVIEW_LEAD_CHOICES]
    )
    return [email for email in emails if email]


def preview_lead(email: str) -> Lead | None:
    """The lead a preview is for: by address, or the latest lead with one."""
    leads = Lead.objects.select_related("owner").exclude(email__isnull=True)
    if email.strip():
        return leads.filter(email=email.strip().lower()).first()
    return leads.order_by("-id").first()

"""Reads for the email pages and API."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from emails.models import EmailSend, EmailTemplate, OutboxMessage, Sender, SendStatus
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


ATTENTION = (SendStatus.HELD, SendStatus.FAILED)


def sends_needing_attention(*, status: str = "") -> QuerySet[EmailSend]:
    """Held and failed sends (or one of the two), newest first, with their lead's
    name and address and their template's name."""
    statuses = [status] if status in ATTENTION else list(ATTENTION)
    return (
        EmailSend.objects.filter(status__in=statuses)
        .select_related("lead", "template")
        .only(
            "id",
            "status",
            "kind",
            "reason",
            "held_for",
            "last_error",
            "attempts",
            "to_email",
            "next_attempt_at",
            "created_at",
            "lead__id",
            "lead__email",
            "lead__first_name",
            "lead__last_name",
            "lead__time_zone",
            "template__id",
            "template__name",
        )
        .order_by("-created_at", "-id")
    )


def attention_counts() -> dict[str, int]:
    """How many sends are held and how many failed."""
    rows = (
        EmailSend.objects.filter(status__in=ATTENTION)
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    counts = {str(status): 0 for status in ATTENTION}
    counts.update({str(status): n for status, n in rows})
    return counts

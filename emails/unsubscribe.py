"""Unsubscribing from marketing email through the link every marketing email
carries (and its one-click ``List-Unsubscribe`` header)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from leads.models import ConsentRecord, ConsentSource, ConsentState, Event, Lead
from leads.services.consent import consent_set
from leads.services.events import events_record

# The events' source: our own link, beside "email:<provider>" from webhooks.
UNSUBSCRIBE_SOURCE = "email:leadflow"


def unsubscribe_record(
    *,
    lead: Lead,
    send_key: str = "",
    one_click: bool = False,
    ip_address: str | None = None,
    user_agent: str = "",
) -> None:
    """Unsubscribe ``lead`` from marketing email: its consent becomes withdrawn
    (with the evidence) at once, so no send after this moment goes out, and an
    ``email.unsubscribed`` event goes through the pipeline (which sets
    ``Lead.unsubscribed``, and which segments and flows see). A second click
    changes nothing and records no second event.

    Unsubscribing from marketing email is withdrawing consent to it: the
    person said no to exactly what the consent was for. Recording it as a
    withdrawn ``ConsentRecord`` keeps the trail whole (when, from which email,
    from where), and the consent rules then keep a later import or API call
    from silently subscribing them again."""
    now = timezone.now()
    with transaction.atomic():
        # The wording is kept in the site's words at the time, as the evidence
        # of what the person clicked.
        record = consent_set(
            lead=lead,
            state=ConsentState.WITHDRAWN,
            source=ConsentSource.UNSUBSCRIBE,
            source_detail=send_key,
            occurred_at=now,
            ip_address=ip_address,
            user_agent=user_agent,
            wording=gettext("Unsubscribe from marketing email"),
        )
        if record is None:
            record = (
                ConsentRecord.objects.filter(lead=lead, state=ConsentState.WITHDRAWN)
                .order_by("-occurred_at", "-id")
                .first()
            )
        # One event per withdrawal: a double click (or the provider's one-click
        # and the person's click) finds the same withdrawal and the same key; a
        # new subscription and a new unsubscribe make a new one.
        key = f"unsubscribe:{lead.pk}:{record.pk if record else 0}"
        properties: dict[str, object] = {"email": lead.email or "", "one_click": one_click}
        if send_key:
            properties["send_key"] = send_key
        events_record(
            events=[
                Event(
                    lead=lead,
                    type="email.unsubscribed",
                    properties=properties,
                    email=lead.email or "",
                    occurred_at=now,
                    received_at=now,
                    source=UNSUBSCRIBE_SOURCE,
                    idempotency_key=key,
                )
            ]
        )

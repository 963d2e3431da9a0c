"""Email activity from providers: django-anymail's normalized tracking events and
our generic JSON endpoint both become ``email.*`` events for the recipient."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from django.utils import timezone

from leads.models import Event
from leads.services.events import events_record

logger = logging.getLogger(__name__)

# Anymail's normalized event types that mean something for a lead.
ANYMAIL_TYPES = {
    "delivered": "email.delivered",
    "opened": "email.opened",
    "clicked": "email.clicked",
    "bounced": "email.bounced",
    "rejected": "email.bounced",
    "complained": "email.complained",
    "unsubscribed": "email.unsubscribed",
}


# Anymail's reasons for a bounce that are about the sending, not the address (a
# server that timed out, blocked the sender or refused the content): soft. The
# rest of anymail's "bounced" (a temporary failure is "deferred" there) and a
# "rejected" for a bounced or invalid address are hard: the address does not work.
SOFT_BOUNCE_REASONS = {"timed_out", "blocked", "spam"}
HARD_REJECT_REASONS = {"bounced", "invalid"}


def bounce_type(*, event_type: str, reject_reason: str | None) -> str:
    """ "hard" or "soft" for one of anymail's ``bounced`` / ``rejected`` events."""
    if event_type == "rejected":
        return "hard" if reject_reason in HARD_REJECT_REASONS else "soft"
    return "soft" if reject_reason in SOFT_BOUNCE_REASONS else "hard"


def email_event_build(
    *,
    type_: str,
    email: str,
    provider: str,
    event_id: str | None,
    occurred_at: dt.datetime | None,
    message_id: str = "",
    campaign: str = "",
    url: str = "",
    extra: dict[str, Any] | None = None,
) -> Event:
    """An unsaved ``email.<type_>`` event. Without a provider event id the key is
    derived from the event's content, so a provider's resend is still one event."""
    email = email.strip().lower()
    now = timezone.now()
    occurred = occurred_at or now
    properties: dict[str, Any] = {"email": email}
    if message_id:
        properties["message_id"] = message_id
    if campaign:
        properties["campaign"] = campaign
    if url:
        properties["url"] = url
    properties.update(extra or {})
    if not event_id:
        basis = "|".join([type_, email, message_id, url, occurred.isoformat()])
        event_id = "sha256:" + hashlib.sha256(basis.encode()).hexdigest()
    return Event(
        type=f"email.{type_}",
        name=campaign[:255],
        properties=properties,
        email=email,
        occurred_at=occurred,
        received_at=now,
        source=f"email:{provider}",
        idempotency_key=event_id[:255],
    )


def anymail_tracking_received(sender: Any, event: Any, esp_name: str, **kwargs: Any) -> None:
    """django-anymail ``tracking`` signal receiver: record the event, or skip types
    that say nothing about the lead (queued, deferred …)."""
    kind = ANYMAIL_TYPES.get(event.event_type)
    if kind is None or not event.recipient:
        return
    extra: dict[str, Any] = {"provider_event": event.event_type}
    if event.tags:
        extra["tags"] = list(event.tags)
    if event.metadata:
        extra["metadata"] = dict(event.metadata)
    if event.description:
        extra["description"] = str(event.description)[:500]
    if event.mta_response:
        extra["mta_response"] = str(event.mta_response)[:500]
    if kind == "email.bounced":
        extra["bounce_type"] = bounce_type(
            event_type=event.event_type, reject_reason=event.reject_reason
        )
    campaign = ""
    if event.tags:
        campaign = str(event.tags[0])
    metadata = event.metadata or {}
    campaign = str(metadata.get("campaign") or metadata.get("email_name") or campaign)
    provider = esp_name.lower().replace(" ", "")
    event_id = event.event_id
    if event_id:
        event_id = f"{kind}:{event_id}"
    record = email_event_build(
        type_=kind.split(".", 1)[1],
        email=event.recipient,
        provider=provider,
        event_id=event_id,
        occurred_at=event.timestamp,
        message_id=event.message_id or "",
        campaign=campaign,
        url=event.click_url or "",
        extra=extra,
    )
    events_record(events=[record])
    logger.info("recorded %s for a recipient from %s", record.type, provider)

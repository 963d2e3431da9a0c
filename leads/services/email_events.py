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

# Opens and clicks are keyed by the message, whoever reports them (our pixel
# and redirect, or the provider's webhook), under one source: one open of a
# message is one event, one click of a link in it is one event.
TRACKED_SOURCE = "email"
TRACKED_TYPES = ("opened", "clicked")

# An open this soon after sending is a prefetch (a scanner, a client fetching
# images on arrival), not a person reading.
MACHINE_OPEN_SECONDS = 5
# User agents of the image proxies that fetch every image on arrival (Apple Mail
# Privacy Protection sends a bare "Mozilla/5.0"; Google and Yahoo name theirs).
MACHINE_AGENTS = ("googleimageproxy", "yahoomailproxy", "ggpht.com", "bot", "crawler", "spider")


def machine_open_reason(*, user_agent: str, seconds_after_send: float | None) -> str:
    """Why an open was a machine's, not a person's ("" when it looks like one).
    The one rule for our pixel and the providers' webhooks alike; flagged opens
    are recorded, and triggers and scoring do not count them."""
    agent = (user_agent or "").strip()
    if seconds_after_send is not None and 0 <= seconds_after_send < MACHINE_OPEN_SECONDS:
        return "prefetch"
    if agent == "Mozilla/5.0":
        return "proxy"
    lowered = agent.lower()
    if any(name in lowered for name in MACHINE_AGENTS):
        return "proxy"
    return ""


def email_event_key(*, type_: str, message_id: str, url: str = "", machine: bool = False) -> str:
    """The idempotency key of an open or a click of one message (under
    ``TRACKED_SOURCE``): a machine's open gets its own, so that the person's
    open after a prefetch is still recorded."""
    message_id = message_id.strip().strip("<>")
    if type_ == "clicked":
        link = hashlib.sha256(url.encode()).hexdigest()[:24]
        return f"email.clicked:{message_id}:{link}"[:255]
    return f"email.opened:{message_id}{':machine' if machine else ''}"[:255]


def machine_flagged(event: Event) -> bool:
    """Whether an email event is a machine's open (see ``machine_open_reason``)."""
    properties = event.properties if isinstance(event.properties, dict) else {}
    return bool(properties.get("machine"))


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
    source = f"email:{provider}"
    if type_ in TRACKED_TYPES and message_id:
        machine = bool(properties.get("machine"))
        event_id = email_event_key(type_=type_, message_id=message_id, url=url, machine=machine)
        source = TRACKED_SOURCE
        properties["provider"] = provider
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
        source=source,
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
    if kind == "email.opened":
        machine = machine_open_reason(user_agent=event.user_agent or "", seconds_after_send=None)
        if machine:
            extra["machine"] = machine
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

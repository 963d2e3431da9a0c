"""What email activity does to the sends it is about: the first delivery, open,
click, bounce and unsubscribe of each send are kept on it (the canvas's
per-step counts read them), whether our tracking or a provider's webhook
reported them."""

from __future__ import annotations

from emails.consent import consent_changed_react
from emails.models import EmailSend
from leads.models import Event, Lead
from leads.services.email_events import machine_flagged

FIELDS = {
    "email.delivered": "delivered_at",
    "email.opened": "opened_at",
    "email.clicked": "clicked_at",
    "email.bounced": "bounced_at",
    "email.unsubscribed": "unsubscribed_at",
    "email.complained": "unsubscribed_at",
}


def email_sends_on_event(*, event: Event, lead: Lead) -> None:
    field = FIELDS.get(event.type)
    if field is None or machine_flagged(event):
        return
    properties = event.properties if isinstance(event.properties, dict) else {}
    send_key = properties.get("send") or properties.get("send_key")
    message_id = str(properties.get("message_id") or "").strip("<>")
    sends = EmailSend.objects.filter(lead_id=lead.pk, **{f"{field}__isnull": True})
    if isinstance(send_key, str) and send_key:
        sends = sends.filter(key=send_key)
    elif message_id:
        sends = sends.filter(provider_message_id=message_id) | sends.filter(message_id=message_id)
    else:
        return
    sends.update(**{field: event.occurred_at})


def emails_on_event(*, event: Event, lead: Lead) -> None:
    """The app's reaction (``REACTION_ORDER``): consent that became pending, then
    the sends an email event is about."""
    consent_changed_react(event=event, lead=lead)
    email_sends_on_event(event=event, lead=lead)

"""The embedded default's mail backend: every message is kept in the outbox
(``OutboxMessage``) instead of leaving the machine, and the "Sent emails" page
shows it exactly as it would have gone out."""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import make_msgid

from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction

from emails.models import OutboxMessage

# Headers Django writes itself; what is left are the message's own (List-Unsubscribe, …).
_OWN_HEADERS = {"content-type", "mime-version", "content-transfer-encoding"}


def _html_part(message: EmailMessage) -> str:
    if message.content_subtype == "html":
        return str(message.body)
    if isinstance(message, EmailMultiAlternatives):
        for content, mimetype in message.alternatives:
            if mimetype == "text/html":
                if isinstance(content, str):
                    return content
                if isinstance(content, bytes):
                    return content.decode()
    return ""


def outbox_message_from(message: EmailMessage) -> OutboxMessage:
    """The outbox row of a message: its headers as they would be sent, its text
    and HTML parts."""
    mime = message.message()
    if not mime.get("Message-ID"):
        # Django adds a Message-ID only when one is missing; keep it stable here.
        del mime["Message-ID"]
        mime["Message-ID"] = make_msgid()
    headers = {name: str(value) for name, value in mime.items() if name.lower() not in _OWN_HEADERS}
    text = "" if message.content_subtype == "html" else str(message.body)
    return OutboxMessage(
        from_email=str(mime.get("From", message.from_email))[:400],
        to=list(message.recipients()),
        subject=str(mime.get("Subject", message.subject))[:998],
        text=text,
        html=_html_part(message),
        headers=headers,
        message_id=str(mime["Message-ID"])[:400],
    )


class OutboxBackend(BaseEmailBackend):
    """Stores each message in the outbox table; nothing is sent anywhere."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        rows = [outbox_message_from(message) for message in email_messages if message.recipients()]
        if not rows:
            return 0
        try:
            with transaction.atomic():
                OutboxMessage.objects.bulk_create(rows)
        except Exception:
            if not self.fail_silently:
                raise
            return 0
        return len(rows)

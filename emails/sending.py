"""Sending the emails flows ask for: a send is recorded once under its key in the
step's transaction, then sent by its own task like any delivery: claimed in a
short transaction, rendered and handed to the mail backend with no transaction
open, recorded. Failures back off (1 min, 5 min, 30 min, 2 h), then fail.

Exactly once. ``sending`` is committed before the backend is called, so a claim
that finds a send still ``sending`` after its claim expired knows a sender died
in the middle, and each backend has its rule for what that means:

* SMTP (Django's backend, or any subclass): the send is recorded ``sent`` after
  the whole message went over the wire but *before* the final ``.`` that asks
  the server to accept it. A sender that dies before that commit leaves an
  unfinished DATA the server drops with the connection, so sending again is
  safe; one that dies after it has the send recorded. What remains is a crash
  between that commit and writing five bytes: the email is lost, never doubled.
* The outbox (the embedded default): the outbox row is looked up by our
  Message-ID; if it is there, the send is recorded, not repeated.
* Providers through django-anymail: sent again with the same Message-ID and,
  where the provider takes one, the same idempotency key
  (``PROVIDER_IDEMPOTENCY``), which makes the provider drop the repeat.

What the rules hold back (the postal address missing, outside the send window,
the lead's frequency cap, the instance's rate) waits as ``held`` with the time
to look again; beat's ``email_sends_due`` sends it then."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import smtplib
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formataddr, make_msgid
from typing import Any

from anymail.exceptions import AnymailRecipientsRefused
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.cache import cache
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.translation import gettext

from emails.consent import email_settings
from emails.links import unsubscribe_url
from emails.models import (
    EmailKind,
    EmailSend,
    EmailSettings,
    EmailTemplate,
    OutboxMessage,
    SendStatus,
)
from emails.rendering import email_render
from emails.rules import frequency_window, send_skip_reason, send_window_opens
from emails.tracking import link_wrapper, open_pixel_url
from leads.models import Lead
from leads.outages import task_send

logger = logging.getLogger(__name__)

SEND_RETRY_DELAYS = (60, 300, 1800, 7200)
# Without a postal address marketing email waits; look again this often.
NO_ADDRESS_RECHECK_SECONDS = 600
OPEN = (SendStatus.QUEUED, SendStatus.HELD, SendStatus.SENDING)
TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"  # noqa: S105

# Providers that drop a repeated request by a key of ours, and the header that
# carries it (anymail passes custom headers through to their APIs).
PROVIDER_IDEMPOTENCY: dict[str, Callable[[EmailSend], tuple[str, str]]] = {
    # Brevo: "idempotencyKey" among the message's headers, a UUID, kept 30 minutes.
    "brevo": lambda send: ("idempotencyKey", str(uuid.uuid5(uuid.NAMESPACE_URL, send.key))),
    "sendinblue": lambda send: ("idempotencyKey", str(uuid.uuid5(uuid.NAMESPACE_URL, send.key))),
}


def claim_seconds() -> int:
    """A claim older than this belonged to a sender that died: an SMTP timeout and
    a provider's API call are well inside it."""
    return int(getattr(settings, "EMAIL_SEND_CLAIM_SECONDS", 120))


def email_send_queue(
    *,
    key: str,
    lead: Lead,
    template: EmailTemplate,
    subject_override: str = "",
    flow_id: int | None = None,
    node_id: str = "",
    require_double_opt_in: bool | None = None,
) -> EmailSend:
    """Record an email to ``lead`` once per ``key``: skipped now with the reason
    (``emails.rules.send_skip_reason``), or queued and sent after commit."""
    if require_double_opt_in is None:
        require_double_opt_in = email_settings().require_double_opt_in
    reason = send_skip_reason(
        lead=lead, kind=template.kind, require_double_opt_in=require_double_opt_in
    )
    now = timezone.now()
    send, created = EmailSend.objects.get_or_create(
        key=key,
        defaults={
            "lead": lead,
            "template": template,
            "kind": template.kind,
            "subject_override": subject_override,
            "flow_id": flow_id,
            "node_id": node_id,
            "to_email": lead.email or "",
            "status": SendStatus.SKIPPED if reason else SendStatus.QUEUED,
            "reason": (reason or "")[:300],
            "message_id": make_msgid(domain=_domain(template)).strip("<>"),
            "token": get_random_string(32, TOKEN_CHARS),
            "next_attempt_at": None if reason else now,
        },
    )
    if created and send.status == SendStatus.QUEUED:
        # Whether the kick's message leaves or not, the send is due: beat's
        # email_sends_due finds it within seconds if no drain does.
        transaction.on_commit(email_sends_kick)
    return send


def _domain(template: EmailTemplate | None) -> str:
    address = template.sender.address if template is not None and template.sender else ""
    address = address or settings.DEFAULT_FROM_EMAIL
    return address.rpartition("@")[2] or "localhost"


@dataclass
class Claimed:
    send: EmailSend
    lead: Lead
    template: EmailTemplate
    postal_address: str


# A drain takes up to this many due sends at once: their claims share one
# transaction and their messages one SMTP session, so an email costs about one
# statement of its own (its "sent" record) instead of a transaction of ten.
CLAIM_BATCH = 20


def email_sends_claim(
    *, limit: int = CLAIM_BATCH, now: dt.datetime | None = None
) -> tuple[list[Claimed], bool]:
    """Take up to ``limit`` sends whose time has come, oldest first, in one short
    transaction, after the rules at send time: a send the lead may no longer
    receive is skipped, one a rule holds back is held until its time; the rest
    are marked ``sending`` and returned, with whether any send was due at all.

    Leads are locked before their sends, as event processing does, and both
    skip what is locked: a busy lead's send is left for the next round, and two
    claimers never wait on each other."""
    now = now or timezone.now()
    fresh = now - dt.timedelta(seconds=claim_seconds())
    due = (
        Q(status__in=OPEN)
        & ~Q(status=SendStatus.SENDING, claimed_at__gt=fresh)
        & (Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True))
    )
    candidates = list(
        EmailSend.objects.filter(due)
        .order_by("next_attempt_at", "id")
        .values_list("pk", "lead_id")[:limit]
    )
    if not candidates:
        return [], False
    config = email_settings()
    with transaction.atomic():
        leads = {
            lead.pk: lead
            for lead in Lead.objects.select_for_update(skip_locked=True)
            .filter(pk__in={lead_id for _, lead_id in candidates})
            .order_by("pk")
        }
        sends = list(
            EmailSend.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("template__sender")
            .filter(due, pk__in=[pk for pk, lead_id in candidates if lead_id in leads])
            .order_by("id")
        )
        counts = _marketing_counts(sends=sends, config=config, now=now)
        claimed = [
            item
            for send in sends
            if (item := _decide(send, leads[send.lead_id], config=config, now=now, counts=counts))
        ]
        claimed = _within_rate(claimed, config=config, now=now)
        for item in claimed:
            item.send.status = SendStatus.SENDING
            item.send.reason = ""
            item.send.attempts += 1
            item.send.claimed_at = now
            # Beat looks at it again if this claim is never settled.
            item.send.next_attempt_at = now + dt.timedelta(seconds=claim_seconds())
            item.send.to_email = item.lead.email or ""
        if claimed:
            EmailSend.objects.bulk_update(
                [item.send for item in claimed],
                ["status", "reason", "attempts", "claimed_at", "next_attempt_at", "to_email"],
            )
    return claimed, True


def _decide(
    send: EmailSend, lead: Lead, *, config: EmailSettings, now: dt.datetime, counts: _Counts
) -> Claimed | None:
    """One send of a claim: skipped, held, failed (recorded here; None), or to go."""
    if send.status == SendStatus.SENDING and _already_out(send):
        # The backend has it: a sender died before recording it.
        _sent_update(send, now=now, provider="outbox", provider_id=send.message_id)
        return None
    if send.attempts > len(SEND_RETRY_DELAYS):
        _fail(send, gettext("The sender stopped during the last try."))
        return None
    template = send.template
    if template is None:
        _fail(send, gettext("The email's template was deleted."))
        return None
    skip = send_skip_reason(
        lead=lead, kind=send.kind, require_double_opt_in=config.require_double_opt_in
    )
    if skip is not None:
        _finish(send, SendStatus.SKIPPED, skip)
        return None
    held = _hold(send=send, lead=lead, config=config, now=now, counts=counts)
    if held is not None:
        reason, until = held
        send.status, send.reason, send.next_attempt_at = SendStatus.HELD, reason[:300], until
        send.claimed_at = None
        send.save(update_fields=["status", "reason", "next_attempt_at", "claimed_at"])
        return None
    if send.kind == EmailKind.MARKETING:
        counts.sent[lead.pk] = [*counts.sent.get(lead.pk, []), now]
    return Claimed(send=send, lead=lead, template=template, postal_address=config.postal_address)


@dataclass
class _Counts:
    """Each lead's marketing emails sent (or being sent) in the cap's period."""

    sent: dict[int, list[dt.datetime]]


def _marketing_counts(
    *, sends: list[EmailSend], config: EmailSettings, now: dt.datetime
) -> _Counts:
    leads = {send.lead_id for send in sends if send.kind == EmailKind.MARKETING}
    if not leads or not config.frequency_cap:
        return _Counts(sent={})
    since = now - frequency_window(config.frequency_period)
    rows = (
        EmailSend.objects.filter(lead_id__in=leads, kind=EmailKind.MARKETING)
        .filter(Q(status=SendStatus.SENT, sent_at__gte=since) | Q(status=SendStatus.SENDING))
        .exclude(pk__in=[send.pk for send in sends])
        .values_list("lead_id", "sent_at")
    )
    sent: dict[int, list[dt.datetime]] = {}
    for lead_id, sent_at in rows:
        sent.setdefault(lead_id, []).append(sent_at or now)
    return _Counts(sent=sent)


def _hold(
    *, send: EmailSend, lead: Lead, config: EmailSettings, now: dt.datetime, counts: _Counts
) -> tuple[str, dt.datetime] | None:
    """What holds the send back now, in words, and until when; None: it may go
    (the rate is checked for the batch, ``_within_rate``)."""
    marketing = send.kind == EmailKind.MARKETING
    if marketing and not config.postal_address.strip():
        return (
            gettext(
                "Held: marketing email needs the sender's postal address in its footer; "
                "add it in the email settings."
            ),
            now + dt.timedelta(seconds=NO_ADDRESS_RECHECK_SECONDS),
        )
    opens = send_window_opens(
        now=now,
        time_zone=lead.time_zone,
        start=config.send_window_start,
        end=config.send_window_end,
    )
    if opens is not None:
        return gettext("Held until the send window opens in the lead's time zone."), opens
    if marketing and config.frequency_cap:
        times = sorted(counts.sent.get(lead.pk, []))
        if len(times) >= config.frequency_cap:
            # When the oldest send counted leaves the period, one more may go.
            window = frequency_window(config.frequency_period)
            until = times[len(times) - config.frequency_cap] + window
            return gettext("Held: the lead reached the limit of marketing emails."), until
    return None


def _within_rate(
    claimed: list[Claimed], *, config: EmailSettings, now: dt.datetime
) -> list[Claimed]:
    """The sends the instance's rate per minute lets go now (a counter per minute
    in the cache, shared by every worker with Redis); the others are held until
    the next minute."""
    if not claimed or not config.sends_per_minute:
        return claimed
    minute = int(now.timestamp() // 60)
    rate_key = f"emails:sent:{minute}"
    cache.add(rate_key, 0, timeout=180)
    try:
        after = cache.incr(rate_key, len(claimed))
    except ValueError:  # expired between the two calls
        cache.set(rate_key, len(claimed), timeout=180)
        after = len(claimed)
    allowed = max(0, config.sends_per_minute - (after - len(claimed)))
    if allowed >= len(claimed):
        return claimed
    until = dt.datetime.fromtimestamp((minute + 1) * 60, tz=dt.UTC)
    reason = gettext("Held: the sending rate per minute is reached.")
    for item in claimed[allowed:]:
        send = item.send
        send.status, send.reason, send.claimed_at = SendStatus.HELD, reason, None
        # Spread over the next minute's first seconds, not all at its start.
        send.next_attempt_at = until + dt.timedelta(milliseconds=send.pk % 5000)
        send.save(update_fields=["status", "reason", "next_attempt_at", "claimed_at"])
    return claimed[:allowed]


def _already_out(send: EmailSend) -> bool:
    """Whether the backend has this send although it was not recorded: only the
    outbox can be asked."""
    ids = (send.message_id, f"<{send.message_id}>")
    return OutboxMessage.objects.filter(message_id__in=ids).exists()


def _finish(send: EmailSend, status: str, reason: str) -> None:
    send.status, send.reason = status, reason[:300]
    send.claimed_at = send.next_attempt_at = None
    send.save(update_fields=["status", "reason", "claimed_at", "next_attempt_at"])


def _fail(send: EmailSend, error: str) -> None:
    send.status, send.last_error = SendStatus.FAILED, error[:2000]
    send.claimed_at = send.next_attempt_at = None
    send.save(update_fields=["status", "last_error", "claimed_at", "next_attempt_at"])


def email_message_build(*, claimed: Claimed) -> AnymailMessage:
    """The email as it goes out: rendered for the lead, with its tracking, our
    Message-ID, and on marketing email the unsubscribe link and headers (RFC 8058
    one-click) and the postal address."""
    send, lead, template = claimed.send, claimed.lead, claimed.template
    marketing = send.kind == EmailKind.MARKETING
    unsubscribe = unsubscribe_url(lead=lead, send_key=send.key) if marketing else None
    rendered = email_render(
        template=template,
        lead=lead,
        unsubscribe_url=unsubscribe,
        link_wrap=link_wrapper(send=send),
        open_pixel_url=open_pixel_url(send=send),
        subject_override=send.subject_override,
        postal_address=claimed.postal_address if marketing else None,
    )
    headers = {"Message-ID": f"<{send.message_id}>", "X-Leadflow-Send": send.key}
    if unsubscribe:
        targets = [f"<{unsubscribe}>"]
        mailto = getattr(settings, "EMAIL_UNSUBSCRIBE_MAILTO", "")
        if mailto:
            targets.append(f"<mailto:{mailto}?subject=unsubscribe%20{send.token}>")
        headers["List-Unsubscribe"] = ", ".join(targets)
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    sender = template.sender
    message = AnymailMessage(
        subject=rendered.subject,
        body=rendered.text,
        from_email=formataddr((sender.name, sender.address))
        if sender
        else settings.DEFAULT_FROM_EMAIL,
        to=[send.to_email],
        reply_to=[sender.reply_to] if sender and sender.reply_to else None,
        headers=headers,
        metadata={"send": send.key},
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


DRAIN_KEY = "emails:drain-queued"
# A drain hands over to a new one after this long, so that one task never holds
# a worker's child for the length of a big send.
DRAIN_SECONDS = 30


def email_sends_kick() -> None:
    """Have a worker drain the due sends, unless a drain is queued and not yet
    started (it will see what is committed now). The drain drops the key when
    it starts; a lost message or key is covered by beat (``email_sends_due``)."""
    from emails.tasks import email_sends_drain_task

    if cache.add(DRAIN_KEY, 1, timeout=10) and not task_send(email_sends_drain_task):
        cache.delete(DRAIN_KEY)


def email_sends_drain(*, seconds: float = DRAIN_SECONDS) -> list[str]:
    """Claim due sends a batch at a time and send them until none is due (or the
    time is up: then a new drain goes on); each send's status after its try."""
    cache.delete(DRAIN_KEY)
    deadline = time.monotonic() + seconds
    outcomes: list[str] = []
    helped = False
    while True:
        claimed, found = email_sends_claim()
        if not found:
            return outcomes
        if len(claimed) == CLAIM_BATCH and not helped:
            # More than a batch is due: another worker child may help.
            email_sends_kick()
            helped = True
        outcomes += [_send_one(item) for item in claimed]
        if time.monotonic() > deadline:
            email_sends_kick()
            return outcomes
        if not claimed:
            # Due sends, all in another claimer's hands or their leads busy.
            time.sleep(0.05)


def _send_one(claimed: Claimed) -> str:
    send = claimed.send
    claimed_at = send.claimed_at
    try:
        message = email_message_build(claimed=claimed)
        _deliver(send, message)
    except _ClaimLost:
        return ""
    except Exception as exc:
        logger.warning("email %s not sent: %s", send.key, exc)
        return _record_failure(send, claimed_at, exc)
    return SendStatus.SENT


class _ClaimLost(Exception):
    """Another sender took the send over after this claim expired."""


_connections: dict[tuple[Any, ...], BaseEmailBackend] = {}


def _connection() -> BaseEmailBackend:
    """The mail backend, kept open per process between sends (one SMTP session
    for many emails)."""
    key = (settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT)
    connection = _connections.get(key)
    if connection is None:
        connection = _connections[key] = get_connection(fail_silently=False)
    return connection


def _connection_drop() -> None:
    for connection in _connections.values():
        with contextlib.suppress(Exception):  # a broken connection is dropped anyway
            connection.close()
    _connections.clear()


def _deliver(send: EmailSend, message: AnymailMessage) -> None:
    connection = _connection()
    claimed_at = send.claimed_at

    def record(provider: str, provider_id: str) -> None:
        if not _sent_update(
            send,
            now=timezone.now(),
            provider=provider,
            provider_id=provider_id,
            claimed_at=claimed_at,
        ):
            raise _ClaimLost

    if isinstance(connection, SMTPBackend):
        try:
            _smtp_send(connection, message, before_accept=lambda: record("smtp", send.message_id))
        except Exception:
            _connection_drop()
            raise
        return
    esp = str(getattr(connection, "esp_name", "") or "").lower().replace(" ", "")
    idempotency = PROVIDER_IDEMPOTENCY.get(esp)
    if idempotency is not None:
        name, value = idempotency(send)
        message.extra_headers[name] = value
    connection.send_messages([message])
    status = getattr(message, "anymail_status", None)
    provider_id = str(getattr(status, "message_id", "") or "") if status is not None else ""
    record(esp or "outbox", provider_id or send.message_id)


def _smtp_send(
    connection: SMTPBackend, message: AnymailMessage, *, before_accept: Callable[[], None]
) -> None:
    """One message over the backend's SMTP session, calling ``before_accept`` after
    the whole message was sent and before the final ``.``: a failure there leaves
    DATA unfinished and the connection closed, so the server drops the message."""
    if connection.connection is None:
        connection.open()
        sock = getattr(connection.connection, "sock", None)
        if sock is not None:
            # The final "." goes in a write of its own after the record: with
            # Nagle's algorithm it would wait for the server's delayed ACK of the
            # body (40 ms a message here).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    smtp = connection.connection
    assert smtp is not None
    encoding = message.encoding or settings.DEFAULT_CHARSET
    from_email = sanitize_address(message.from_email, encoding)
    recipients = [sanitize_address(addr, encoding) for addr in message.recipients()]
    data = message.message().as_bytes(linesep="\r\n")
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(from_email)
    if code != 250:
        smtp.rset()
        raise smtplib.SMTPSenderRefused(code, reply, from_email)
    refused = {}
    for recipient in recipients:
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
    if len(refused) == len(recipients):
        smtp.rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    code, reply = smtp.docmd("data")
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    body = smtplib._quote_periods(data)  # type: ignore[attr-defined]
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    smtp.send(body)
    try:
        before_accept()
    except BaseException:
        # Leave DATA unfinished: drop the socket without QUIT (a QUIT now would be
        # read as part of the message, and its reply never come), so the server
        # discards what it got.
        smtp.close()
        connection.connection = None
        raise
    smtp.send(b".\r\n")
    code, reply = smtp.getreply()
    if code != 250:
        raise _Rejected(code, reply)


class _Rejected(smtplib.SMTPDataError):
    """The server refused the message after it was recorded sent."""


def _sent_update(
    send: EmailSend,
    *,
    now: dt.datetime,
    provider: str,
    provider_id: str,
    claimed_at: dt.datetime | None = None,
) -> bool:
    rows = EmailSend.objects.filter(pk=send.pk, status=SendStatus.SENDING)
    if claimed_at is not None:
        rows = rows.filter(claimed_at=claimed_at)
    updated = rows.update(
        status=SendStatus.SENT,
        sent_at=now,
        provider=provider[:40],
        provider_message_id=provider_id[:255],
        last_error="",
        next_attempt_at=None,
    )
    send.status, send.sent_at = SendStatus.SENT, now
    return updated == 1


def _permanent(exc: Exception) -> bool:
    if isinstance(exc, AnymailRecipientsRefused):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and code >= 500


def _record_failure(send: EmailSend, claimed_at: dt.datetime | None, exc: Exception) -> str:
    now = timezone.now()
    error = str(exc) or type(exc).__name__
    with transaction.atomic():
        if isinstance(exc, _Rejected):
            # Recorded sent just before the server said no: it was not sent.
            EmailSend.objects.filter(
                pk=send.pk, status=SendStatus.SENT, claimed_at=claimed_at
            ).update(status=SendStatus.SENDING, sent_at=None, provider="", provider_message_id="")
        current = (
            EmailSend.objects.select_for_update()
            .filter(pk=send.pk, status=SendStatus.SENDING, claimed_at=claimed_at)
            .first()
        )
        if current is None:  # another sender took over after this claim expired
            return ""
        if _permanent(exc) or current.attempts > len(SEND_RETRY_DELAYS):
            _fail(current, error)
            return SendStatus.FAILED
        current.status = SendStatus.QUEUED
        current.last_error = error[:2000]
        current.claimed_at = None
        current.next_attempt_at = now + dt.timedelta(
            seconds=SEND_RETRY_DELAYS[current.attempts - 1]
        )
        current.save(update_fields=["status", "last_error", "claimed_at", "next_attempt_at"])
    return SendStatus.QUEUED


def email_sends_due() -> int:
    """From beat: how many sends are due (new ones no drain took, holds that
    end, retries, claims that expired); a drain is kicked when there are any."""
    due = EmailSend.objects.filter(status__in=OPEN, next_attempt_at__lte=timezone.now()).count()
    if due:
        cache.delete(DRAIN_KEY)
        email_sends_kick()
    return due

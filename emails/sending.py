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
  safe; one that dies after it has the send recorded. A batch's messages go
  out side by side on several sessions (``EMAIL_SMTP_SESSIONS``), each up to
  its final ".", and one statement records them all: a sender killed before it
  leaves every one unfinished. What remains is a crash between that statement
  and writing the final dots (a few writes): those emails are lost, never
  doubled.
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
import functools
import logging
import smtplib
import socket
import time
import uuid
import weakref
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
from django.db.models import F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
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
    HoldReason,
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
# transaction, and over SMTP their messages go out side by side on several
# sessions with one statement recording a group of them sent (``smtp_sessions``).
# Forty rather than twenty: a claim transaction per forty emails took the worker
# from 0.48 to 0.56 of a raw smtplib loop's rate (bench/email_send.py, quiet).
CLAIM_BATCH = 40


def email_sends_claim(
    *, limit: int = CLAIM_BATCH, now: dt.datetime | None = None
) -> tuple[list[Claimed], bool]:
    """Take up to ``limit`` sends whose time has come, oldest first, in one short
    transaction, after the rules at send time: a send the lead may no longer
    receive is skipped, one a rule holds back is held until its time; the rest
    are marked ``sending`` and returned, with whether any due send was free to
    take.

    Sends and leads are locked skipping what is locked: a busy lead's send is
    left for a later round (beat's ``email_sends_due`` kicks one), and two
    claimers never wait on each other nor take the same send."""
    now = now or timezone.now()
    fresh = now - dt.timedelta(seconds=claim_seconds())
    due = (
        Q(status__in=OPEN)
        & ~Q(status=SendStatus.SENDING, claimed_at__gt=fresh)
        & (Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True))
    )
    config = email_settings()
    with transaction.atomic():
        # Each send with its lead, both locked, skipping what is locked: another
        # claimer's sends, and leads whose events are being processed (their
        # sends wait for the next round). Parallel drains so each take a batch
        # of their own instead of all reaching for the oldest ones. Nothing
        # here waits, so it cannot deadlock with event processing.
        sends = list(
            EmailSend.objects.select_for_update(skip_locked=True, of=("self", "lead"))
            .select_related("template__sender", "lead")
            .filter(due)
            .order_by("next_attempt_at", "id")[:limit]
        )
        if not sends:
            return [], False
        leads = {send.lead_id: send.lead for send in sends}
        counts = _marketing_counts(sends=sends, config=config, now=now)
        claimed = [
            item
            for send in sends
            if (item := _decide(send, leads[send.lead_id], config=config, now=now, counts=counts))
        ]
        claimed = _within_rate(claimed, config=config, now=now)
        until = now + dt.timedelta(seconds=claim_seconds())
        for item in claimed:
            item.send.status = SendStatus.SENDING
            item.send.reason = item.send.held_for = ""
            item.send.attempts += 1
            item.send.claimed_at = now
            # Beat looks at it again if this claim is never settled.
            item.send.next_attempt_at = until
            item.send.to_email = item.lead.email or ""
        if claimed:
            # One plain UPDATE: bulk_update's CASE per field and row took 7 ms of
            # Python a batch, more than the statement.
            EmailSend.objects.filter(pk__in=[item.send.pk for item in claimed]).update(
                status=SendStatus.SENDING,
                reason="",
                held_for="",
                attempts=F("attempts") + 1,
                claimed_at=now,
                next_attempt_at=until,
                to_email=Coalesce(
                    Subquery(Lead.objects.filter(pk=OuterRef("lead_id")).values("email")[:1]),
                    Value(""),
                ),
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
        held_for, reason, until = held
        send.status, send.reason, send.next_attempt_at = SendStatus.HELD, reason[:300], until
        send.held_for, send.claimed_at = held_for, None
        send.save(update_fields=["status", "reason", "held_for", "next_attempt_at", "claimed_at"])
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
) -> tuple[str, str, dt.datetime] | None:
    """What holds the send back now, in words, and until when; None: it may go
    (the rate is checked for the batch, ``_within_rate``)."""
    marketing = send.kind == EmailKind.MARKETING
    if marketing and not config.postal_address.strip():
        return (
            HoldReason.POSTAL_ADDRESS,
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
    if opens is not None and not send.send_window_waived:
        return (
            HoldReason.SEND_WINDOW,
            gettext("Held until the send window opens in the lead's time zone."),
            opens,
        )
    if marketing and config.frequency_cap:
        times = sorted(counts.sent.get(lead.pk, []))
        if len(times) >= config.frequency_cap:
            # When the oldest send counted leaves the period, one more may go.
            window = frequency_window(config.frequency_period)
            until = times[len(times) - config.frequency_cap] + window
            return (
                HoldReason.FREQUENCY_CAP,
                gettext("Held: the lead reached the limit of marketing emails."),
                until,
            )
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
        send.held_for = HoldReason.RATE
        # Spread over the next minute's first seconds, not all at its start.
        send.next_attempt_at = until + dt.timedelta(milliseconds=send.pk % 5000)
        send.save(update_fields=["status", "reason", "held_for", "next_attempt_at", "claimed_at"])
    return claimed[:allowed]


def _already_out(send: EmailSend) -> bool:
    """Whether the backend has this send although it was not recorded: only the
    outbox can be asked."""
    ids = (send.message_id, f"<{send.message_id}>")
    return OutboxMessage.objects.filter(message_id__in=ids).exists()


def _finish(send: EmailSend, status: str, reason: str) -> None:
    send.status, send.reason, send.held_for = status, reason[:300], ""
    send.claimed_at = send.next_attempt_at = None
    send.save(update_fields=["status", "reason", "held_for", "claimed_at", "next_attempt_at"])


def _fail(send: EmailSend, error: str) -> None:
    send.status, send.last_error, send.held_for = SendStatus.FAILED, error[:2000], ""
    send.claimed_at = send.next_attempt_at = None
    send.save(update_fields=["status", "last_error", "held_for", "claimed_at", "next_attempt_at"])


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
        outcomes += _send_claimed(claimed)
        if time.monotonic() > deadline:
            email_sends_kick()
            return outcomes


def _send_claimed(claimed: list[Claimed]) -> list[str]:
    """Send a claim's emails; each one's status after its try, in order."""
    if not claimed:
        return []
    if not isinstance(_connection(), SMTPBackend):
        return [_send_one(item) for item in claimed]
    size = smtp_sessions()
    outcomes: list[str] = []
    for start in range(0, len(claimed), size):
        outcomes += _smtp_send_group(claimed[start : start + size])
    return outcomes


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


def smtp_sessions() -> int:
    """How many SMTP sessions a sender keeps open and fills side by side."""
    return max(1, int(getattr(settings, "EMAIL_SMTP_SESSIONS", 10)))


# Per process, per backend configuration: the open mail backends (over SMTP, one
# per session), kept between sends.
_connections: dict[tuple[Any, ...], list[BaseEmailBackend]] = {}


def _backend_key() -> tuple[Any, ...]:
    return (settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT)


def _connection() -> BaseEmailBackend:
    """The mail backend, kept open per process between sends."""
    return _smtp_sessions_get(1)[0]


def _smtp_sessions_get(count: int) -> list[BaseEmailBackend]:
    """``count`` backends of the current configuration, made when first needed;
    an SMTP one opens its session when a message needs it."""
    pool = _connections.setdefault(_backend_key(), [])
    while len(pool) < count:
        pool.append(get_connection(fail_silently=False))
    return pool[:count]


def _connection_drop() -> None:
    for pool in _connections.values():
        for connection in pool:
            with contextlib.suppress(Exception):  # a broken connection is dropped anyway
                connection.close()
    _connections.clear()


def _deliver(send: EmailSend, message: AnymailMessage) -> None:
    """One message through a backend that is not SMTP (the outbox, a provider)."""
    connection = _connection()
    claimed_at = send.claimed_at
    esp = str(getattr(connection, "esp_name", "") or "").lower().replace(" ", "")
    idempotency = PROVIDER_IDEMPOTENCY.get(esp)
    if idempotency is not None:
        name, value = idempotency(send)
        message.extra_headers[name] = value
    connection.send_messages([message])
    status = getattr(message, "anymail_status", None)
    provider_id = str(getattr(status, "message_id", "") or "") if status is not None else ""
    if not _sent_update(
        send,
        now=timezone.now(),
        provider=esp or "outbox",
        provider_id=provider_id or send.message_id,
        claimed_at=claimed_at,
    ):
        raise _ClaimLost


def _smtp_send_group(group: list[Claimed]) -> list[str]:
    """Up to ``smtp_sessions()`` claimed sends, each on a session of its own: every
    message goes over the wire up to its final ".", one statement records them
    all sent, then the final dots go. A sender killed before that statement
    leaves each session's DATA unfinished, and the server drops them all."""
    outcomes: dict[int, str] = {}
    built: list[tuple[Claimed, AnymailMessage]] = []
    for item in group:
        try:
            built.append((item, email_message_build(claimed=item)))
        except Exception as exc:
            logger.warning("email %s not sent: %s", item.send.key, exc)
            outcomes[item.send.pk] = _record_failure(item.send, item.send.claimed_at, exc)
    sessions = _smtp_sessions_get(len(built))

    def record(ready: list[int]) -> set[int]:
        sends = [built[index][0].send for index in ready]
        recorded = _sent_update_many(sends, now=timezone.now())
        return {index for index in ready if built[index][0].send.pk in recorded}

    errors = _smtp_send_many(
        [(session, message) for session, (_, message) in zip(sessions, built, strict=True)],
        before_accept=record,
    )
    for (item, _message), error in zip(built, errors, strict=True):
        send = item.send
        if error is None:
            outcomes[send.pk] = SendStatus.SENT
        elif isinstance(error, _ClaimLost):
            outcomes[send.pk] = ""
        else:
            logger.warning("email %s not sent: %s", send.key, error)
            outcomes[send.pk] = _record_failure(send, send.claimed_at, error)
    return [outcomes[item.send.pk] for item in group]


def _smtp_send(
    connection: SMTPBackend, message: AnymailMessage, *, before_accept: Callable[[], None]
) -> None:
    """One message over the backend's SMTP session, calling ``before_accept`` after
    the whole message was sent and before the final ``.``: a failure there leaves
    DATA unfinished and the connection closed, so the server drops the message."""

    def accept(ready: list[int]) -> set[int]:
        before_accept()
        return set(ready)

    [error] = _smtp_send_many([(connection, message)], before_accept=accept)
    if error is not None:
        raise error


def _smtp_send_many(
    outgoing: list[tuple[BaseEmailBackend, AnymailMessage]],
    *,
    before_accept: Callable[[list[int]], set[int]],
) -> list[Exception | None]:
    """Each message over its own SMTP session, the sessions in step: a command
    goes out on every session before any reply is read, so a group costs the
    round trips of one message, not of each.

    ``before_accept`` gets the indexes of the messages that went over the wire
    whole and returns those whose final ``.`` may go; the others' sessions are
    dropped with DATA unfinished. If it raises, every session is dropped so and
    it propagates. What comes back is, per message, None (the server accepted
    it) or what went wrong: ``_ClaimLost`` when ``before_accept`` left it out,
    ``_Rejected`` when the server refused it after the final ".", any other
    error before it."""
    run = _Lockstep(outgoing)
    run.start()
    run.step(
        lambda i: run.smtp(i).putcmd("mail", f"FROM:{smtplib.quoteaddr(run.envelopes[i][0])}"),
        lambda i: run.expect(i, (250,), smtplib.SMTPSenderRefused, run.envelopes[i][0]),
    )
    run.recipients()
    run.step(
        lambda i: run.smtp(i).putcmd("data"),
        lambda i: run.expect(i, (354,), smtplib.SMTPDataError),
    )
    run.step(lambda i: run.smtp(i).send(run.body(i)), lambda i: None)
    if not run.live:
        return run.errors
    try:
        accepted = before_accept(list(run.live))
    except BaseException:
        # Leave DATA unfinished: drop the sockets without QUIT (a QUIT now would
        # be read as part of the message, and its reply never come), so the
        # server discards what it got.
        for index in list(run.live):
            run.drop(index, _ClaimLost())
        raise
    for index in [index for index in run.live if index not in accepted]:
        run.drop(index, _ClaimLost())
    # Every final "." is written before any reply is read: the time between the
    # record and the last dot, when a crash loses emails, stays a few writes.
    run.step(
        lambda i: run.smtp(i).send(b".\r\n"),
        lambda i: run.expect(i, (250,), _Rejected),
    )
    return run.errors


class _Lockstep:
    """The state of ``_smtp_send_many``: which sessions are still going, and
    what went wrong with the others."""

    def __init__(self, outgoing: list[tuple[BaseEmailBackend, AnymailMessage]]) -> None:
        self.outgoing = outgoing
        self.errors: list[Exception | None] = [None] * len(outgoing)
        self.live: list[int] = []
        self.envelopes: dict[int, tuple[str, list[str], bytes]] = {}

    def start(self) -> None:
        """Each message's envelope and bytes, and its session open."""
        for index, (connection, message) in enumerate(self.outgoing):
            assert isinstance(connection, SMTPBackend)
            try:
                encoding = message.encoding or settings.DEFAULT_CHARSET
                self.envelopes[index] = (
                    _sanitized(message.from_email, encoding),
                    [sanitize_address(address, encoding) for address in message.recipients()],
                    message.message().as_bytes(linesep="\r\n"),
                )
                _smtp_open(connection)
            except Exception as exc:
                self.errors[index] = exc
                _smtp_drop(connection)
            else:
                self.live.append(index)

    def smtp(self, index: int) -> smtplib.SMTP:
        session = self.outgoing[index][0]
        assert isinstance(session, SMTPBackend)
        assert session.connection is not None
        return session.connection

    def drop(self, index: int, error: Exception) -> None:
        self.errors[index] = error
        self.live.remove(index)
        _smtp_drop(self.outgoing[index][0])

    def step(
        self,
        command: Callable[[int], object],
        reply: Callable[[int], object],
        indexes: list[int] | None = None,
    ) -> None:
        """``command`` on every live session (or those of ``indexes``), then
        ``reply`` on each; a session that fails either is dropped."""
        for phase in (command, reply):
            for index in [i for i in (self.live if indexes is None else indexes) if i in self.live]:
                try:
                    phase(index)
                except Exception as exc:
                    self.drop(index, exc)

    def expect(
        self, index: int, codes: tuple[int, ...], error: type[Exception], *args: str
    ) -> None:
        code, reply = self.smtp(index).getreply()
        if code not in codes:
            raise error(code, reply, *args)

    def recipients(self) -> None:
        """RCPT TO for each recipient. One command per session at a time: more
        would need the server's PIPELINING."""
        refused: dict[int, dict[str, tuple[int, bytes]]] = {index: {} for index in self.live}
        most = max((len(self.envelopes[index][1]) for index in self.live), default=0)
        for n in range(most):
            taking = [index for index in self.live if n < len(self.envelopes[index][1])]

            def reply(index: int, n: int = n) -> None:
                code, answer = self.smtp(index).getreply()
                if code not in (250, 251):
                    refused[index][self.envelopes[index][1][n]] = (code, answer)

            def command(index: int, n: int = n) -> None:
                address = smtplib.quoteaddr(self.envelopes[index][1][n])
                self.smtp(index).putcmd("rcpt", f"TO:{address}")

            self.step(command, reply, taking)
        for index in list(self.live):
            if len(refused[index]) == len(self.envelopes[index][1]):
                self.drop(index, smtplib.SMTPRecipientsRefused(refused[index]))

    def body(self, index: int) -> bytes:
        quoted: bytes = smtplib._quote_periods(self.envelopes[index][2])  # type: ignore[attr-defined]
        return quoted if quoted.endswith(b"\r\n") else quoted + b"\r\n"


# A session idle longer than this may have been closed by the server (many
# close after 30 s to 5 min); it is opened afresh rather than found broken in
# the middle of a message, which would put that send off by a retry's delay.
SMTP_IDLE_SECONDS = 20
_used: weakref.WeakKeyDictionary[SMTPBackend, float] = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=64)
def _sanitized(address: str, encoding: str) -> str:
    """A sender's address as SMTP takes it: the same few senders every time, and
    parsing one costs a millisecond."""
    return sanitize_address(address, encoding)


def _smtp_open(connection: SMTPBackend) -> None:
    now = time.monotonic()
    if connection.connection is not None and now - _used.get(connection, now) > SMTP_IDLE_SECONDS:
        _smtp_drop(connection)
    _used[connection] = now
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
    smtp.ehlo_or_helo_if_needed()


def _smtp_drop(connection: BaseEmailBackend) -> None:
    """Close a session without QUIT: it may be in the middle of a message."""
    assert isinstance(connection, SMTPBackend)
    smtp = connection.connection
    connection.connection = None
    if smtp is not None:
        with contextlib.suppress(Exception):
            smtp.close()


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


def _sent_update_many(sends: list[EmailSend], *, now: dt.datetime) -> set[int]:
    """Record sends of one claim sent over SMTP, in one statement; the ids of
    those recorded (a send whose claim expired and was taken over is not)."""
    if not sends:
        return set()
    claimed_at = sends[0].claimed_at
    assert all(send.claimed_at == claimed_at for send in sends), "one claim at a time"
    ids = [send.pk for send in sends]
    rows = EmailSend.objects.filter(pk__in=ids, status=SendStatus.SENDING, claimed_at=claimed_at)
    updated = rows.update(
        status=SendStatus.SENT,
        sent_at=now,
        provider="smtp",
        provider_message_id=F("message_id"),
        last_error="",
        next_attempt_at=None,
    )
    if updated == len(ids):
        recorded = set(ids)
    else:  # some claims were taken over: ours are those with our claim and time
        recorded = set(
            EmailSend.objects.filter(
                pk__in=ids, status=SendStatus.SENT, claimed_at=claimed_at, sent_at=now
            ).values_list("pk", flat=True)
        )
    for send in sends:
        if send.pk in recorded:
            send.status, send.sent_at = SendStatus.SENT, now
    return recorded


def _permanent(exc: Exception) -> bool:
    if isinstance(exc, AnymailRecipientsRefused):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and code >= 500


def _smtp_reply(code: int, message: bytes | str) -> str:
    text = message.decode(errors="replace") if isinstance(message, bytes) else message
    return f"{code} {text}".strip()


def send_error_text(exc: Exception) -> str:
    """What a failed send shows an admin: the server's own reply ("550 5.1.1 …"),
    not Python's picture of it (``(550, b'5.1.1 …')``)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(_smtp_reply(code, reply) for code, reply in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return _smtp_reply(exc.smtp_code, exc.smtp_error)
    return str(exc) or type(exc).__name__


def _record_failure(send: EmailSend, claimed_at: dt.datetime | None, exc: Exception) -> str:
    now = timezone.now()
    error = send_error_text(exc)
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

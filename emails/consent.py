"""Double opt-in: the confirmation email a new subscriber gets, and the link in
it that confirms their consent.

A lead's consent becoming ``pending`` (``leads.services.consent``) is a derived
``consent.changed`` event; this app's reaction to it sends, after the commit, a
Celery task that mails the request's confirmation link, once per request: the
request (its ``ConsentRecord``) is claimed before the send and marked sent after
it. A worker killed between the two leaves a claim that beat's sweeper hands out
again after ``CLAIM_STALE``; the message id is the request's own, so a mailbox
shows a re-sent message as the one it already has.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext

from core.vocabulary import CONSENT_CHANGED
from emails.links import CONFIRM_MAX_AGE, confirm_url
from emails.models import EmailSettings, Sender
from leads.models import ConsentRecord, ConsentSource, ConsentState, Event, Lead
from leads.outages import task_send, task_send_on_commit
from leads.selectors import lead_language
from leads.services.consent import ConsentRefused, consent_set

logger = logging.getLogger(__name__)

# A claim older than this whose email is not marked sent is taken again.
CLAIM_STALE = dt.timedelta(minutes=10)


def email_settings() -> EmailSettings:
    """The team's email settings (the defaults until an admin saved them)."""
    return EmailSettings.objects.order_by("pk").first() or EmailSettings()


def _organisation() -> tuple[str, str]:
    """Who the email is from (a From header) and the name a subscriber agrees
    to hear from: the first sender an admin set up, else the site's address."""
    sender = Sender.objects.order_by("name", "id").first()
    if sender is not None:
        return f"{sender.name} <{sender.address}>", sender.name
    return str(settings.DEFAULT_FROM_EMAIL), str(settings.SITE_URL).split("://")[-1].strip("/")


def consent_wording(*, organisation: str) -> str:
    """The sentence a subscriber agrees to by confirming, in the active language
    (the evidence keeps it as shown)."""
    return gettext(
        "Yes, I want to receive marketing emails from %(organisation)s. "
        "I can unsubscribe at any time with the link in every email."
    ) % {"organisation": organisation}


def consent_changed_react(*, event: Event, lead: Lead) -> None:
    """The pipeline's reaction: a lead that became pending gets its confirmation
    email, from a task sent after the commit (when double opt-in is on)."""
    if event.type != CONSENT_CHANGED or event.properties.get("to") != ConsentState.PENDING:
        return
    record_id = event.properties.get("record")
    if not isinstance(record_id, int) or not email_settings().require_double_opt_in:
        return
    from emails.tasks import consent_confirmation_send_task

    task_send_on_commit(consent_confirmation_send_task, record_id)


def consent_confirmation_send(*, record_id: int) -> bool:
    """Send the confirmation email of the pending request ``record_id``, unless
    it was sent, is being sent, or no longer needs to be (the lead moved on, the
    link would have expired, double opt-in was turned off). Returns whether it
    was sent."""
    now = timezone.now()
    stale = now - CLAIM_STALE
    claimed = (
        ConsentRecord.objects.filter(
            pk=record_id,
            state=ConsentState.PENDING,
            confirmation_sent_at__isnull=True,
            created_at__gt=now - dt.timedelta(seconds=CONFIRM_MAX_AGE),
        )
        .filter(Q(confirmation_claimed_at__isnull=True) | Q(confirmation_claimed_at__lt=stale))
        .update(confirmation_claimed_at=now)
    )
    if not claimed:
        return False
    record = ConsentRecord.objects.select_related("lead").get(pk=record_id)
    lead = record.lead
    if (
        lead.consent_state != ConsentState.PENDING
        or not lead.email
        or not email_settings().require_double_opt_in
    ):
        # Nothing to ask any more: marked sent so that no sweep takes it again.
        ConsentRecord.objects.filter(pk=record_id).update(confirmation_sent_at=now)
        return False
    try:
        _message(record=record, lead=lead).send()
    except Exception:
        # Let a retry (or the sweeper) take it again at once.
        ConsentRecord.objects.filter(pk=record_id).update(confirmation_claimed_at=None)
        raise
    ConsentRecord.objects.filter(pk=record_id).update(confirmation_sent_at=timezone.now())
    logger.info("consent confirmation sent", extra={"lead_id": lead.pk, "record": record_id})
    return True


def _message(*, record: ConsentRecord, lead: Lead) -> EmailMultiAlternatives:
    from_email, organisation = _organisation()
    with translation.override(lead_language(lead)):
        context = {
            "lead": lead,
            "url": confirm_url(record_id=record.pk),
            "organisation": organisation,
            "wording": consent_wording(organisation=organisation),
            "days": CONFIRM_MAX_AGE // 86400,
        }
        subject = gettext("Please confirm your subscription")
        text = render_to_string("emails/consent/confirm_email.txt", context)
        html = render_to_string("emails/consent/confirm_email.html", context)
    host = str(settings.SITE_URL).split("://")[-1].split("/")[0].split(":")[0] or "localhost"
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=from_email,
        to=[lead.email or ""],
        headers={
            "Message-ID": f"<consent-{record.pk}@{host}>",
            # Transactional: asked for by the person, no unsubscribe needed.
            "Auto-Submitted": "auto-generated",
        },
    )
    message.attach_alternative(html, "text/html")
    return message


def confirmations_sweep(
    *, now: dt.datetime, before: dt.datetime | None, waited: dt.datetime, limit: int
) -> tuple[int, bool]:
    """The sweeper's part (``leads.services.background``): send again the task
    of each confirmation email whose message was lost (none claimed it since it
    was made) or whose worker died (claimed long ago, never sent)."""
    if not email_settings().require_double_opt_in:
        return 0, True
    waiting = (
        ConsentRecord.objects.filter(
            state=ConsentState.PENDING,
            confirmation_sent_at__isnull=True,
            created_at__gt=now - dt.timedelta(seconds=CONFIRM_MAX_AGE),
            created_at__lt=waited,
        )
        .filter(
            Q(confirmation_claimed_at__isnull=True)
            | Q(confirmation_claimed_at__lt=now - CLAIM_STALE)
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    from emails.tasks import consent_confirmation_send_task

    sent = 0
    for record_id in waiting:
        if not task_send(consent_confirmation_send_task, record_id):
            return sent, False
        sent += 1
    return sent, True


@dataclass(frozen=True)
class Confirmation:
    """What a confirmation link found: ``status`` is ``confirm`` (the page asks),
    ``confirmed`` (just now), ``already`` (confirmed before) or ``stale`` (the
    lead withdrew or was reset since the request)."""

    status: str
    lead: Lead
    organisation: str


def confirmation_look(*, record_id: int) -> Confirmation | None:
    """What the link of request ``record_id`` would do; None if there is no
    such pending request (erased, or not a request)."""
    record = (
        ConsentRecord.objects.select_related("lead")
        .filter(pk=record_id, state=ConsentState.PENDING)
        .first()
    )
    if record is None:
        return None
    lead = record.lead
    organisation = _organisation()[1]
    if lead.consent_state == ConsentState.CONFIRMED:
        return Confirmation("already", lead, organisation)
    if lead.consent_state != ConsentState.PENDING:
        return Confirmation("stale", lead, organisation)
    return Confirmation("confirm", lead, organisation)


def consent_confirm(
    *, record_id: int, ip_address: str | None, user_agent: str
) -> Confirmation | None:
    """The person confirmed request ``record_id`` (the button of the link's
    page): their consent becomes confirmed, with the page's wording, their
    address, browser and the time as the evidence. None if there is no such
    request."""
    look = confirmation_look(record_id=record_id)
    if look is None or look.status != "confirm":
        return look
    try:
        consent_set(
            lead=look.lead,
            state=ConsentState.CONFIRMED,
            source=ConsentSource.CONFIRMATION,
            source_detail=f"request {record_id}",
            ip_address=ip_address,
            user_agent=user_agent,
            wording=consent_wording(organisation=look.organisation),
        )
    except ConsentRefused:
        # Moved on between the look and the lock (a withdrawal at that moment).
        return Confirmation("stale", look.lead, look.organisation)
    return Confirmation("confirmed", look.lead, look.organisation)

"""Flows' deliveries: outgoing webhooks, Slack messages and emails, sent with
retries, and the flow step that waits for one resumed when it is done. The
engine is in ``flows.engine``, a flow's life (drafts, publishing) in
``flows.lifecycle``, reads in ``flows.selectors``."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from flows.engine import step_resume
from flows.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    HookSubscription,
    StepRun,
    StepStatus,
)
from flows.outbound import OutboundFailed, OutboundRefused, outbound_post
from leads.models import Lead
from leads.outages import task_send

logger = logging.getLogger(__name__)

DELIVERY_RETRY_DELAYS = (10, 60, 300, 1800)

# --- deliveries ------------------------------------------------------------------------


# A claim older than this belonged to a sender that died: the longest send (the
# outbound time limits, an SMTP timeout) is well inside it.
DELIVERY_CLAIM_SECONDS = 120
# A new delivery is sent by its own task at once; beat sends it when that message
# was lost.
DELIVERY_SWEEP_SECONDS = 60


def delivery_create(
    *,
    kind: str,
    key: str,
    step: StepRun | None,
    target: str,
    payload: dict[str, Any],
    blocking: bool = False,
    hook_id: int | None = None,
) -> Delivery:
    """Record an outgoing message (once per key) and send it after commit."""
    from flows.tasks import delivery_send_task

    delivery, created = Delivery.objects.get_or_create(
        key=key,
        defaults={
            "kind": kind,
            "step": step,
            "hook_id": hook_id,
            "target": target,
            "payload": payload,
            "blocking": blocking,
            "next_attempt_at": timezone.now() + dt.timedelta(seconds=DELIVERY_SWEEP_SECONDS),
        },
    )
    if created:
        # A message that never leaves (broker down) or is lost with a worker is
        # covered by next_attempt_at: beat's deliveries_due sends it then.
        transaction.on_commit(lambda: task_send(delivery_send_task, delivery.pk))
    return delivery


def lead_payload(lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.pk,
        "email": lead.email,
        "external_id": lead.external_id,
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "job_title": lead.job_title,
        "company_name": lead.company_name,
        "company_size": lead.company_size,
        "stage": lead.stage,
        "score": lead.score,
        "grade": lead.grade,
        "custom_fields": lead.custom_fields,
    }


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def hook_signature(secret: str, body: bytes, timestamp: int) -> str:
    """A REST hook's ``X-Leadflow-Signature``: ``t=<unix time>,v1=<hex>``, the
    HMAC-SHA256 of ``<t>.<body>``. The time is the attempt's, so a receiver can
    refuse old replays; signing it with the body keeps it from being changed."""
    signed = str(timestamp).encode() + b"." + body
    return f"t={timestamp},v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _send_webhook(delivery: Delivery) -> int | None:
    body = json.dumps(delivery.payload["body"], separators=(",", ":"), default=str).encode()
    headers = {
        "Content-Type": "application/json",
        # The same for every try of this delivery: a receiver drops repeats by it.
        "Idempotency-Key": delivery.key,
        "X-Leadflow-Delivery": delivery.key,
    }
    if delivery.hook is not None:
        headers["X-Leadflow-Event"] = str(delivery.payload["body"].get("event", ""))
        headers["X-Leadflow-Signature"] = hook_signature(
            delivery.hook.secret, body, int(time.time())
        )
    elif delivery.payload.get("secret"):
        headers["X-Leadflow-Signature"] = webhook_signature(delivery.payload["secret"], body)
    return outbound_post(delivery.target, body=body, headers=headers).status


def _send_slack(delivery: Delivery) -> int | None:
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    return outbound_post(delivery.target, body=body, headers=headers).status


def _send_email(delivery: Delivery) -> int | None:
    send_mail(
        delivery.payload["subject"],
        delivery.payload["body"],
        None,
        [delivery.target],
        fail_silently=False,
    )
    return None


# How each kind of delivery is sent: returns the receiver's HTTP status (None when
# there is none), raises OutboundRefused for a target that will never be allowed and
# any other exception for a failure worth a retry. A new kind adds its sender here.
DELIVERY_SENDERS: dict[str, Callable[[Delivery], int | None]] = {
    "webhook": _send_webhook,
    "slack": _send_slack,
    "email": _send_email,
}


def delivery_claim(*, delivery_id: int) -> Delivery | None:
    """Take a pending delivery for sending, in a short transaction of its own; None
    when it is sent, failed, or in another sender's hands."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(pk=delivery_id, status=DeliveryStatus.PENDING)
            .first()
        )
        if delivery is None:
            return None
        claim_expired = now - dt.timedelta(seconds=DELIVERY_CLAIM_SECONDS)
        if delivery.claimed_at is not None and delivery.claimed_at > claim_expired:
            return None
        if delivery.attempts > len(DELIVERY_RETRY_DELAYS):
            # Its last try's sender died: that counts as the last failure.
            _delivery_fail(delivery, now, gettext("The sender stopped during the last try."))
            return None
        delivery.attempts += 1
        delivery.claimed_at = now
        # Beat sends it again if this claim is never settled.
        delivery.next_attempt_at = now + dt.timedelta(seconds=DELIVERY_CLAIM_SECONDS)
        delivery.save(update_fields=["attempts", "claimed_at", "next_attempt_at"])
    return delivery


def delivery_send(*, delivery_id: int) -> None:
    """Claim, send with no transaction open (a slow receiver holds no lock), record.

    On failure back off (10 s, 1 min, 5 min, 30 min), then give up and fail the step
    that waits for it; a target that is not allowed fails at once."""
    delivery = delivery_claim(delivery_id=delivery_id)
    if delivery is None:
        return
    claimed_at = delivery.claimed_at
    refused = False
    try:
        code = DELIVERY_SENDERS[delivery.kind](delivery)
    except OutboundRefused as exc:
        code, error, refused = None, str(exc), True
    except Exception as exc:
        code = exc.status if isinstance(exc, OutboundFailed) else None
        error = str(exc) or type(exc).__name__
    else:
        if _delivery_record_sent(delivery, code) and delivery.blocking and delivery.step_id:
            _resume_after_delivery(delivery)
        return
    if code == 410 and delivery.hook_id is not None:
        # REST hooks: a receiver answering 410 Gone has unsubscribed (Zapier and
        # n8n remove a hook this way); the subscription goes with its log.
        HookSubscription.objects.filter(pk=delivery.hook_id).delete()
        return
    _delivery_record_failure(delivery, claimed_at, code, error, final=refused)


def _delivery_record_sent(delivery: Delivery, code: int | None) -> bool:
    now = timezone.now()
    # Even when this sender's claim expired meanwhile, the receiver has it now.
    sent = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.SENT,
        sent_at=now,
        response_code=code,
        last_error="",
        claimed_at=None,
        next_attempt_at=None,
    )
    delivery.status, delivery.sent_at, delivery.response_code = DeliveryStatus.SENT, now, code
    return sent == 1


def _delivery_record_failure(
    delivery: Delivery, claimed_at: dt.datetime | None, code: int | None, error: str, *, final: bool
) -> None:
    now = timezone.now()
    with transaction.atomic():
        current = (
            Delivery.objects.select_for_update()
            .filter(pk=delivery.pk, status=DeliveryStatus.PENDING, claimed_at=claimed_at)
            .first()
        )
        if current is None:  # another sender took over after this claim expired
            return
        current.response_code = code
        if final or current.attempts > len(DELIVERY_RETRY_DELAYS):
            _delivery_fail(current, now, error)
            return
        delay = DELIVERY_RETRY_DELAYS[current.attempts - 1]
        current.last_error = error[:2000]
        current.claimed_at = None
        current.next_attempt_at = now + dt.timedelta(seconds=delay)
        current.save(update_fields=["response_code", "last_error", "claimed_at", "next_attempt_at"])


def _delivery_fail(delivery: Delivery, now: dt.datetime, error: str) -> None:
    delivery.status = DeliveryStatus.FAILED
    delivery.last_error = error[:2000]
    delivery.claimed_at = None
    delivery.next_attempt_at = None
    delivery.save(
        update_fields=["status", "response_code", "last_error", "claimed_at", "next_attempt_at"]
    )
    if delivery.blocking and delivery.step_id:
        _delivery_failed_step(delivery, now)


def _resume_after_delivery(delivery: Delivery) -> None:
    with transaction.atomic():
        step = StepRun.objects.select_related("enrollment").get(pk=delivery.step_id or 0)
        Lead.objects.select_for_update().filter(pk=step.enrollment.lead_id).first()
        step.output = {**step.output, "response_code": delivery.response_code}
        step.save(update_fields=["output"])
        step_resume(step=step, handle="next")


def _delivery_failed_step(delivery: Delivery, now: dt.datetime) -> None:
    tries = ngettext(
        "Delivery failed after %(count)s try: %(error)s",
        "Delivery failed after %(count)s tries: %(error)s",
        delivery.attempts,
    ) % {"count": delivery.attempts, "error": delivery.last_error}
    step = StepRun.objects.get(pk=delivery.step_id or 0)
    StepRun.objects.filter(pk=step.pk).update(
        status=StepStatus.FAILED,
        error=tries[:4000],
        finished_at=now,
        output={**step.output, "response_code": delivery.response_code},
    )
    Enrollment.objects.filter(pk=step.enrollment_id).update(
        status=EnrollmentStatus.FAILED, finished_at=now
    )


def deliveries_due() -> list[int]:
    """Pending deliveries whose time came (from beat): retries, claims that expired,
    and new ones whose send message was lost."""
    from flows.tasks import delivery_send_task

    ids = list(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now()
        ).values_list("id", flat=True)[:500]
    )
    for delivery_id in ids:
        if not task_send(delivery_send_task, delivery_id):
            break
    return ids

"""Flows: deliveries (outgoing webhooks, Slack messages and emails), and the
names the rest of the app imported from here before the engine and the flow
lifecycle had modules of their own (flows.engine, flows.lifecycle,
flows.selectors). Import from those; the names below stay for one release.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from typing import Any

import requests
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from flows.engine import (
    CLAIM_BUDGET_SECONDS,
    FIRE_CHUNK,
    LISTENING,
    MAX_STEPS_PER_RUN,
    STEP_RETRY_DELAYS,
    enroll,
    entry_check,
    flows_on_event,
    listeners_none,
    step_resume,
    wakeup_fire,
    wakeups_claim,
    wakeups_claim_all,
    wakeups_dispatch,
    wakeups_due,
    wakeups_fire,
    wakeups_release_stale,
)
from flows.lifecycle import (
    DraftConflict,
    flow_create,
    flow_draft_save,
    flow_publish,
    flow_set_status,
    flow_version_restore,
)
from flows.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    StepRun,
    StepStatus,
)
from flows.selectors import flow_node_stats
from leads.models import Lead

__all__ = [
    "CLAIM_BUDGET_SECONDS",
    "DELIVERY_RETRY_DELAYS",
    "FIRE_CHUNK",
    "LISTENING",
    "MAX_STEPS_PER_RUN",
    "STEP_RETRY_DELAYS",
    "DeliveryError",
    "DraftConflict",
    "deliveries_due",
    "delivery_create",
    "delivery_send",
    "enroll",
    "entry_check",
    "flow_create",
    "flow_draft_save",
    "flow_node_stats",
    "flow_publish",
    "flow_set_status",
    "flow_version_restore",
    "flows_on_event",
    "lead_payload",
    "listeners_none",
    "step_resume",
    "wakeup_fire",
    "wakeups_claim",
    "wakeups_claim_all",
    "wakeups_dispatch",
    "wakeups_due",
    "wakeups_fire",
    "wakeups_release_stale",
    "webhook_signature",
]

logger = logging.getLogger(__name__)

DELIVERY_RETRY_DELAYS = (10, 60, 300, 1800)


# --- deliveries ------------------------------------------------------------------------


def delivery_create(
    *,
    kind: str,
    key: str,
    step: StepRun | None,
    target: str,
    payload: dict[str, Any],
    blocking: bool = False,
) -> Delivery:
    """Record an outgoing message (once per key) and send it after commit."""
    from flows.tasks import delivery_send_task

    delivery, created = Delivery.objects.get_or_create(
        key=key,
        defaults={
            "kind": kind,
            "step": step,
            "target": target,
            "payload": payload,
            "blocking": blocking,
        },
    )
    if created:
        transaction.on_commit(lambda: delivery_send_task.delay(delivery.pk))
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


def _send(delivery: Delivery) -> int | None:
    if delivery.kind == "webhook":
        body = json.dumps(delivery.payload["body"], separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json", "X-Leadflow-Delivery": delivery.key}
        if delivery.payload.get("secret"):
            headers["X-Leadflow-Signature"] = webhook_signature(delivery.payload["secret"], body)
        response = requests.post(delivery.target, data=body, headers=headers, timeout=10)
        if response.status_code >= 300:
            raise DeliveryError(response.status_code, f"HTTP {response.status_code}")
        return response.status_code
    if delivery.kind == "slack":
        response = requests.post(delivery.target, json=delivery.payload, timeout=10)
        if response.status_code >= 300:
            raise DeliveryError(response.status_code, f"HTTP {response.status_code}")
        return response.status_code
    send_mail(
        delivery.payload["subject"],
        delivery.payload["body"],
        None,
        [delivery.target],
        fail_silently=False,
    )
    return None


class DeliveryError(Exception):
    def __init__(self, code: int | None, message: str):
        super().__init__(message)
        self.code = code


def delivery_send(*, delivery_id: int) -> None:
    """Send once; on failure back off (10 s, 1 min, 5 min, 30 min), then give up
    and fail the step that waits for it."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(pk=delivery_id, status=DeliveryStatus.PENDING)
            .first()
        )
        if delivery is None:
            return
        now = timezone.now()
        delivery.attempts += 1
        try:
            delivery.response_code = _send(delivery)
        except (DeliveryError, requests.RequestException, OSError) as exc:
            delivery.response_code = getattr(exc, "code", None)
            delivery.last_error = str(exc)[:2000]
            if delivery.attempts <= len(DELIVERY_RETRY_DELAYS):
                delay = DELIVERY_RETRY_DELAYS[delivery.attempts - 1]
                delivery.next_attempt_at = now + dt.timedelta(seconds=delay)
            else:
                delivery.status = DeliveryStatus.FAILED
                delivery.next_attempt_at = None
            delivery.save()
            if delivery.status == DeliveryStatus.FAILED and delivery.blocking and delivery.step_id:
                _delivery_failed_step(delivery)
            return
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = now
        delivery.next_attempt_at = None
        delivery.save()
    if delivery.blocking and delivery.step_id:
        _resume_after_delivery(delivery)


def _resume_after_delivery(delivery: Delivery) -> None:
    with transaction.atomic():
        step = StepRun.objects.select_related("enrollment").get(pk=delivery.step_id or 0)
        Lead.objects.select_for_update().filter(pk=step.enrollment.lead_id).first()
        step.output = {**step.output, "response_code": delivery.response_code}
        step.save(update_fields=["output"])
        step_resume(step=step, handle="next")


def _delivery_failed_step(delivery: Delivery) -> None:
    now = timezone.now()
    step = StepRun.objects.get(pk=delivery.step_id or 0)
    StepRun.objects.filter(pk=step.pk).update(
        status=StepStatus.FAILED,
        error=f"Delivery failed after {delivery.attempts} tries: {delivery.last_error}"[:4000],
        finished_at=now,
        output={**step.output, "response_code": delivery.response_code},
    )
    Enrollment.objects.filter(pk=step.enrollment_id).update(
        status=EnrollmentStatus.FAILED, finished_at=now
    )


def deliveries_due() -> list[int]:
    """Pending deliveries whose retry time came (from beat)."""
    from flows.tasks import delivery_send_task

    ids = list(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now()
        ).values_list("id", flat=True)[:500]
    )
    for delivery_id in ids:
        delivery_send_task.delay(delivery_id)
    return ids

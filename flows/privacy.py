"""A lead's flow history and the outbound hook deliveries about them, in their
data export and gone with them on erasure (registered with
``leads.services.privacy`` by ``FlowsConfig.ready``)."""

from __future__ import annotations

from typing import Any

from django.db.models import F

from flows.hooks import hook_deliveries_about
from flows.models import Delivery, DeliveryKind, Enrollment, StepRun, Wakeup
from flows.nodes.base import SECRET_SET, secret_value_set
from leads.models import Lead
from leads.services.privacy import Gone, export_rows


def _delivery_masked(row: dict[str, Any]) -> dict[str, Any]:
    """A delivery without the credentials the flow's node held: a Slack
    incoming-webhook URL is one, and so is a webhook's signing secret."""
    if row["kind"] == DeliveryKind.SLACK and row["target"]:
        row["target"] = SECRET_SET
    payload = row["payload"]
    if isinstance(payload, dict) and "secret" in payload:
        row["payload"] = {
            **payload,
            "secret": SECRET_SET if secret_value_set(payload["secret"]) else "",
        }
    return row


def lead_flows_export(lead: Lead) -> dict[str, list[dict[str, Any]]]:
    steps = StepRun.objects.filter(enrollment__lead=lead)
    return {
        "flows": export_rows(
            Enrollment.objects.filter(lead=lead).order_by("id"),
            "id",
            "status",
            "trigger_node",
            "created_at",
            "finished_at",
            flow=F("flow__name"),
            version=F("version__number"),
        ),
        "flow_steps": export_rows(
            steps.order_by("id"),
            "node_id",
            "node_type",
            "status",
            "output",
            "error",
            "started_at",
            "finished_at",
            enrollment=F("enrollment_id"),
        ),
        "deliveries": [
            _delivery_masked(row)
            for row in export_rows(
                (
                    Delivery.objects.filter(step__in=steps) | hook_deliveries_about(lead_id=lead.pk)
                ).order_by("id"),
                "kind",
                "target",
                "payload",
                "status",
                "created_at",
                "sent_at",
            )
        ],
    }


def lead_flows_erase(lead: Lead, gone: Gone) -> None:
    steps = StepRun.objects.filter(enrollment__lead=lead)
    # Outgoing messages carry the lead's data: pending ones are never sent.
    gone(
        "deliveries",
        Delivery.objects.filter(step__in=steps) | hook_deliveries_about(lead_id=lead.pk),
    )
    gone("wakeups", Wakeup.objects.filter(step__in=steps))
    gone("flow_steps", steps)
    gone("enrollments", Enrollment.objects.filter(lead=lead))

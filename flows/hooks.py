"""Outbound event subscriptions (REST hooks): an outside URL subscribes to
event types, and each processed event of those types becomes one signed
Delivery, sent and retried by the deliveries' own task.

Matching runs for every event the worker processes, so the subscriptions are
read once per batch (a dict of hook event type to subscriptions): with none, an
event costs no query; with some, a matching event costs the delivery's insert.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy

from core.scope import batch_cached
from core.vocabulary import OPPORTUNITY_LOST, OPPORTUNITY_OPENED, OPPORTUNITY_WON
from flows.models import Delivery, DeliveryKind, HookSubscription
from flows.services import delivery_create, lead_payload
from leads.models import Event, Lead
from scoring.rules import is_mql_crossing
from scoring.services import scoring_settings

# Hook event types, as subscribers name them. Most are the pipeline's own
# event types; ``lead.mql`` and ``lead.stage_changed`` are read from them.
HOOK_EVENTS: dict[str, Any] = {
    "lead.created": gettext_lazy("A lead was created"),
    "lead.mql": gettext_lazy("A lead's score reached the MQL threshold"),
    "lead.stage_changed": gettext_lazy("A lead moved to another stage"),
    "field.changed": gettext_lazy("A field of a lead changed"),
    "tag.added": gettext_lazy("A tag was added to a lead"),
    "tag.removed": gettext_lazy("A tag was removed from a lead"),
    "score.changed": gettext_lazy("A lead's score changed"),
    "grade.changed": gettext_lazy("A lead's grade changed"),
    "segment.entered": gettext_lazy("A lead entered a segment"),
    "segment.left": gettext_lazy("A lead left a segment"),
    "task.created": gettext_lazy("A flow created a task for sales"),
    OPPORTUNITY_OPENED: gettext_lazy("An opportunity was opened"),
    OPPORTUNITY_WON: gettext_lazy("An opportunity was won"),
    OPPORTUNITY_LOST: gettext_lazy("An opportunity was lost"),
}
# Pipeline event types delivered under their own name.
_SAME_NAME = frozenset(HOOK_EVENTS) - {"lead.mql", "lead.stage_changed"}


def hook_events_of(event: Event, *, mql_threshold: int) -> list[str]:
    """The hook event types one processed event stands for: its own type, and
    ``lead.mql`` for a score change that crossed the MQL threshold (the
    dashboard's definition of becoming an MQL), ``lead.stage_changed`` for a
    change of the stage field."""
    types = [event.type] if event.type in _SAME_NAME else []
    if is_mql_crossing(event.type, event.properties, mql_threshold):
        types.append("lead.mql")
    if event.type == "field.changed" and event.name == "stage":
        types.append("lead.stage_changed")
    return types


def _subscriptions() -> dict[str, list[tuple[int, str]]]:
    """(id, target URL) of the subscriptions by hook event type."""
    by_type: dict[str, list[tuple[int, str]]] = {}
    for pk, target, events in HookSubscription.objects.values_list("id", "target_url", "events"):
        for name in events:
            by_type.setdefault(name, []).append((pk, target))
    return by_type


def hooks_segments_heard(event_types: Sequence[str]) -> set[tuple[str, int | None]]:
    """The segment events of ``event_types`` outbound hooks subscribe to: all of
    a type, whatever the segment (a None id)."""
    subscribed = batch_cached("hook_subscriptions", _subscriptions)
    return {(event_type, None) for event_type in event_types if subscribed.get(event_type)}


def _mql_threshold() -> int:
    return batch_cached("scoring_settings", scoring_settings).mql_threshold


def hook_body(*, hook_event: str, event: Event, lead: Lead) -> dict[str, Any]:
    """What a subscriber receives: the hook event, the event that caused it and
    the lead as it is after the event."""
    return {
        "event": hook_event,
        "event_id": event.pk,
        "occurred_at": event.occurred_at.isoformat(),
        "name": event.name,
        "data": event.properties,
        "lead": lead_payload(lead),
    }


def hooks_on_event(*, event: Event, lead: Lead) -> None:
    """Deliver a processed event to the subscriptions of its hook event types:
    one Delivery per (subscription, hook event type, event), whatever retries
    or reprocessing happen (its unique key). Runs in the event's transaction."""
    subscribed = batch_cached("hook_subscriptions", _subscriptions)
    if not subscribed:
        return
    for hook_event in hook_events_of(event, mql_threshold=_mql_threshold()):
        for hook_id, target in subscribed.get(hook_event, ()):
            delivery_create(
                kind=DeliveryKind.WEBHOOK,
                key=f"hook:{hook_id}:{hook_event}:{event.pk}",
                step=None,
                hook_id=hook_id,
                target=target,
                payload={"body": hook_body(hook_event=hook_event, event=event, lead=lead)},
            )


def hook_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


@transaction.atomic
def hook_subscribe(
    *, target_url: str, events: list[str], description: str = "", created_by: User | None
) -> HookSubscription:
    """Subscribe ``target_url`` to hook event types (known ones, checked by the
    caller). The secret is on the returned row: show it now, it is not shown
    again."""
    return HookSubscription.objects.create(
        target_url=target_url,
        events=sorted(set(events)),
        description=description,
        secret=hook_secret(),
        created_by=created_by,
    )


def hook_update(
    *,
    hook: HookSubscription,
    target_url: str | None = None,
    events: list[str] | None = None,
    description: str | None = None,
) -> HookSubscription:
    fields = []
    if target_url is not None:
        hook.target_url = target_url
        fields.append("target_url")
    if events is not None:
        hook.events = sorted(set(events))
        fields.append("events")
    if description is not None:
        hook.description = description
        fields.append("description")
    if fields:
        hook.save(update_fields=fields)
    return hook


def hook_secret_rotate(*, hook: HookSubscription) -> HookSubscription:
    """A new secret from the next attempt on (pending retries included)."""
    hook.secret = hook_secret()
    hook.save(update_fields=["secret"])
    return hook


def hook_unsubscribe(*, hook: HookSubscription) -> None:
    """Delete the subscription with its delivery log and what it had not sent."""
    hook.delete()


def hook_deliveries(*, hook: HookSubscription | None = None) -> QuerySet[Delivery]:
    """Hook deliveries, newest first (of one subscription, or of all)."""
    deliveries = Delivery.objects.filter(hook__isnull=False)
    if hook is not None:
        deliveries = deliveries.filter(hook=hook)
    return deliveries.order_by("-id")


def hook_deliveries_about(*, lead_id: int) -> QuerySet[Delivery]:
    """Hook deliveries that carry a lead's data (for its erasure and export):
    read from the payload, the one place a hook delivery names its lead."""
    return Delivery.objects.filter(hook__isnull=False, payload__body__lead__id=lead_id)

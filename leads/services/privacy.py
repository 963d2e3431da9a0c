"""A lead's data on request: everything held about them as JSON, and erasure.

Erasure removes the lead and every row about them (events, identities, segment
stays, enrollments with their steps and outgoing deliveries, ledger entries,
tasks, notes, notifications), plus events still waiting to be matched to them,
which would otherwise bring the lead back. What stays is a ``LeadErasure`` row
with the lead's former id and row counts: proof that it was done, without
anything about the person.

The rows other apps hold about a lead (flows' enrollments, steps and deliveries;
scoring's ledger) are theirs to export and erase: each registers its part from
its ``AppConfig.ready`` with ``lead_data_register``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Greatest
from django.http import StreamingHttpResponse
from django.utils import timezone

from leads.models import (
    ConsentRecord,
    Event,
    Identity,
    IdentityKind,
    Lead,
    LeadErasure,
    Note,
    Notification,
    Opportunity,
    Segment,
    SegmentExclusion,
    SegmentMembership,
    Task,
)

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "leadflow.lead-export/1"


def _dumps(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def export_rows(queryset: QuerySet[Any], *fields: Any, **expressions: Any) -> list[dict[str, Any]]:
    """``fields`` as they are, and ``expressions`` under their own names (which
    may be the names of the model's foreign keys: ``category`` for its key)."""
    rows = queryset.values(*fields, **{f"x_{name}": e for name, e in expressions.items()})
    return [
        {name.removeprefix("x_") if name.startswith("x_") else name: v for name, v in row.items()}
        for row in rows
    ]


# Deletes a queryset and counts its rows under a name, for the erasure's record.
Gone = Callable[[str, QuerySet[Any]], None]


@dataclass(frozen=True)
class LeadDataPart:
    """The rows an app holds about a lead: ``export(lead)`` returns them as
    named sections of the export; ``erase(lead, gone)`` deletes them, each
    queryset through ``gone``."""

    export: Callable[[Lead], dict[str, list[dict[str, Any]]]]
    erase: Callable[[Lead, Gone], None]


# Erased in this order, before the lead's own rows: flows' deliveries and steps
# go first (nothing may still send the lead's data), then the emails sent to the
# lead and what the outbox kept of them, then scoring's ledger. Exported in the
# same order, after the lead's own sections.
LEAD_DATA_ORDER = ("flows", "emails", "scoring")
_parts: dict[str, LeadDataPart] = {}


def lead_data_register(
    *,
    name: str,
    export: Callable[[Lead], dict[str, list[dict[str, Any]]]],
    erase: Callable[[Lead, Gone], None],
) -> None:
    """Have ``lead_export`` and ``lead_erase`` include an app's rows about a lead."""
    if name not in LEAD_DATA_ORDER:
        raise ValueError(f"Lead data part {name!r} has no place in LEAD_DATA_ORDER.")
    if name in _parts:
        raise ValueError(f"Lead data part {name!r} is registered already.")
    _parts[name] = LeadDataPart(export=export, erase=erase)


def _lead_data_parts() -> list[LeadDataPart]:
    return [_parts[name] for name in LEAD_DATA_ORDER if name in _parts]


def lead_export(*, lead: Lead) -> Iterator[str]:
    """Everything held about ``lead`` as one JSON document, produced in pieces so
    a lead with a long history streams instead of being built in memory."""
    # Every column, so a field added to the model is exported without a change here;
    # the owner by name rather than id.
    lead_data = {
        f.attname: getattr(lead, f.attname) for f in Lead._meta.concrete_fields if f.name != "owner"
    }
    lead_data["owner"] = lead.owner.get_username() if lead.owner_id and lead.owner else None
    lead_data["tags"] = sorted(lead.tags.values_list("name", flat=True))
    sections: dict[str, Any] = {
        "identities": export_rows(lead.identities.order_by("id"), "kind", "value", "created_at"),
        "segments": export_rows(
            SegmentMembership.objects.filter(lead=lead).order_by("entered_at", "id"),
            "entered_at",
            "left_at",
            "source",
            segment=F("segment__name"),
        ),
        "segment_exclusions": export_rows(
            SegmentExclusion.objects.filter(lead=lead).order_by("id"),
            "created_at",
            segment=F("segment__name"),
        ),
        "tasks": export_rows(
            Task.objects.filter(lead=lead).order_by("id"),
            "title",
            "status",
            "priority",
            "due_at",
            "created_at",
            assignee=F("assignee__username"),
        ),
        "opportunities": export_rows(
            Opportunity.objects.filter(lead=lead).order_by("id"),
            "name",
            "value",
            "currency",
            "status",
            "opened_at",
            "closed_at",
            "lost_reason",
        ),
        "notes": export_rows(
            Note.objects.filter(lead=lead).order_by("id"),
            "body",
            "created_at",
            author=F("author__username"),
        ),
        # The evidence of the lead's marketing consent: what they agreed to, when,
        # from where (their right of access covers it as much as the rest).
        "consent": export_rows(
            ConsentRecord.objects.filter(lead=lead).order_by("occurred_at", "id"),
            "state",
            "source",
            "source_detail",
            "occurred_at",
            "ip_address",
            "user_agent",
            "wording",
            "created_at",
            created_by=F("created_by__username"),
        ),
        "notifications": export_rows(
            Notification.objects.filter(lead=lead).order_by("id"),
            "message",
            "created_at",
            "read_at",
            user=F("user__username"),
        ),
    }
    for part in _lead_data_parts():
        sections.update(part.export(lead))
    yield "{"
    yield f'"format": {_dumps(EXPORT_FORMAT)}, "exported_at": {_dumps(timezone.now())}, '
    yield f'"lead": {_dumps(lead_data)}'
    for name, rows in sections.items():
        yield f", {_dumps(name)}: {_dumps(rows)}"
    yield ', "events": ['
    events = (
        Event.objects.filter(lead=lead)
        .order_by("occurred_at", "id")
        .values(*(f.attname for f in Event._meta.concrete_fields if f.name != "lead"))
    )
    for index, event in enumerate(events.iterator(chunk_size=2000)):
        yield ("," if index else "") + _dumps(event)
    yield "]}"


def _waiting_events(lead: Lead) -> QuerySet[Event]:
    """Events not yet matched to any lead that name this one: processed, they
    would create the lead again. Only unprocessed rows can be unmatched, and
    those are few and indexed."""
    names = Q(email=lead.email) if lead.email else Q()
    if lead.external_id:
        names |= Q(user_id=lead.external_id)
    for kind, value in lead.identities.values_list("kind", "value"):
        if kind == IdentityKind.EMAIL:
            names |= Q(email=value)
        elif kind == IdentityKind.USER_ID:
            names |= Q(user_id=value)
        else:
            names |= Q(anonymous_id=value)
    if not names:
        return Event.objects.none()
    return Event.objects.filter(processed_at__isnull=True, lead__isnull=True).filter(names)


@transaction.atomic
def lead_erase(*, lead: Lead, user: User | None, via: str) -> LeadErasure:
    """Erase ``lead`` and everything about them; return the record of it."""
    # The lock makes a worker applying an event to this lead finish first, or
    # wait and then find the lead gone.
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    lead_ref = lead.pk
    open_stays = dict(
        SegmentMembership.objects.filter(lead=lead, left_at__isnull=True).values_list(
            "segment_id", "lead_id"
        )
    )
    rows: dict[str, int] = {}

    def gone(name: str, queryset: QuerySet[Any]) -> None:
        # Plain deletes in dependency order: each is one statement, and the rows
        # are counted by kind for the record.
        rows[name] = queryset.delete()[0]

    for part in _lead_data_parts():
        part.erase(lead, gone)
    gone("segment_stays", SegmentMembership.objects.filter(lead=lead))
    gone("segment_exclusions", SegmentExclusion.objects.filter(lead=lead))
    gone("tasks", Task.objects.filter(lead=lead))
    gone("opportunities", Opportunity.objects.filter(lead=lead))
    gone("notes", Note.objects.filter(lead=lead))
    gone("notifications", Notification.objects.filter(lead=lead))
    gone("consent_records", ConsentRecord.objects.filter(lead=lead))
    gone("waiting_events", _waiting_events(lead))
    gone("identities", Identity.objects.filter(lead=lead))
    gone("events", Event.objects.filter(lead=lead))
    lead.tags.clear()
    Lead.objects.filter(pk=lead.pk).delete()
    for segment_id in open_stays:
        Segment.objects.filter(pk=segment_id).update(
            member_count=Greatest(F("member_count") - 1, 0)
        )
    record = LeadErasure.objects.create(
        lead_ref=lead_ref, erased_by=user, via=via, rows={k: v for k, v in rows.items() if v}
    )
    logger.info(
        "lead erased",
        extra={"lead_id": lead_ref, "erasure_id": record.pk, "by": user.pk if user else None},
    )
    return record


def lead_export_response(lead: Lead) -> StreamingHttpResponse:
    """The export as a JSON download, streamed (a lead's timeline can be long)."""
    response = StreamingHttpResponse(lead_export(lead=lead), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="lead-{lead.pk}.json"'
    return response

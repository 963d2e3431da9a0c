"""Writes to leads: create, update with change events, tags, merge."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Case, Count, F, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from leads.models import (
    CLOSED_STAGES,
    Event,
    Identity,
    IdentityKind,
    Lead,
    Segment,
    SegmentExclusion,
    SegmentMembership,
    Stage,
    Tag,
)
from leads.services.events import event_derive
from leads.services.tasks import tasks_follow_up_close

logger = logging.getLogger(__name__)

# Standard fields copied from a merged lead when the surviving lead has none.
MERGE_FILL_FIELDS = (
    "first_name",
    "last_name",
    "phone",
    "job_title",
    "company_name",
    "company_size",
    "industry",
    "country",
    "city",
)


def _change_key(cause: Event | None, what: str) -> str:
    # A change caused by an event is keyed by that event, so reprocessing it
    # cannot emit the change twice; a change from a person is unique anyway.
    if cause is not None and cause.pk:
        return f"{what}:{cause.pk}"
    return f"{what}:{uuid.uuid4().hex}"


def _json_value(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def lead_update(
    *,
    lead: Lead,
    changes: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
    raw_traits: dict[str, Any] | None = None,
    tags_add: Iterable[str] = (),
    tags_remove: Iterable[str] = (),
    cause: Event | None = None,
    at: dt.datetime | None = None,
) -> list[str]:
    """Apply changes to a (locked) lead and emit ``field.changed`` / ``tag.*`` events.

    ``custom`` values must already be cleaned; a ``None`` custom value removes it.
    A stage change is dated ``at``, else at the cause's time, else now (see
    ``lead_stage_reached``). Returns the names of the fields that changed.
    """
    changed: list[str] = []
    depth = cause.depth + 1 if cause is not None else 0
    for field, value in (changes or {}).items():
        old = getattr(lead, field)
        if field == "owner":
            if _owner_change(lead=lead, owner=value, cause=cause, depth=depth):
                changed.append(field)
            continue
        if old == value:
            continue
        setattr(lead, field, value)
        changed.append(field)
        event_derive(
            lead=lead,
            type="field.changed",
            name=field,
            properties={"field": field, "from": _json_value(old), "to": _json_value(value)},
            key=_change_key(cause, f"field.changed:{field}"),
            depth=depth,
        )
    if custom:
        changed += _custom_change(lead=lead, custom=custom, cause=cause, depth=depth)
    if raw_traits:
        merged_raw = {**lead.raw_traits, **raw_traits}
        if merged_raw != lead.raw_traits:
            lead.raw_traits = merged_raw
            changed.append("raw_traits")
    if changed:
        fields = {c for c in changed if c in _model_fields()}
        lead.save(update_fields=[*sorted(fields), "updated_at"])
    if "stage" in changed:
        lead_stage_reached(lead=lead, cause=cause, at=at)
    changed += lead_tags_change(
        lead=lead, add=tags_add, remove=tags_remove, cause=cause, depth=depth
    )
    return changed


# The column that dates when a lead first reached each stage of its lifecycle.
STAGE_DATE_FIELDS = {
    Stage.MQL: "mql_at",
    Stage.SQL: "sql_at",
    Stage.OPPORTUNITY: "opportunity_at",
    Stage.CUSTOMER: "customer_at",
    Stage.LOST: "lost_at",
    Stage.DISQUALIFIED: "disqualified_at",
}
# Reaching either first freezes the score the model gave before sales acted.
QUALIFYING_STAGES = (Stage.OPPORTUNITY, Stage.CUSTOMER)


def _stage_updates(stage: str, at: dt.datetime) -> dict[str, Any]:
    """The UPDATE that dates reaching ``stage`` at ``at``: each date is written
    only where it is empty, and ``qualified_score`` only the first time a lead
    becomes an opportunity or a customer (the row's old values decide, so the
    date written by the same statement does not count)."""
    updates: dict[str, Any] = {}
    field = STAGE_DATE_FIELDS.get(Stage(stage))
    if field is not None:
        updates[field] = Coalesce(F(field), Value(at))
    if stage in QUALIFYING_STAGES:
        updates["qualified_score"] = Case(
            When(
                qualified_score__isnull=True,
                opportunity_at__isnull=True,
                customer_at__isnull=True,
                then=F("score"),
            ),
            default=F("qualified_score"),
        )
    return updates


def leads_stage_reached(*, stages: dict[int, str], at: dt.datetime) -> None:
    """Date the stages these leads (id → the stage each just reached) reached at
    ``at``, freeze their qualified score and close their follow-ups where the
    stage closes them: a statement or two per stage, whatever the number of
    leads (a CSV import moves a thousand at once)."""
    by_stage: dict[str, list[int]] = {}
    for lead_id, stage in stages.items():
        by_stage.setdefault(stage, []).append(lead_id)
    for stage, ids in sorted(by_stage.items()):
        updates = _stage_updates(stage, at)
        if updates:
            Lead.objects.filter(pk__in=ids).update(**updates)
        if stage in CLOSED_STAGES:
            tasks_follow_up_close(lead_ids=ids, stage=stage)


def lead_stage_reached(
    *, lead: Lead, cause: Event | None = None, at: dt.datetime | None = None
) -> None:
    """Date the lead's (new) stage the first time it reaches it, at ``at`` or
    the cause's time (the event that moved it; now for a person's change); freeze
    ``qualified_score`` the first time it becomes an opportunity or a customer;
    close its open follow-up tasks when it leaves the running.

    Only the stage reached is dated: a lead that jumps to customer gets no MQL
    date. A conditional UPDATE (dates already set are kept, whatever the
    in-memory lead says), so a stage moving on or back never rewrites history.
    """
    if at is None:
        at = cause.occurred_at if cause is not None else timezone.now()
    leads_stage_reached(stages={lead.pk: lead.stage}, at=at)
    lead.refresh_from_db(fields=[*STAGE_DATE_FIELDS.values(), "qualified_score"])


def _owner_change(*, lead: Lead, owner: User | None, cause: Event | None, depth: int) -> bool:
    """Give the lead to ``owner``; the change is told by ids. False when the lead
    has that owner already."""
    old_id = lead.owner_id
    new_id = owner.pk if owner is not None else None
    if old_id == new_id:
        return False
    lead.owner = owner
    event_derive(
        lead=lead,
        type="field.changed",
        name="owner",
        properties={"field": "owner", "from": old_id, "to": new_id},
        key=_change_key(cause, "field.changed:owner"),
        depth=depth,
    )
    return True


def _custom_change(
    *, lead: Lead, custom: dict[str, Any], cause: Event | None, depth: int
) -> list[str]:
    """Merge cleaned custom values into the lead's (None removes one): the keys
    that changed, and ``custom_fields`` when any did."""
    changed: list[str] = []
    merged = dict(lead.custom_fields)
    for key, value in custom.items():
        old = merged.get(key)
        if old == value:
            continue
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
        changed.append(key)
        event_derive(
            lead=lead,
            type="field.changed",
            name=key,
            properties={"field": key, "from": old, "to": value, "custom": True},
            key=_change_key(cause, f"field.changed:{key}"),
            depth=depth,
        )
    if merged != lead.custom_fields:
        lead.custom_fields = merged
        changed.append("custom_fields")
    return changed


def _model_fields() -> set[str]:
    return {f.name for f in Lead._meta.concrete_fields}


def lead_tags_change(
    *,
    lead: Lead,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    cause: Event | None = None,
    depth: int = 0,
) -> list[str]:
    """Add and remove tags by name (new names create tags); emits tag events."""
    add_names = {n.strip() for n in add if n and n.strip()}
    remove_names = {n.strip() for n in remove if n and n.strip()} - add_names
    if not add_names and not remove_names:
        return []
    current = set(lead.tags.values_list("name", flat=True))
    to_add = sorted(add_names - current)
    to_remove = sorted(remove_names & current)
    if to_add:
        Tag.objects.bulk_create([Tag(name=n) for n in to_add], ignore_conflicts=True)
        lead.tags.add(*Tag.objects.filter(name__in=to_add))
    if to_remove:
        lead.tags.remove(*Tag.objects.filter(name__in=to_remove))
    for name in to_add:
        event_derive(
            lead=lead,
            type="tag.added",
            name=name,
            properties={"tag": name},
            key=_change_key(cause, f"tag.added:{name}"),
            depth=depth,
        )
    for name in to_remove:
        event_derive(
            lead=lead,
            type="tag.removed",
            name=name,
            properties={"tag": name},
            key=_change_key(cause, f"tag.removed:{name}"),
            depth=depth,
        )
    return ["tags"] if to_add or to_remove else []


@transaction.atomic
def lead_create(
    *,
    fields: dict[str, Any],
    custom: dict[str, Any] | None = None,
    tags: Iterable[str] = (),
    owner: User | None = None,
    cause: Event | None = None,
) -> Lead:
    """Create a lead (email lower-cased) and emit ``lead.created``."""
    data = dict(fields)
    if data.get("email"):
        data["email"] = data["email"].strip().lower()
    lead = Lead.objects.create(**data, owner=owner, custom_fields=custom or {})
    depth = cause.depth + 1 if cause is not None else 0
    event_derive(
        lead=lead,
        type="lead.created",
        properties={"email": lead.email, "external_id": lead.external_id},
        key=f"lead.created:{lead.pk}",
        depth=depth,
    )
    if tags:
        lead_tags_change(lead=lead, add=tags, cause=cause, depth=depth)
    return lead


# Written out: once per event on the embedded default, where building it
# through the ORM took longer than running it.
_LEAD_TOUCH = (
    f"UPDATE {Lead._meta.db_table} SET last_activity_at = %s "  # noqa: S608
    "WHERE id = %s AND (last_activity_at IS NULL OR last_activity_at < %s)"
)


def lead_touch(*, lead: Lead, at: Any) -> None:
    """Move ``last_activity_at`` forward to ``at`` (never back: late events exist)."""
    moment = connection.ops.adapt_datetimefield_value(at)
    with connection.cursor() as cursor:
        cursor.execute(_LEAD_TOUCH, [moment, lead.pk, moment])


@transaction.atomic
def lead_merge(*, source: Lead, target: Lead, cause: Event | None = None) -> Lead:
    """Fold ``source`` into ``target``: events, identities, tags, blank fields and
    custom fields move over (the target's values win), then ``source`` is deleted.

    Both rows must be locked by the caller. Merging a lead that no longer exists
    is a no-op, so a retried merge does nothing twice.
    """
    if source.pk == target.pk or not Lead.objects.filter(pk=source.pk).exists():
        return target
    Event.objects.filter(lead=source).update(lead=target)
    Identity.objects.filter(lead=source).update(lead=target)
    _merge_memberships(source=source, target=target)
    tag_names = list(source.tags.values_list("name", flat=True))
    update_fields = {"custom_fields", "raw_traits", "unsubscribed", "updated_at"}
    for field in MERGE_FILL_FIELDS:
        if not getattr(target, field) and getattr(source, field):
            setattr(target, field, getattr(source, field))
            update_fields.add(field)
    identifiers = {}
    kept: list[tuple[str, str]] = []
    for field, kind in (("email", IdentityKind.EMAIL), ("external_id", IdentityKind.USER_ID)):
        value = getattr(source, field)
        if not value:
            continue
        if not getattr(target, field):
            identifiers[field] = value
        else:
            # The target has its own: the source's stays findable as an identity.
            kept.append((kind, value))
    if target.owner_id is None and source.owner_id is not None:
        target.owner_id = source.owner_id
        update_fields.add("owner")
    if target.stage == Stage.SUBSCRIBER and source.stage != Stage.SUBSCRIBER:
        target.stage = source.stage
        update_fields.add("stage")
    update_fields |= _merge_outcomes(source=source, target=target)
    target.custom_fields = {**source.custom_fields, **target.custom_fields}
    target.raw_traits = {**source.raw_traits, **target.raw_traits}
    target.unsubscribed = target.unsubscribed or source.unsubscribed
    activity = [t for t in (target.last_activity_at, source.last_activity_at) if t]
    if activity:
        target.last_activity_at = max(activity)
        update_fields.add("last_activity_at")
    created_at = min(target.created_at, source.created_at)
    source_id = source.pk
    # Deleting first frees the source's unique identifiers for the target.
    source.delete()
    for field, value in identifiers.items():
        setattr(target, field, value)
        update_fields.add(field)
    target.save(update_fields=sorted(update_fields))
    Lead.objects.filter(pk=target.pk).update(created_at=created_at)
    target.created_at = created_at
    if tag_names:
        target.tags.add(*Tag.objects.filter(name__in=tag_names))
    Identity.objects.bulk_create(
        [Identity(kind=kind, value=value, lead=target) for kind, value in kept],
        ignore_conflicts=True,
    )
    event_derive(
        lead=target,
        type="lead.merged",
        properties={"merged_lead_id": source_id},
        key=f"lead.merged:{source_id}",
        depth=cause.depth + 1 if cause is not None else 0,
    )
    logger.info("merged lead %s into %s", source_id, target.pk)
    return target


def _merge_outcomes(*, source: Lead, target: Lead) -> set[str]:
    """Where the merged lead came from (when the target does not know) and the
    earliest date each stage was reached by either: the fields that changed."""
    changed: set[str] = set()
    if not target.source and source.source:
        target.source, target.source_detail = source.source, source.source_detail
        changed |= {"source", "source_detail"}
    for field in STAGE_DATE_FIELDS.values():
        dates = [d for d in (getattr(target, field), getattr(source, field)) if d is not None]
        if dates and min(dates) != getattr(target, field):
            setattr(target, field, min(dates))
            changed.add(field)
    if target.qualified_score is None and source.qualified_score is not None:
        target.qualified_score = source.qualified_score
        changed.add("qualified_score")
    return changed


def _merge_memberships(*, source: Lead, target: Lead) -> None:
    """Segment history moves to the target; where both are in a segment, the
    target's stay is kept. Dynamic segments are re-checked through lead.merged."""
    both = SegmentMembership.objects.filter(lead=target, left_at__isnull=True).values("segment_id")
    open_duplicates = SegmentMembership.objects.filter(
        lead=source, left_at__isnull=True, segment_id__in=both
    )
    counts = dict(
        open_duplicates.values_list("segment_id")
        .annotate(n=Count("id"))
        .values_list("segment_id", "n")
    )
    open_duplicates.delete()
    for segment_id, n in counts.items():
        Segment.objects.filter(pk=segment_id).update(
            member_count=Greatest(F("member_count") - n, 0)
        )
    SegmentMembership.objects.filter(lead=source).update(lead=target)
    excluded = set(
        SegmentExclusion.objects.filter(lead=target).values_list("segment_id", flat=True)
    )
    SegmentExclusion.objects.filter(lead=source).exclude(segment_id__in=excluded).update(
        lead=target
    )

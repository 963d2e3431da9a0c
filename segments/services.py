"""Segments: saving, full recompute, the per-lead check after a change, and the
hand-made moves (static members, exclusions). Every entry and exit is an open
or closed SegmentMembership row and one ``segment.entered`` / ``segment.left``
event keyed by that row, so each change is announced exactly once."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import (
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext

from core.vocabulary import CONSENT_CHANGED
from leads.models import (
    Event,
    Lead,
    MembershipSource,
    Segment,
    SegmentExclusion,
    SegmentKind,
    SegmentMembership,
)
from leads.outages import task_send, task_send_on_commit
from leads.services.background import resend_due
from leads.services.bulk import BATCH_SIZE, BulkResult, Progress, id_batches
from leads.services.events import events_record
from segments.check import ALWAYS, lead_check, segment_event, segment_event_settled
from segments.conditions import (
    ConditionError,
    compile_tree,
    is_time_relative,
    referenced_segments,
    validate,
)

logger = logging.getLogger(__name__)

BATCH = 2000


def segment_conditions_clean(
    *, conditions: Any, kind: str, segment: Segment | None = None
) -> dict[str, Any]:
    """Validate a tree for a segment: known segments only, and no cycle of
    segments referring to each other (which could never settle)."""
    if kind == SegmentKind.STATIC:
        if conditions:
            raise ConditionError({"": [gettext("A static segment has no conditions.")]})
        return {}
    ids = set(Segment.objects.values_list("id", flat=True))
    tree = validate(conditions, segment_ids=ids)
    if segment is not None and segment.pk:
        refs = referenced_segments(tree)
        if segment.pk in refs or segment.pk in _reachable(refs):
            raise ConditionError({"": [gettext("Segments would refer to each other in a cycle.")]})
    return tree


def _reachable(start: set[int]) -> set[int]:
    """Segments reachable through segment rules from ``start``."""
    seen: set[int] = set()
    frontier = set(start)
    trees = dict(Segment.objects.filter(kind=SegmentKind.DYNAMIC).values_list("id", "conditions"))
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        frontier |= referenced_segments(trees.get(current) or {"all": []}) - seen
    return seen


def _schedule_recompute(segment: Segment) -> None:
    """Ask a worker for a recompute after commit, and stamp the request so that
    the segment's page can show the refresh running until it is done."""
    from segments.tasks import segment_recompute_task

    segment.refresh_requested_at = timezone.now()
    Segment.objects.filter(pk=segment.pk).update(
        refresh_requested_at=segment.refresh_requested_at,
        refresh_resends=0,
        refresh_resent_at=None,
    )
    segment_id = segment.pk
    task_send_on_commit(segment_recompute_task, segment_id)


def segment_refreshes_sweep(
    *, now: datetime, before: datetime | None, waited: datetime, limit: int
) -> tuple[int, bool]:
    """Send again the recompute of each dynamic segment whose "Refresh now" is
    still waiting after its message left the queue (part of beat's
    ``jobs_sweep``). Returns how many were sent, and False when the broker went
    out of reach."""
    from segments.tasks import segment_recompute_task

    refreshes = (
        Segment.objects.filter(kind=SegmentKind.DYNAMIC, refresh_requested_at__lt=waited)
        .filter(
            Q(last_refreshed_at__isnull=True) | Q(last_refreshed_at__lt=F("refresh_requested_at"))
        )
        .values("pk", "refresh_requested_at", "refresh_resends", "refresh_resent_at")[:limit]
    )
    sent = 0
    for row in refreshes:
        last = cast(datetime, row["refresh_resent_at"] or row["refresh_requested_at"])
        if not resend_due(last=last, resends=row["refresh_resends"], now=now, before=before):
            continue
        if not task_send(segment_recompute_task, row["pk"]):
            return sent, False
        Segment.objects.filter(pk=row["pk"]).update(
            refresh_resends=F("refresh_resends") + 1, refresh_resent_at=now
        )
        sent += 1
    return sent, True


@transaction.atomic
def segment_refresh_request(*, segment: Segment) -> None:
    """Recompute a dynamic segment in a worker ("Refresh now")."""
    if segment.kind != SegmentKind.DYNAMIC:
        raise ConditionError({"": [gettext("Only dynamic segments are recomputed.")]})
    _schedule_recompute(segment)


@transaction.atomic
def segment_create(
    *,
    name: str,
    kind: str = SegmentKind.DYNAMIC,
    conditions: Any = None,
    description: str = "",
    created_by: User | None = None,
) -> Segment:
    """Create a segment; a dynamic one is filled by a recompute after commit."""
    tree = segment_conditions_clean(conditions=conditions or {}, kind=kind)
    segment = Segment.objects.create(
        name=name,
        description=description,
        kind=kind,
        conditions=tree,
        time_relative=kind == SegmentKind.DYNAMIC and is_time_relative(tree),
        created_by=created_by,
    )
    if kind == SegmentKind.DYNAMIC:
        _schedule_recompute(segment)
    return segment


@transaction.atomic
def segment_update(
    *,
    segment: Segment,
    name: str | None = None,
    description: str | None = None,
    conditions: Any = None,
) -> Segment:
    """Rename or re-describe a segment, or change its conditions (then recompute)."""
    fields = ["updated_at"]
    if name is not None:
        segment.name = name
        fields.append("name")
    if description is not None:
        segment.description = description
        fields.append("description")
    if conditions is not None:
        tree = segment_conditions_clean(conditions=conditions, kind=segment.kind, segment=segment)
        segment.conditions = tree
        segment.time_relative = segment.kind == SegmentKind.DYNAMIC and is_time_relative(tree)
        fields += ["conditions", "time_relative"]
    segment.save(update_fields=fields)
    if conditions is not None and segment.kind == SegmentKind.DYNAMIC:
        _schedule_recompute(segment)
    return segment


def segment_delete(*, segment: Segment) -> None:
    """Delete a segment that no other segment refers to."""
    users = [
        s.name
        for s in Segment.objects.filter(kind=SegmentKind.DYNAMIC).exclude(pk=segment.pk)
        if segment.pk in referenced_segments(s.conditions or {"all": []})
    ]
    if users:
        raise ConditionError(
            {
                "": [
                    gettext("Used by the segments: %(names)s.")
                    % {"names": ", ".join(sorted(users))}
                ]
            }
        )
    segment.delete()


# --- entering and leaving -----------------------------------------------------------


def _segment_event(
    membership_id: int, lead_id: int, segment: Segment, type_: str, at: Any, depth: int
) -> Event:
    return segment_event(
        membership_id=membership_id,
        lead_id=lead_id,
        segment_id=segment.pk,
        name=segment.name,
        type_=type_,
        at=at,
        depth=depth,
    )


def _enter(segment: Segment, lead_ids: Iterable[int], source: str, *, depth: int = 0) -> list[int]:
    """Open a stay for each lead not already in; returns who actually entered."""
    lead_ids = list(lead_ids)
    if not lead_ids:
        return []
    now = timezone.now()
    SegmentMembership.objects.bulk_create(
        [
            SegmentMembership(segment=segment, lead_id=lead_id, entered_at=now, source=source)
            for lead_id in lead_ids
        ],
        ignore_conflicts=True,
    )
    # Rows that are ours carry our timestamp; a concurrent entry kept its own
    # and announced itself.
    entered = list(
        SegmentMembership.objects.filter(
            segment=segment, lead_id__in=lead_ids, entered_at=now, left_at__isnull=True
        ).values_list("id", "lead_id")
    )
    if entered:
        Segment.objects.filter(pk=segment.pk).update(member_count=F("member_count") + len(entered))
        events_record(
            events=[
                _segment_event(mid, lid, segment, "segment.entered", now, depth)
                for mid, lid in entered
            ]
        )
    return [lead_id for _, lead_id in entered]


def _leave(segment: Segment, lead_ids: Iterable[int], *, depth: int = 0) -> list[int]:
    """Close the open stay of each lead; returns who actually left."""
    lead_ids = list(lead_ids)
    if not lead_ids:
        return []
    now = timezone.now()
    open_stays = SegmentMembership.objects.filter(
        segment=segment, lead_id__in=lead_ids, left_at__isnull=True
    )
    stays = list(open_stays.values_list("id", "lead_id"))
    closed = SegmentMembership.objects.filter(
        pk__in=[mid for mid, _ in stays], left_at__isnull=True
    ).update(left_at=now)
    if not closed:
        return []
    left = list(
        SegmentMembership.objects.filter(pk__in=[mid for mid, _ in stays], left_at=now).values_list(
            "id", "lead_id"
        )
    )
    # Never below zero, whatever a concurrent recount did; the next recompute
    # sets the exact number.
    Segment.objects.filter(pk=segment.pk).update(
        member_count=Greatest(F("member_count") - len(left), 0)
    )
    events_record(
        events=[_segment_event(mid, lid, segment, "segment.left", now, depth) for mid, lid in left]
    )
    return [lead_id for _, lead_id in left]


def _excluded(segment: Segment) -> Exists:
    return Exists(SegmentExclusion.objects.filter(segment=segment, lead_id=OuterRef("pk")))


def segment_recompute(*, segment: Segment) -> dict[str, int]:
    """Bring a dynamic segment's members in line with its conditions: joiners and
    leavers come from one set query and are moved in batches. Returns the counts."""
    if segment.kind != SegmentKind.DYNAMIC:
        return {"entered": 0, "left": 0}
    joiners, leavers = _differences(segment)
    entered = left = 0
    for start in range(0, len(joiners), BATCH):
        with transaction.atomic():
            batch = joiners[start : start + BATCH]
            entered += len(_enter(segment, batch, MembershipSource.CONDITION))
    for start in range(0, len(leavers), BATCH):
        with transaction.atomic():
            left += len(_leave(segment, leavers[start : start + BATCH]))
    # One statement: a count read first and written later would race with the
    # per-lead updates of a worker.
    open_stays = (
        SegmentMembership.objects.filter(segment_id=OuterRef("pk"), left_at__isnull=True)
        .order_by()
        .values("segment_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    Segment.objects.filter(pk=segment.pk).update(
        member_count=Coalesce(Subquery(open_stays), 0), last_refreshed_at=timezone.now()
    )
    logger.info("segment %s recomputed: %s entered, %s left", segment.pk, entered, left)
    return {"entered": entered, "left": left}


def _differences(segment: Segment) -> tuple[list[int], list[int]]:
    """Who should be in but is not (joiners) and who is in but should not be
    (leavers), in one statement that evaluates the conditions once: the wanted
    leads and the open stays are stacked, and an id found on one side only is a
    difference. Evaluating the conditions twice, once negated, costs a
    correlated probe per member wherever ``NOT EXISTS`` is no longer an anti
    join, and a server-side cursor is never run in parallel on PostgreSQL."""
    wanted = (
        Lead.objects.filter(compile_tree(segment.conditions))
        .exclude(_excluded(segment))
        .values("id")
        .order_by()
    )
    stays = (
        SegmentMembership.objects.filter(segment=segment, left_at__isnull=True)
        .values("lead_id")
        .order_by()
    )
    wanted_sql, wanted_params = wanted.query.sql_with_params()
    stays_sql, stays_params = stays.query.sql_with_params()
    # Both parts are compiled by the ORM; every value is a bound parameter.
    statement = (
        "SELECT u.lead_id, max(u.side) FROM ("  # noqa: S608
        f"SELECT w.id AS lead_id, 1 AS side FROM ({wanted_sql}) w "
        f"UNION ALL SELECT s.lead_id, 2 AS side FROM ({stays_sql}) s"
        ") u GROUP BY u.lead_id HAVING count(*) = 1"
    )
    joiners: list[int] = []
    leavers: list[int] = []
    with connection.cursor() as cursor:
        cursor.execute(statement, (*wanted_params, *stays_params))
        while rows := cursor.fetchmany(BATCH):
            for lead_id, side in rows:
                (joiners if side == 1 else leavers).append(lead_id)
    # Oldest leads first, as a recompute always moved them.
    return sorted(joiners), sorted(leavers)


def segments_refresh_time_relative() -> int:
    """Recompute every segment whose rules are relative to now (from beat)."""
    segments = Segment.objects.filter(kind=SegmentKind.DYNAMIC, time_relative=True)
    for segment in segments:
        segment_recompute(segment=segment)
    return len(segments)


# --- the per-lead check ---------------------------------------------------------------


def dependency_keys(event: Event) -> set[str]:
    """What this (applied) event may have changed, as dependency keys."""
    if event.type == "lead.created":
        return {ALWAYS}
    if event.type == "field.changed":
        custom = event.properties.get("custom")
        return {f"field:custom.{event.name}" if custom else f"field:{event.name}"}
    if event.type in ("tag.added", "tag.removed"):
        return {"field:tags"}
    if event.type in ("segment.entered", "segment.left"):
        return {f"segment:{event.properties.get('segment_id')}"}
    if event.type == "lead.merged":
        return {ALWAYS}
    if event.type == "score.changed":
        return {"field:score", f"field:score.{event.properties.get('category')}"}
    if event.type == CONSENT_CHANGED:
        # The state is a field rule; the event itself is not countable.
        return {"field:consent_state"}
    if event.type == "grade.changed":
        # One event tells of the grade and of both axes.
        return {"field:grade", "field:fit_grade", "field:engagement_grade"}
    return {f"activity:{event.type}"}


def segments_on_event(*, event: Event, lead: Lead) -> None:
    """The pipeline's reaction (registered by ``LeadsConfig.ready``): re-check
    the segments that the applied event can change."""
    if segment_event_settled(event):
        # Written by a check that also checked the segments referring to its
        # segment: heard by flows or hooks, nothing left for segments.
        return
    segments_check_lead(lead=lead, keys=dependency_keys(event), cause=event)


def segments_check_lead(*, lead: Lead, keys: set[str], cause: Event | None = None) -> None:
    """Re-check, for this lead only, the dynamic segments that depend on ``keys``;
    enter or leave where the answer changed. The lead is locked by the caller.

    One statement evaluates every such segment at once, whatever their number,
    after one read of the lead's stays per event's transaction
    (``segments.check``)."""
    lead_check(lead_id=lead.pk, keys=keys, cause=cause)


# --- by hand ---------------------------------------------------------------------------


@transaction.atomic
def segment_add_leads(
    *, segment: Segment, lead_ids: Iterable[int], source: str = MembershipSource.MANUAL
) -> int:
    """Add leads to a static segment; returns how many were not in it already."""
    if segment.kind != SegmentKind.STATIC:
        raise ConditionError({"": [gettext("Leads are added by hand to static segments only.")]})
    return len(_enter(segment, lead_ids, source))


@transaction.atomic
def segment_remove_leads(*, segment: Segment, lead_ids: Iterable[int]) -> int:
    if segment.kind != SegmentKind.STATIC:
        raise ConditionError(
            {"": [gettext("Leads are removed by hand from static segments only.")]}
        )
    return len(_leave(segment, lead_ids))


@transaction.atomic
def segment_exclude_leads(
    *, segment: Segment, lead_ids: Iterable[int], created_by: User | None = None
) -> int:
    """Keep leads out of a dynamic segment until they are included again."""
    if segment.kind != SegmentKind.DYNAMIC:
        raise ConditionError(
            {"": [gettext("Only dynamic segments have exclusions; remove the lead.")]}
        )
    lead_ids = list(lead_ids)
    SegmentExclusion.objects.bulk_create(
        [SegmentExclusion(segment=segment, lead_id=i, created_by=created_by) for i in lead_ids],
        ignore_conflicts=True,
    )
    return len(_leave(segment, lead_ids))


@transaction.atomic
def segment_include_leads(*, segment: Segment, lead_ids: Iterable[int]) -> int:
    """Lift exclusions; leads that match the conditions enter again."""
    lead_ids = list(lead_ids)
    SegmentExclusion.objects.filter(segment=segment, lead_id__in=lead_ids).delete()
    if segment.kind != SegmentKind.DYNAMIC:
        return 0
    matching = Lead.objects.filter(pk__in=lead_ids).filter(compile_tree(segment.conditions))
    return len(_enter(segment, matching.values_list("id", flat=True), MembershipSource.CONDITION))


def leads_segment_add(
    *,
    leads: QuerySet[Lead],
    values: dict[str, Any],
    progress: Progress = None,
    batch_size: int = BATCH_SIZE,
) -> BulkResult:
    """The leads list's "Add to segment": every lead in ``leads`` into the static
    segment ``values["segment"]``; leads already in it stay as they are
    (``changed`` counts those that entered). ValueError when that segment is gone
    before any lead changes."""
    segment = Segment.objects.filter(pk=values["segment"], kind=SegmentKind.STATIC).first()
    if segment is None:
        raise ValueError("The static segment no longer exists.")
    total = changed = 0
    for batch in id_batches(leads, batch_size):
        with transaction.atomic():
            total += len(batch)
            changed += segment_add_leads(segment=segment, lead_ids=batch)
            if progress is not None:
                progress(BulkResult(total=total, changed=changed))
    return BulkResult(total=total, changed=changed)

"""Changes to many leads at once, from the leads list.

Every change goes through the single-lead services, so each lead that actually
changes gets its own ``field.changed`` / ``tag.*`` / ``segment.entered`` event
(and flows react to it), and a lead already in the wanted state gets none. Large
sets are worked through in batches, one transaction each, so a bulk action on a
hundred thousand leads never holds one huge transaction or list in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet

from leads.models import Lead
from leads.roles import user_role
from leads.services.leads import lead_update
from leads.services.policy import ChangeRefused, bulk_action_refusal

BATCH_SIZE = 500


@dataclass(frozen=True)
class BulkResult:
    """How many leads the action was applied to, and how many of them changed."""

    total: int
    changed: int


def id_batches(leads: QuerySet[Lead], size: int) -> Iterator[list[int]]:
    # Keyset over the id: each batch is a fresh query, so nothing but one batch of
    # ids is ever in memory, and leads changed by an earlier batch are not missed.
    last = 0
    while True:
        batch = list(leads.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size])
        if not batch:
            return
        yield batch
        last = batch[-1]


Progress = Callable[[BulkResult], None] | None


def _each_lead(
    leads: QuerySet[Lead],
    change: Callable[[Lead], bool],
    batch_size: int,
    progress: Progress = None,
) -> BulkResult:
    total = changed = 0
    for batch in id_batches(leads, batch_size):
        with transaction.atomic():
            # Locked and re-read through ``leads``, so a lead that left the set
            # since the batch was read is left alone.
            locked = leads.filter(pk__in=batch).select_for_update(of=("self",)).order_by("pk")
            for lead in locked:
                total += 1
                changed += change(lead)
            # In the batch's transaction: a job's count of changed leads commits
            # with the changes, and a job taken over by another worker stops
            # before its batch commits.
            if progress is not None:
                progress(BulkResult(total=total, changed=changed))
    return BulkResult(total=total, changed=changed)


def leads_owner_set(
    *,
    leads: QuerySet[Lead],
    owner: User | None,
    batch_size: int = BATCH_SIZE,
    progress: Progress = None,
) -> BulkResult:
    """Give every lead in ``leads`` to ``owner`` (None unassigns them)."""
    return _each_lead(
        leads,
        lambda lead: bool(lead_update(lead=lead, changes={"owner": owner})),
        batch_size,
        progress,
    )


def leads_stage_set(
    *,
    leads: QuerySet[Lead],
    stage: str,
    batch_size: int = BATCH_SIZE,
    progress: Progress = None,
) -> BulkResult:
    """Move every lead in ``leads`` to ``stage``."""
    return _each_lead(
        leads,
        lambda lead: bool(lead_update(lead=lead, changes={"stage": stage})),
        batch_size,
        progress,
    )


def leads_tags_change(
    *,
    leads: QuerySet[Lead],
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    batch_size: int = BATCH_SIZE,
    progress: Progress = None,
) -> BulkResult:
    """Add and remove tags (by name; new names create tags) on every lead in ``leads``."""
    add, remove = list(add), list(remove)
    return _each_lead(
        leads,
        lambda lead: bool(lead_update(lead=lead, tags_add=add, tags_remove=remove)),
        batch_size,
        progress,
    )


class BulkAction(Protocol):
    """A bulk change an app above adds to the leads list (segments' "add to a
    static segment"): run over ``leads`` with the values the list sent."""

    def __call__(
        self, *, leads: QuerySet[Lead], values: dict[str, Any], progress: Progress
    ) -> BulkResult: ...


_REGISTERED: dict[str, BulkAction] = {}


def bulk_action_register(*, name: str, run: BulkAction) -> None:
    """Let the leads list run an app's own bulk change, under one of
    ``BULK_ACTIONS``. Called from the app's ``AppConfig.ready``."""
    if name not in BULK_ACTIONS:
        raise ValueError(f"{name!r} is not one of BULK_ACTIONS")
    _REGISTERED[name] = run


# "segment" (add to a static segment) is run by segments, registered at ready.
BULK_ACTIONS = ("owner", "tag_add", "tag_remove", "segment", "stage")


def bulk_change_check(*, user: Any, action: str, values: dict[str, Any]) -> None:
    """Raise ChangeRefused when ``user``'s role may not run this bulk change."""
    refused = bulk_action_refusal(
        role=user_role(user), user_id=getattr(user, "pk", None), action=action, values=values
    )
    if refused:
        raise ChangeRefused(refused)


def leads_bulk_change(
    *,
    leads: QuerySet[Lead],
    action: str,
    values: dict[str, Any],
    user: Any,
    progress: Progress = None,
) -> BulkResult:
    """One of ``BULK_ACTIONS`` with its value as ids and names (``owner``: a user
    id or None, ``tag``, ``segment``: a static segment's id, ``stage``), as the
    leads list sends it and a background job keeps it, run for ``user``. A change
    their role may not make raises ChangeRefused, an owner or segment gone since
    it was chosen ValueError, both before any lead changes."""
    bulk_change_check(user=user, action=action, values=values)
    if action == "owner":
        owner = None
        if values.get("owner"):
            owner = User.objects.filter(pk=values["owner"], is_active=True).first()
            if owner is None:
                raise ValueError("The chosen owner is no longer an active user.")
        return leads_owner_set(leads=leads, owner=owner, progress=progress)
    if action == "tag_add":
        return leads_tags_change(leads=leads, add=[values["tag"]], progress=progress)
    if action == "tag_remove":
        return leads_tags_change(leads=leads, remove=[values["tag"]], progress=progress)
    if action in _REGISTERED:
        return _REGISTERED[action](leads=leads, values=values, progress=progress)
    if action == "stage":
        return leads_stage_set(leads=leads, stage=values["stage"], progress=progress)
    raise ValueError(f"unknown bulk action {action!r}")

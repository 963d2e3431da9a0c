"""A flow's life: created (or copied), renamed and its settings changed, its
draft edited and saved, published as an immutable version (which routes events
to its triggers), an old version restored as the draft, paused, resumed,
archived and brought back; deleted while it was never published."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext

from flows.graph import GraphError, graph_unmask, graph_validate
from flows.models import (
    Flow,
    FlowStatus,
    FlowVersion,
    Reentry,
    TriggerSubscription,
    Wakeup,
)
from flows.nodes import REGISTRY
from scoring.services import review_log_record

logger = logging.getLogger(__name__)


class DraftConflict(Exception):
    """The draft changed since the editor loaded it."""


class FlowRefused(ValueError):
    """A change to a flow that its rules refuse: ``field`` is the input it is
    about ("name", or "flow" for the flow as a whole), ``message`` a sentence."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


NAME_MAX = 200


def _name_taken(name: str) -> FlowRefused:
    return FlowRefused(
        "name",
        gettext("A flow named “%(name)s” exists already. Choose another name.") % {"name": name},
    )


def _name_checked(name: str, *, exclude: int | None = None) -> str:
    """``name`` stripped, if no other flow has it (case ignored); else FlowRefused."""
    name = name.strip()
    if not name:
        raise FlowRefused("name", gettext("Give the flow a name."))
    if len(name) > NAME_MAX:
        raise FlowRefused(
            "name", gettext("A flow name has at most %(count)d characters.") % {"count": NAME_MAX}
        )
    if flow_name_taken(name=name, exclude=exclude):
        raise _name_taken(name)
    return name


def flow_name_taken(*, name: str, exclude: int | None = None) -> bool:
    """Whether another flow has this name, case ignored (as the database's
    unique index on the lower-cased name compares)."""
    flows = Flow.objects.filter(name__iexact=name.strip())
    if exclude is not None:
        flows = flows.exclude(pk=exclude)
    return flows.exists()


def flow_name_free(*, base: str) -> str:
    """``base``, or the first of "base (2)", "base (3)" … no flow has: for names
    the app makes (a copy, a template's flow), which must not be refused."""
    base = base.strip()[:NAME_MAX] or gettext("Untitled flow")
    taken = {
        name.lower()
        for name in Flow.objects.filter(name__istartswith=base[: NAME_MAX - 8]).values_list(
            "name", flat=True
        )
    }
    if base.lower() not in taken:
        return base
    number = 2
    while True:
        suffix = f" ({number})"
        candidate = base[: NAME_MAX - len(suffix)] + suffix
        if candidate.lower() not in taken:
            return candidate
        number += 1


# --- editing ---------------------------------------------------------------------


def flow_create(
    *,
    name: str,
    description: str = "",
    reentry: str = Reentry.ONCE,
    reentry_days: int | None = None,
    graph: dict[str, Any] | None = None,
    created_by: User | None = None,
) -> Flow:
    """A new flow, a draft; FlowRefused when another flow has the name."""
    name = _name_checked(name)
    try:
        with transaction.atomic():
            return Flow.objects.create(
                name=name,
                description=description,
                reentry=reentry,
                reentry_days=reentry_days,
                draft=graph or {"nodes": [], "edges": []},
                created_by=created_by,
            )
    except IntegrityError as exc:
        # Named the same by someone else in between.
        raise _name_taken(name) from exc


def flow_update(
    *,
    flow: Flow,
    name: str | None = None,
    description: str | None = None,
    reentry: str | None = None,
    reentry_days: int | None = None,
) -> Flow:
    """Rename a flow or change its description or re-entry rule (what is None
    stays); FlowRefused for a name another flow has. The re-entry rule applies
    to enrollments from now on, whatever version they run."""
    fields = ["updated_at"]
    if name is not None:
        flow.name = _name_checked(name, exclude=flow.pk)
        fields.append("name")
    if description is not None:
        flow.description = description.strip()
        fields.append("description")
    if reentry is not None:
        if reentry == Reentry.DAYS and not reentry_days:
            raise FlowRefused("reentry_days", gettext("Give the number of days."))
        flow.reentry = reentry
        flow.reentry_days = reentry_days if reentry == Reentry.DAYS else None
        fields += ["reentry", "reentry_days"]
    try:
        with transaction.atomic():
            flow.save(update_fields=fields)
    except IntegrityError as exc:
        raise _name_taken(flow.name) from exc
    return flow


def flow_duplicate(*, flow: Flow, name: str = "", created_by: User | None = None) -> Flow:
    """A new draft flow with ``flow``'s draft, description and re-entry rule,
    named ``name`` or "Copy of …". Nothing of the original's runs comes along."""
    if not name.strip():
        name = flow_name_free(base=gettext("Copy of %(name)s") % {"name": flow.name})
    return flow_create(
        name=name,
        description=flow.description,
        reentry=flow.reentry,
        reentry_days=flow.reentry_days,
        graph=flow.draft,
        created_by=created_by,
    )


def flow_deletable(flow: Flow) -> bool:
    """Only a flow never published may be deleted: a published one has run
    history (enrollments, score changes) that names it."""
    return flow.published_id is None and not flow.versions.exists()


@transaction.atomic
def flow_delete(*, flow: Flow) -> None:
    """Delete a draft that was never published; FlowRefused otherwise."""
    locked = Flow.objects.select_for_update().get(pk=flow.pk)
    if not flow_deletable(locked):
        raise FlowRefused(
            "flow",
            gettext(
                "“%(name)s” was published, so it stays for its history. "
                "Archive it instead: it stops and leaves the list of flows in use."
            )
            % {"name": locked.name},
        )
    locked.delete()


@transaction.atomic
def flow_draft_save(*, flow: Flow, graph: dict[str, Any], revision: int) -> Flow:
    """Save the draft if nobody saved since ``revision``; else DraftConflict.
    Secrets the editor got masked (or left out) keep their stored values."""
    locked = Flow.objects.select_for_update().get(pk=flow.pk)
    if locked.draft_revision != revision:
        raise DraftConflict()
    locked.draft = graph_unmask(graph, stored=locked.draft)
    locked.draft_revision = F("draft_revision") + 1
    locked.save(update_fields=["draft", "draft_revision", "updated_at"])
    locked.refresh_from_db()
    return locked


@transaction.atomic
def flow_version_restore(*, flow: Flow, version: FlowVersion, user: User | None) -> Flow:
    """Make a published version's graph the draft again (publish to make it live).
    The revision moves on whatever it was, so an editor still holding the old
    draft gets a conflict on their next save instead of overwriting the restore."""
    if version.flow_id != flow.pk:
        raise ValueError(f"Version {version.pk} belongs to another flow.")
    locked = Flow.objects.select_for_update().get(pk=flow.pk)
    locked.draft = version.graph
    locked.draft_revision = F("draft_revision") + 1
    locked.save(update_fields=["draft", "draft_revision", "updated_at"])
    locked.refresh_from_db()
    logger.info(
        "flow %s: version %s restored as the draft by %s",
        flow.pk,
        version.number,
        user.get_username() if user is not None else "an API key",
    )
    return locked


@transaction.atomic
def flow_publish(*, flow: Flow, user: User | None = None) -> FlowVersion:
    """Validate the draft and make it the new published version; route events to
    its triggers from now on. Running enrollments stay on their version."""
    locked = Flow.objects.select_for_update().get(pk=flow.pk)
    graph = graph_validate(locked.draft)
    number = (locked.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    version = FlowVersion.objects.create(flow=locked, number=number, graph=graph, created_by=user)
    TriggerSubscription.objects.filter(flow=locked).delete()
    subscriptions = []
    for node in graph["nodes"]:
        node_type = REGISTRY[node["type"]]
        if node_type.kind == "trigger":
            assert node_type.subscribe is not None
            event_type, key = node_type.subscribe(node.get("config", {}))
            subscriptions.append(
                TriggerSubscription(
                    flow=locked,
                    version=version,
                    node_id=node["id"],
                    event_type=event_type,
                    match_key=key,
                )
            )
    TriggerSubscription.objects.bulk_create(subscriptions)
    locked.published = version
    if locked.status in (FlowStatus.DRAFT, FlowStatus.ARCHIVED):
        locked.status = FlowStatus.ACTIVE
    locked.save(update_fields=["published", "status", "updated_at"])
    scoring = [node for node in graph["nodes"] if node["type"] == "score.adjust"]
    if scoring:
        # A scoring flow changes the model: the review reads its numbers against it.
        review_log_record(
            user=user,
            subject="flow",
            summary=gettext("Scoring flow “%(name)s” published as version %(number)s")
            % {"name": locked.name, "number": number},
            changes={
                "flow": locked.pk,
                "version": number,
                "points": {node["id"]: node.get("config", {}).get("points") for node in scoring},
            },
        )
    return version


def flow_unarchive(*, flow: Flow) -> Flow:
    """Bring an archived flow back: paused if it was published (resume it to
    run again), else a draft. A flow not archived stays as it is."""
    if flow.status != FlowStatus.ARCHIVED:
        return flow
    status = FlowStatus.PAUSED if flow.published_id is not None else FlowStatus.DRAFT
    return flow_set_status(flow=flow, status=status)


def flow_set_status(*, flow: Flow, status: str) -> Flow:
    """Pause (no new enrollments; waiting ones hold), resume, or archive."""
    if status in (FlowStatus.ACTIVE, FlowStatus.PAUSED) and flow.published_id is None:
        raise GraphError({"graph": [gettext("Publish the flow first.")]})
    with transaction.atomic():
        Flow.objects.filter(pk=flow.pk).update(status=status, updated_at=timezone.now())
        Wakeup.objects.filter(step__enrollment__flow=flow, claimed_at__isnull=True).update(
            held=status != FlowStatus.ACTIVE
        )
    flow.refresh_from_db()
    return flow

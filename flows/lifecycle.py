"""A flow's life: created, its draft edited and saved, published as an immutable
version (which routes events to its triggers), an old version restored as the
draft, paused, resumed, archived."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
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
    return Flow.objects.create(
        name=name,
        description=description,
        reentry=reentry,
        reentry_days=reentry_days,
        draft=graph or {"nodes": [], "edges": []},
        created_by=created_by,
    )


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

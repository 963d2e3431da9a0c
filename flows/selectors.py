"""Reads for the flow pages: node summaries for a whole graph, and what the node
configuration form offers to pick from."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count
from django.utils import timezone

from flows.models import Flow, StepRun, StepStatus
from flows.nodes import REGISTRY
from flows.nodes.summaries import Refs, config_refs, names_load, node_summary, user_display
from leads.models import Event, FieldDefinition, Role, Segment, SegmentKind, Tag
from scoring.models import ScoreCategory

# Suggestions come from recent events only: the (type, name, occurred_at) index
# then bounds the scan, and names no longer sent drop out of the list.
SUGGESTION_DAYS = 90
SUGGESTION_LIMIT = 50


def node_summaries(graph: Any) -> dict[str, str]:
    """Each node's canvas summary by node id ("" when it is not configured yet).
    The names of the segments, users, categories and custom fields all nodes
    point at are loaded with one query per kind."""
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    if not isinstance(nodes, list):
        return {}
    valid = [
        node
        for node in nodes
        if isinstance(node, dict) and isinstance(node.get("id"), str) and node["id"]
    ]
    refs = Refs()
    for node in valid:
        node_type = REGISTRY.get(node.get("type") or "")
        if node_type is not None:
            config_refs(node_type, node.get("config", {}), refs)
    names = names_load(refs)
    return {
        node["id"]: node_summary(str(node.get("type") or ""), node.get("config", {}), names)
        for node in valid
    }


def segment_choices(*, static_only: bool = False) -> list[tuple[int, str]]:
    segments = Segment.objects.order_by("name")
    if static_only:
        segments = segments.filter(kind=SegmentKind.STATIC)
    return list(segments.values_list("pk", "name"))


def sales_user_choices() -> list[tuple[int, str]]:
    """Active users in the sales role, by name."""
    users = (
        User.objects.filter(is_active=True, groups__name=Role.SALES)
        .values_list("pk", "first_name", "last_name", "username")
        .distinct()
    )
    choices = [(pk, user_display(first, last, username)) for pk, first, last, username in users]
    return sorted(choices, key=lambda choice: (choice[1].lower(), choice[0]))


def score_category_choices() -> list[tuple[str, str]]:
    return list(ScoreCategory.objects.order_by("id").values_list("key", "label"))


def custom_field_choices() -> list[tuple[str, str, str]]:
    """Custom fields as (key, label, type), by label."""
    return list(
        FieldDefinition.objects.order_by("label", "key").values_list("key", "label", "type")
    )


def _since() -> dt.datetime:
    return timezone.now() - dt.timedelta(days=SUGGESTION_DAYS)


def event_names_seen(event_type: str, *, limit: int = SUGGESTION_LIMIT) -> list[str]:
    """The names of recent events of a type, most frequent first."""
    rows = (
        Event.objects.filter(type=event_type, occurred_at__gte=_since())
        .exclude(name="")
        .values("name")
        .annotate(seen=Count("*"))
        .order_by("-seen", "name")[:limit]
    )
    return [row["name"] for row in rows]


def page_urls_seen(*, limit: int = SUGGESTION_LIMIT) -> list[str]:
    """The URLs of recently viewed pages, most visited first."""
    rows = (
        Event.objects.filter(type="page", occurred_at__gte=_since(), properties__has_key="url")
        .values("properties__url")
        .annotate(seen=Count("*"))
        .order_by("-seen", "properties__url")[: limit + 10]
    )
    # A sender may put anything under "url"; only text is a URL.
    urls = [row["properties__url"] for row in rows]
    return [url for url in urls if isinstance(url, str) and url][:limit]


def tag_names(*, limit: int = 200) -> list[str]:
    return list(Tag.objects.order_by("name").values_list("name", flat=True)[:limit])


def flow_node_stats(*, flow: Flow) -> dict[str, dict[str, int]]:
    """Per node: entered (steps run), completed, waiting, failed."""
    rows = (
        StepRun.objects.filter(enrollment__flow=flow)
        .values("node_id", "status")
        .annotate(n=Count("id"))
    )
    stats: dict[str, dict[str, int]] = {}
    for row in rows:
        node = stats.setdefault(
            row["node_id"], {"entered": 0, "completed": 0, "waiting": 0, "failed": 0}
        )
        node["entered"] += row["n"]
        if row["status"] == StepStatus.COMPLETED:
            node["completed"] += row["n"]
        elif row["status"] in (StepStatus.WAITING, StepStatus.RETRYING):
            node["waiting"] += row["n"]
        elif row["status"] == StepStatus.FAILED:
            node["failed"] += row["n"]
    return stats

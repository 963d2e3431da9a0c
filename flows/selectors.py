"""Reads for the flow pages: node summaries for a whole graph, what the node
configuration form offers to pick from, and the step statistics; and how the
score ledger traces a flow step's points to its flow and node."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import ngettext

from core.roles import Role
from emails.models import EmailSend, EmailTemplate, SendStatus
from flows.changes import GraphChanges, graph_changes, graph_differs
from flows.graph import config_problems
from flows.models import Enrollment, Flow, FlowStatus, StepRun, StepStatus
from flows.nodes import REGISTRY
from flows.nodes.base import Names
from flows.nodes.summaries import (
    Refs,
    graph_refs,
    names_load,
    node_summary,
    node_type_label,
)
from leads.models import Event, FieldDefinition, Segment, SegmentKind, Tag
from scoring.models import ScoreCategory
from scoring.selectors import StepOrigins
from segments.names import user_display

# Suggestions come from recent events only: the (type, name, occurred_at) index
# then bounds the scan, and names no longer sent drop out of the list.
SUGGESTION_DAYS = 90
SUGGESTION_LIMIT = 50


def node_summaries(graph: Any) -> dict[str, str]:
    """Each node's canvas summary by node id ("" when it is not configured yet).
    The names of the segments, users, categories and custom fields all nodes
    (and their conditions' rules) point at are loaded with one query per kind."""
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    if not isinstance(nodes, list):
        return {}
    valid = [
        node
        for node in nodes
        if isinstance(node, dict) and isinstance(node.get("id"), str) and node["id"]
    ]
    names = names_load(graph_refs(valid))
    return {
        node["id"]: node_summary(str(node.get("type") or ""), node.get("config", {}), names)
        for node in valid
    }


def flow_changes(*, flow: Flow) -> GraphChanges | None:
    """What the draft changes against the live version, or None for a flow
    never published."""
    if flow.published is None:
        return None
    live = flow.published.graph
    return graph_changes(
        live,
        flow.draft,
        before_summaries=node_summaries(live),
        after_summaries=node_summaries(flow.draft),
    )


def flows_listed() -> list[Flow]:
    """The flows of the list page, newest change first, each with its
    enrollment count and ``unpublished`` (a live flow whose draft would do
    something else). Two queries."""
    flows: list[Flow] = list(
        Flow.objects.select_related("published")
        .annotate(enrollment_count=Count("enrollments"))
        .order_by("-updated_at", "-id")
    )
    for flow in flows:
        flow.unpublished = flow.published is not None and graph_differs(  # type: ignore[attr-defined]
            flow.published.graph, flow.draft
        )
    return flows


def default_summaries() -> dict[str, str]:
    """The summary of each node type whose default settings are complete, so a
    step just added shows what it will do rather than "not configured"."""
    found: dict[str, str] = {}
    for key, node_type in REGISTRY.items():
        defaults = {
            name: spec["default"]
            for name, spec in node_type.schema.get("properties", {}).items()
            if "default" in spec
        }
        if not config_problems(node_type, defaults):
            found[key] = node_summary(key, defaults, Names())
    return found


def segment_choices(*, static_only: bool = False) -> list[tuple[int, str]]:
    segments = Segment.objects.order_by("name")
    if static_only:
        segments = segments.filter(kind=SegmentKind.STATIC)
    return list(segments.values_list("pk", "name"))


def email_template_choices() -> list[tuple[int, str]]:
    return list(EmailTemplate.objects.order_by("name", "id").values_list("pk", "name"))


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
    for node_id, email in flow_email_stats(flow=flow).items():
        stats.setdefault(node_id, {"entered": 0, "completed": 0, "waiting": 0, "failed": 0})
        stats[node_id]["email"] = email  # type: ignore[assignment]
    return stats


EMAIL_COUNTS = ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed")


def flow_email_stats(*, flow: Flow) -> dict[str, dict[str, Any]]:
    """Per "Send email" node: how many of its emails were sent, delivered,
    opened (by a person), clicked, bounced, led to an unsubscribe; and how many
    wait (held) or were skipped. One aggregate query over the flow's sends."""
    rows = (
        EmailSend.objects.filter(flow_id=flow.pk)
        .values("node_id")
        .annotate(
            sent=Count("id", filter=Q(status=SendStatus.SENT)),
            delivered=Count("delivered_at"),
            opened=Count("opened_at"),
            clicked=Count("clicked_at"),
            bounced=Count("bounced_at"),
            unsubscribed=Count("unsubscribed_at"),
            held=Count("id", filter=Q(status=SendStatus.HELD)),
            skipped=Count("id", filter=Q(status=SendStatus.SKIPPED)),
        )
    )
    stats = {row.pop("node_id"): row for row in rows}
    for counts in stats.values():
        counts["text"] = email_counts_text(counts)
    return stats


def email_counts_text(counts: dict[str, Any]) -> str:
    """A step's email counts in words, as the canvas shows them."""
    words = [
        ngettext("%(count)s sent", "%(count)s sent", counts["sent"]),
        ngettext("%(count)s delivered", "%(count)s delivered", counts["delivered"]),
        ngettext("%(count)s opened", "%(count)s opened", counts["opened"]),
        ngettext("%(count)s clicked", "%(count)s clicked", counts["clicked"]),
        ngettext("%(count)s bounced", "%(count)s bounced", counts["bounced"]),
        ngettext("%(count)s unsubscribed", "%(count)s unsubscribed", counts["unsubscribed"]),
    ]
    keys: tuple[str, ...] = ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed")
    if counts["held"]:
        words.append(ngettext("%(count)s held", "%(count)s held", counts["held"]))
        keys += ("held",)
    return " · ".join(word % {"count": counts[key]} for word, key in zip(words, keys, strict=True))


def flow_names(flow_ids: Iterable[int]) -> dict[int, str]:
    """Flows' names by id, through the loader the summaries use."""
    return names_load(Refs(flows=set(flow_ids))).flows


def score_step_origins() -> StepOrigins:
    """The step run of a ledger row and its enrollment, joined to the ledger, so
    that a breakdown tells which flow and node gave the points."""
    return StepOrigins(
        joins=(
            f"LEFT JOIN {StepRun._meta.db_table} s ON s.id = {{step_id}} "
            f"LEFT JOIN {Enrollment._meta.db_table} e ON e.id = s.enrollment_id"
        ),
        columns=("e.flow_id", "s.node_id", "s.node_type"),
        flow_names=flow_names,
        node_label=node_type_label,
    )


@dataclass(frozen=True)
class ScoringStep:
    """An adjust-score step of an active flow's published version, with the
    triggers that lead to it and the conditions (and branch taken) on the way."""

    flow_id: int
    flow_name: str
    node_id: str
    points: int
    category: str
    reason: str
    triggers: tuple[dict[str, Any], ...]
    # (the condition node's conditions, the handle taken: "yes" or "no")
    conditions: tuple[tuple[dict[str, Any], str], ...]


def _paths_to(
    node_id: str, nodes: dict[str, dict[str, Any]], incoming: dict[str, list[tuple[str, str]]]
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """Every trigger upstream of ``node_id`` and every condition passed on the way."""
    triggers: list[dict[str, Any]] = []
    conditions: list[tuple[dict[str, Any], str]] = []
    seen: set[str] = set()
    stack = [node_id]
    while stack:
        current = stack.pop()
        for source, handle in incoming.get(current, []):
            if source in seen:
                continue
            seen.add(source)
            node = nodes.get(source)
            if node is None:
                continue
            if node["type"] in REGISTRY and REGISTRY[node["type"]].kind == "trigger":
                triggers.append({"type": node["type"], "config": node.get("config", {})})
                continue
            if node["type"] == "condition":
                conditions.append((node.get("config", {}).get("conditions", {}), handle))
            stack.append(source)
    return triggers, conditions


def scoring_steps() -> list[ScoringStep]:
    """The adjust-score steps of every active flow (published version): what the
    current model gives points for. Two queries."""
    flows = Flow.objects.filter(status=FlowStatus.ACTIVE, published__isnull=False).select_related(
        "published"
    )
    steps: list[ScoringStep] = []
    for flow in flows.order_by("id"):
        assert flow.published is not None
        graph = flow.published.graph
        nodes = {node["id"]: node for node in graph.get("nodes", [])}
        incoming: dict[str, list[tuple[str, str]]] = {}
        for edge in graph.get("edges", []):
            incoming.setdefault(edge["target"], []).append(
                (edge["source"], edge.get("sourceHandle") or "next")
            )
        for node in nodes.values():
            if node["type"] != "score.adjust":
                continue
            config = node.get("config", {})
            triggers, conditions = _paths_to(node["id"], nodes, incoming)
            steps.append(
                ScoringStep(
                    flow_id=flow.pk,
                    flow_name=flow.name,
                    node_id=node["id"],
                    points=int(config.get("points", 0)),
                    category=str(config.get("category", "")),
                    reason=str(config.get("reason", "")),
                    triggers=tuple(triggers),
                    conditions=tuple(conditions),
                )
            )
    return steps

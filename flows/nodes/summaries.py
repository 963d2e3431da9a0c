"""Canvas summaries of node configs ("Entered segment: Hot leads"), with the
records a config points at shown by name. ``names_load`` is the one loader of
those names: the builder's summaries, the dry run and the score breakdown's
flows all read them through it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.utils.text import capfirst

from flows.models import Flow
from flows.nodes.base import (
    LEAD_FIELD,
    REGISTRY,
    SALES_USER,
    SCORE_CATEGORY,
    SEGMENT,
    SETTABLE_FIELD,
    STATIC_SEGMENT,
    TRIGGER,
    Names,
    NodeType,
    summarise,
)
from leads.models import FieldDefinition, Lead, Segment
from leads.services.fields import STANDARD_FIELDS
from scoring.models import ScoreCategory

MAX_ID = 2**63 - 1


@dataclass
class Refs:
    """The ids and keys configs point at, gathered to load their names in bulk."""

    segments: set[int] = field(default_factory=set)
    users: set[int] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    custom_fields: set[str] = field(default_factory=set)
    flows: set[int] = field(default_factory=set)


def config_value(config: Any, path: str) -> Any:
    """The value at a dotted path of a config, or None."""
    for part in path.split("."):
        if not isinstance(config, dict):
            return None
        config = config.get(part)
    return config


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def config_refs(node_type: NodeType, config: Any, refs: Refs) -> None:
    """Add what ``config`` points at to ``refs``, following a wait-until's trigger."""
    for path, kind in node_type.pickers.items():
        value = config_value(config, path)
        if kind in (SEGMENT, STATIC_SEGMENT) and _is_id(value):
            refs.segments.add(value)
        elif kind == SALES_USER and _is_id(value):
            refs.users.add(value)
        elif kind == SCORE_CATEGORY and isinstance(value, str):
            refs.categories.add(value)
        elif kind in (LEAD_FIELD, SETTABLE_FIELD) and isinstance(value, str):
            refs.custom_fields.add(value.removeprefix("custom."))
        elif kind == TRIGGER and isinstance(value, str):
            nested = REGISTRY.get(value)
            parent = path.rpartition(".")[0]
            nested_config = config_value(config, f"{parent}.config" if parent else "config")
            if nested is not None and nested.kind == "trigger" and isinstance(nested_config, dict):
                config_refs(nested, nested_config, refs)


def _rule_refs(tree: Any, refs: Refs) -> None:
    """Add what the rules of a condition tree point at to ``refs``. Drafts are
    not validated, so anything that is not a rule or a group is skipped."""
    if not isinstance(tree, dict):
        return
    group = tree.get("all", tree.get("any"))
    if isinstance(group, list):
        for child in group:
            _rule_refs(child, refs)
        return
    if _is_id(tree.get("segment")):
        refs.segments.add(tree["segment"])
    name = tree.get("field")
    if not isinstance(name, str):
        return
    if name == "owner":
        value = tree.get("value")
        refs.users.update(v for v in (value if isinstance(value, list) else [value]) if _is_id(v))
    elif name.startswith("score."):
        refs.categories.add(name[6:])
    elif name.startswith("custom."):
        refs.custom_fields.add(name[7:])


def graph_refs(nodes: Any) -> Refs:
    """What the nodes of a graph point at, their conditions' rules included;
    nodes of unknown types and configs that are not objects are skipped."""
    refs = Refs()
    for node in nodes if isinstance(nodes, list) else []:
        node_type = REGISTRY.get(node.get("type") or "") if isinstance(node, dict) else None
        if node_type is None:
            continue
        config = node.get("config", {})
        config_refs(node_type, config, refs)
        if node_type.key == "condition" and isinstance(config, dict):
            _rule_refs(config.get("conditions"), refs)
    return refs


def node_type_label(key: str) -> str:
    """The label of a node type, in the current language; the key itself for a
    type that no longer exists."""
    node_type = REGISTRY.get(key)
    return str(node_type.label) if node_type is not None else key


def standard_field_labels() -> dict[str, str]:
    """Labels of the lead fields a flow can watch or set, by field name."""
    return {
        name: capfirst(str(getattr(Lead._meta.get_field(name), "verbose_name", name)))
        for name in (*STANDARD_FIELDS, "owner")
    }


def user_display(first_name: str, last_name: str, username: str) -> str:
    return f"{first_name} {last_name}".strip() or username


def names_load(refs: Refs) -> Names:
    """The names of everything in ``refs``: one query per kind that has any."""
    segments: dict[int, str] = {}
    users: dict[int, str] = {}
    categories: dict[str, str] = {}
    flows: dict[int, str] = {}
    fields = standard_field_labels()
    if refs.segments:
        segments = dict(Segment.objects.filter(pk__in=refs.segments).values_list("pk", "name"))
    if refs.users:
        users = {
            pk: user_display(first, last, username)
            for pk, first, last, username in User.objects.filter(pk__in=refs.users).values_list(
                "pk", "first_name", "last_name", "username"
            )
        }
    if refs.categories:
        categories = dict(
            ScoreCategory.objects.filter(key__in=refs.categories).values_list("key", "label")
        )
    custom = refs.custom_fields - set(fields)
    if custom:
        fields.update(FieldDefinition.objects.filter(key__in=custom).values_list("key", "label"))
    if refs.flows:
        flows = dict(Flow.objects.filter(pk__in=refs.flows).values_list("pk", "name"))
    return Names(segments=segments, users=users, categories=categories, fields=fields, flows=flows)


def node_summary(node_type_key: str, config: Any, names: Names | None = None) -> str:
    """The canvas summary of one node, e.g. "+10 Fit: decision maker"; "" for an
    unknown type or a config that is incomplete or names something gone. Without
    ``names``, the names it needs are loaded (a query per kind of record)."""
    node_type = REGISTRY.get(node_type_key)
    if node_type is None:
        return ""
    if names is None:
        names = names_load(graph_refs([{"type": node_type_key, "config": config}]))
    return summarise(node_type, config, names)

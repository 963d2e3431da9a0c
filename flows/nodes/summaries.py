"""Canvas summaries of node configs ("Entered segment: Hot leads"), with the
records a config points at shown by name. ``names_load`` is the one loader of
those names: the builder's summaries, the dry run and the score breakdown's
flows all read them through it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emails.models import EmailTemplate
from flows.models import Flow
from flows.nodes.base import (
    EMAIL_TEMPLATE,
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
from segments.names import Refs as RecordRefs
from segments.names import is_id, rule_refs
from segments.names import names_load as record_names_load


@dataclass
class Refs(RecordRefs):
    """The ids and keys configs point at, gathered to load their names in bulk."""

    flows: set[int] = field(default_factory=set)
    email_templates: set[int] = field(default_factory=set)


def config_value(config: Any, path: str) -> Any:
    """The value at a dotted path of a config, or None."""
    for part in path.split("."):
        if not isinstance(config, dict):
            return None
        config = config.get(part)
    return config


def config_refs(node_type: NodeType, config: Any, refs: Refs) -> None:
    """Add what ``config`` points at to ``refs``, following a wait-until's trigger."""
    for path, kind in node_type.pickers.items():
        value = config_value(config, path)
        if kind in (SEGMENT, STATIC_SEGMENT) and is_id(value):
            refs.segments.add(value)
        elif kind == EMAIL_TEMPLATE and is_id(value):
            refs.email_templates.add(value)
        elif kind == SALES_USER and is_id(value):
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
            rule_refs(config.get("conditions"), refs)
    return refs


def node_type_label(key: str) -> str:
    """The label of a node type, in the current language; the key itself for a
    type that no longer exists."""
    node_type = REGISTRY.get(key)
    return str(node_type.label) if node_type is not None else key


def names_load(refs: Refs) -> Names:
    """The names of everything in ``refs``: one query per kind that has any."""
    names = Names(**vars(record_names_load(refs)))
    if refs.email_templates:
        names.email_templates = dict(
            EmailTemplate.objects.filter(pk__in=refs.email_templates).values_list("pk", "name")
        )
    if refs.flows:
        names.flows = dict(Flow.objects.filter(pk__in=refs.flows).values_list("pk", "name"))
    return names


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

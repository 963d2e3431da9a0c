"""What a draft changes against the live version, in words: steps added,
removed or changed (and which of their settings), connections made or undone.
Where a step stands on the canvas is not a change: it does nothing to a lead."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.text import capfirst
from django.utils.translation import gettext

from flows.nodes.summaries import node_type_label

# The words for an output, where an edge leaves a step with several.
HANDLE_WORDS = {
    "yes": lambda: gettext("yes"),
    "no": lambda: gettext("no"),
    "met": lambda: gettext("met"),
    "timeout": lambda: gettext("timed out"),
}


@dataclass(frozen=True)
class StepChange:
    node_id: str
    # The step's type and, when configured, its summary: "Adjust lead score: +10 …".
    label: str
    # The labels of the settings that changed (a changed step only).
    settings: tuple[str, ...] = ()


@dataclass(frozen=True)
class GraphChanges:
    added: list[StepChange] = field(default_factory=list)
    removed: list[StepChange] = field(default_factory=list)
    changed: list[StepChange] = field(default_factory=list)
    connections_added: list[str] = field(default_factory=list)
    connections_removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.changed
            or self.connections_added
            or self.connections_removed
        )


def _steps(graph: Any) -> dict[str, dict[str, Any]]:
    """The nodes by id, as far as they matter to a lead: type, settings, label."""
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    steps: dict[str, dict[str, Any]] = {}
    for node in nodes if isinstance(nodes, list) else []:
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            steps[node["id"]] = {
                "type": node.get("type"),
                "config": node.get("config") or {},
                "label": node.get("label") or "",
            }
    return steps


def _connections(graph: Any) -> set[tuple[str, str, str]]:
    edges = graph.get("edges") if isinstance(graph, dict) else None
    return {
        (str(edge.get("source")), str(edge.get("sourceHandle") or "next"), str(edge.get("target")))
        for edge in (edges if isinstance(edges, list) else [])
        if isinstance(edge, dict)
    }


def graph_differs(before: Any, after: Any) -> bool:
    """Whether ``after`` would do anything differently from ``before``: cheap
    enough for every row of the list of flows."""
    return _steps(before) != _steps(after) or _connections(before) != _connections(after)


def _setting_label(node_type: str, key: str) -> str:
    # The config form's labels name the settings as the side panel shows them
    # (imported here: the form imports the selectors, which import this).
    from flows.forms import LABELS

    label = LABELS.get(f"{node_type}:{key}") or LABELS.get(key)
    return str(label) if label else capfirst(key.replace("_", " "))


def _label(node_id: str, step: dict[str, Any], summaries: dict[str, str]) -> str:
    type_label = node_type_label(str(step["type"]))
    text = step["label"] or summaries.get(node_id, "")
    return f"{type_label}: {text}" if text else type_label


def _short(node_id: str, step: dict[str, Any] | None, summaries: dict[str, str]) -> str:
    if step is None:
        return node_id
    return str(step["label"] or summaries.get(node_id) or node_type_label(str(step["type"])))


def graph_changes(
    before: Any,
    after: Any,
    *,
    before_summaries: dict[str, str],
    after_summaries: dict[str, str],
) -> GraphChanges:
    """What ``after`` (the draft) changes against ``before`` (the live version).
    Steps are matched by id, as the canvas keeps them."""
    old, new = _steps(before), _steps(after)
    changes = GraphChanges()
    for node_id, step in new.items():
        if node_id not in old:
            changes.added.append(StepChange(node_id, _label(node_id, step, after_summaries)))
            continue
        was = old[node_id]
        if was == step:
            continue
        settings: list[str] = []
        if was["type"] != step["type"]:
            settings.append(gettext("the kind of step"))
        elif was["label"] != step["label"]:
            settings.append(gettext("its name"))
        if was["type"] == step["type"]:
            keys = sorted(set(was["config"]) | set(step["config"]))
            settings += [
                _setting_label(str(step["type"]), key)
                for key in keys
                if was["config"].get(key) != step["config"].get(key)
            ]
        changes.changed.append(
            StepChange(node_id, _label(node_id, step, after_summaries), tuple(settings))
        )
    for node_id, step in old.items():
        if node_id not in new:
            changes.removed.append(StepChange(node_id, _label(node_id, step, before_summaries)))

    def words(edge: tuple[str, str, str], steps: dict[str, Any], summaries: dict[str, str]) -> str:
        source, handle, target = edge
        start = _short(source, steps.get(source), summaries)
        if handle in HANDLE_WORDS:
            start = f"{start} ({HANDLE_WORDS[handle]()})"
        return f"{start} → {_short(target, steps.get(target), summaries)}"

    was_connected, connected = _connections(before), _connections(after)
    changes.connections_added.extend(
        words(edge, new, after_summaries) for edge in sorted(connected - was_connected)
    )
    changes.connections_removed.extend(
        words(edge, old, before_summaries) for edge in sorted(was_connected - connected)
    )
    return changes

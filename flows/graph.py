"""Graph validation for publishing: every problem is reported against its node
(or edge), so the canvas can show it where it is."""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext
from jsonschema import Draft202012Validator

from flows.nodes import REGISTRY, NodeType
from flows.nodes.base import config_mask, config_unmask
from flows.wording import problem_sentence

MAX_NODES = 500
NODE_ID = r"^[A-Za-z0-9_\-]{1,64}$"


class GraphError(ValueError):
    """``nodes`` maps node ids (and ``edges``/``graph``) to their messages."""

    def __init__(self, problems: dict[str, Any]):
        super().__init__(gettext("The flow has problems."))
        self.problems = problems


def graph_mask(graph: Any) -> Any:
    """The graph as it may leave the server (API, builder page, versions): each
    set secret shows as ``SECRET_SET`` (see ``flows.nodes.base``)."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        return graph
    nodes = []
    for node in graph["nodes"]:
        node_type = REGISTRY.get(str(node.get("type"))) if isinstance(node, dict) else None
        if node_type is not None and node_type.secrets and "config" in node:
            node = {**node, "config": config_mask(node_type, node["config"])}
        nodes.append(node)
    return {**graph, "nodes": nodes}


def graph_unmask(graph: Any, *, stored: Any) -> Any:
    """A graph that came back from an editor, with the secrets of ``stored`` kept
    where it left them masked or out: matched by node id and type, so a copied
    node (a new id) or a node whose type changed starts without them."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        return graph
    before: dict[str, dict[str, Any]] = {}
    if isinstance(stored, dict) and isinstance(stored.get("nodes"), list):
        for node in stored["nodes"]:
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                before[node["id"]] = node
    nodes = []
    for node in graph["nodes"]:
        node_type = REGISTRY.get(str(node.get("type"))) if isinstance(node, dict) else None
        if node_type is not None and node_type.secrets:
            node_id = node.get("id")
            old = before.get(node_id) if isinstance(node_id, str) else None
            old_config = old.get("config") if old and old.get("type") == node_type.key else None
            config = node.get("config", {})
            node = {**node, "config": config_unmask(node_type, config, old_config)}
        nodes.append(node)
    return {**graph, "nodes": nodes}


def config_problems(node_type: NodeType, config: Any) -> dict[str, list[str]]:
    """Problems of one node's config, as sentences a marketer understands
    ("Choose how many points."): JSON Schema first, then the type's own checks.
    A missing setting is reported at its own path, like any other."""
    errors: dict[str, list[str]] = {}
    validator = Draft202012Validator(node_type.schema)
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.path)):
        parts = [str(p) for p in error.path]
        if error.validator == "required":
            missing = re.match(r"'(.+)' is a required property", error.message)
            parts.append(missing.group(1) if missing else "")
        path = ".".join(p for p in parts if p)
        message = problem_sentence(node_type.key, path, error)
        if message not in errors.get(path, []):
            errors.setdefault(path, []).append(message)
    if not errors and node_type.check is not None:
        errors.update(node_type.check(config))
    return errors


def graph_validate(graph: Any) -> dict[str, Any]:
    """Return the graph if it can be published, else raise GraphError with
    problems by node: unknown types, bad configs, dangling or duplicate edges,
    edges into triggers, no trigger, unreachable nodes, cycles."""
    shaped = _graph_shaped(graph)
    problems = _Problems()
    nodes = _nodes_checked(shaped["nodes"], problems)
    outgoing = _edges_connected(shaped.get("edges", []), nodes, problems)
    _reachability_checked(nodes, outgoing, problems)
    for node_id in _find_cycle(outgoing):
        problems.add(
            node_id,
            "node",
            gettext("This step is part of a loop: a lead would go round it forever."),
        )
    problems.raise_any()
    return shaped


class _Problems:
    """What is wrong with a graph: messages by node and path, and about the whole."""

    def __init__(self) -> None:
        self.by_node: dict[str, dict[str, list[str]]] = {}
        self.general: list[str] = []

    def add(self, node_id: str, path: str, message: str) -> None:
        self.by_node.setdefault(node_id, {}).setdefault(path, []).append(message)

    def raise_any(self) -> None:
        if self.by_node or self.general:
            problems: dict[str, Any] = {"nodes": self.by_node}
            if self.general:
                problems["graph"] = self.general
            raise GraphError(problems)


def _graph_shaped(graph: Any) -> dict[str, Any]:
    """The graph, once it has the shape the checks below walk: lists of nodes and
    edges, and not too many nodes."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise GraphError({"graph": [gettext("The flow's steps cannot be read.")]})
    if not isinstance(graph.get("edges", []), list):
        raise GraphError({"graph": [gettext("The connections cannot be read.")]})
    if len(graph["nodes"]) > MAX_NODES:
        # Not walked at all: the loop search below recurses once per node.
        raise GraphError(
            {
                "nodes": {},
                "graph": [gettext("A flow has at most %(count)d steps.") % {"count": MAX_NODES}],
            }
        )
    return graph


def _nodes_checked(raw_nodes: list[Any], problems: _Problems) -> dict[str, dict[str, Any]]:
    """The nodes by id, each checked for its id, type and config."""
    nodes: dict[str, dict[str, Any]] = {}
    for index, node in enumerate(raw_nodes):
        node_id = node.get("id") if isinstance(node, dict) else None
        if not isinstance(node_id, str) or not node_id:
            problems.general.append(
                gettext("Step %(index)d has no id: reload the page and try again.")
                % {"index": index + 1}
            )
            continue
        if node_id in nodes:
            problems.add(
                node_id, "id", gettext("Two steps share this id: delete one and add it again.")
            )
            continue
        nodes[node_id] = node
        node_type = _node_type(node)
        if node_type is None:
            problems.add(
                node_id,
                "type",
                gettext("This kind of step (%(type)s) does not exist: delete it.")
                % {"type": node.get("type")},
            )
            continue
        for path, messages in config_problems(node_type, node.get("config", {})).items():
            for message in messages:
                problems.add(node_id, f"config.{path}" if path else "config", message)
    return nodes


def _edges_connected(
    edges: list[Any], nodes: dict[str, dict[str, Any]], problems: _Problems
) -> dict[str, list[str]]:
    """Where each node leads, from the edges that are allowed."""
    outgoing: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    seen_handles: set[tuple[str, str]] = set()
    for index, edge in enumerate(edges):
        if not isinstance(edge, dict):
            problems.general.append(
                gettext("Connection %(index)d cannot be read: delete it and connect again.")
                % {"index": index + 1}
            )
            continue
        source, target = edge.get("source"), edge.get("target")
        handle = edge.get("sourceHandle") or "next"
        if not isinstance(handle, str):
            handle = repr(handle)  # reported as it was sent
        if not isinstance(source, str) or not isinstance(target, str):
            source = target = None
        if source not in nodes or target not in nodes:
            problems.general.append(
                gettext("A connection (%(edge)s) leads to or from a step that does not exist.")
                % {"edge": edge.get("id", index + 1)}
            )
            continue
        if _edge_refused(source, handle, target, nodes, seen_handles, problems):
            continue
        seen_handles.add((source, handle))
        outgoing[source].append(target)
    return outgoing


def _edge_refused(
    source: str,
    handle: str,
    target: str,
    nodes: dict[str, dict[str, Any]],
    seen_handles: set[tuple[str, str]],
    problems: _Problems,
) -> bool:
    """Whether an edge between two existing nodes breaks a rule (reported if so):
    an output the source lacks, a trigger as target, an output used twice."""
    source_type = _node_type(nodes[source])
    target_type = _node_type(nodes[target])
    if source_type is not None:
        handles = source_type.outputs if source_type.kind != "trigger" else ("next",)
        if handle not in handles:
            problems.add(
                source,
                "edges",
                gettext(
                    "This step has no output “%(handle)s”; its outputs are: %(outputs)s. "
                    "Connect one of those instead."
                )
                % {"handle": handle, "outputs": ", ".join(handles) or gettext("none")},
            )
            return True
    if target_type is not None and target_type.kind == "trigger":
        problems.add(
            target,
            "edges",
            gettext("A trigger starts the flow, so nothing can lead into it."),
        )
        return True
    if (source, handle) in seen_handles:
        problems.add(
            source,
            "edges",
            gettext(
                "The output “%(handle)s” leads to two steps: a lead can only go one way. "
                "Remove one of the connections."
            )
            % {"handle": handle},
        )
        return True
    return False


def _reachability_checked(
    nodes: dict[str, dict[str, Any]], outgoing: dict[str, list[str]], problems: _Problems
) -> None:
    """A flow needs a trigger, and every node needs a trigger that leads to it."""
    triggers = [
        n for n, node in nodes.items() if getattr(_node_type(node), "kind", "") == "trigger"
    ]
    if not triggers:
        problems.general.append(
            gettext("Add a trigger: it decides which leads start the flow, and when.")
        )
        return
    reachable: set[str] = set()
    stack = list(triggers)
    while stack:
        current = stack.pop()
        if current in reachable:
            continue
        reachable.add(current)
        stack.extend(outgoing[current])
    for node_id in nodes:
        if node_id not in reachable:
            problems.add(node_id, "node", gettext("No trigger leads to this step."))


def _node_type(node: dict[str, Any]) -> NodeType | None:
    node_type = node.get("type")
    return REGISTRY.get(node_type) if isinstance(node_type, str) else None


def _find_cycle(outgoing: dict[str, list[str]]) -> list[str]:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in outgoing[node]:
            if state.get(nxt) == 1:
                return path[path.index(nxt) :]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in outgoing:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []

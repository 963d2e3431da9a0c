"""Graph validation for publishing: every problem is reported against its node
(or edge), so the canvas can show it where it is."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from flows.nodes import REGISTRY, NodeType

MAX_NODES = 500
NODE_ID = r"^[A-Za-z0-9_\-]{1,64}$"


class GraphError(ValueError):
    """``nodes`` maps node ids (and ``edges``/``graph``) to their messages."""

    def __init__(self, problems: dict[str, Any]):
        super().__init__("The flow has problems.")
        self.problems = problems


def config_problems(node_type: NodeType, config: Any) -> dict[str, list[str]]:
    """Problems of one node's config: JSON Schema first, then the type's own checks."""
    errors: dict[str, list[str]] = {}
    validator = Draft202012Validator(node_type.schema)
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.path)):
        path = ".".join(str(p) for p in error.path)
        errors.setdefault(path, []).append(_message(error))
    if not errors and node_type.check is not None:
        errors.update(node_type.check(config))
    return errors


def _message(error: Any) -> str:
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator == "additionalProperties":
        return "Unknown settings: " + error.message.split("(")[-1].rstrip(")")
    if error.validator == "not":
        return "0 is not allowed here."
    return str(error.message)


def graph_validate(graph: Any) -> dict[str, Any]:
    """Return the graph if it can be published, else raise GraphError with
    problems by node: unknown types, bad configs, dangling or duplicate edges,
    edges into triggers, no trigger, unreachable nodes, cycles."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise GraphError({"graph": ['Expected {"nodes": [...], "edges": [...]}.']})
    edges = graph.get("edges", [])
    if not isinstance(edges, list):
        raise GraphError({"graph": ["edges must be a list."]})
    nodes: dict[str, dict[str, Any]] = {}
    by_node: dict[str, dict[str, list[str]]] = {}
    general: list[str] = []

    def problem(node_id: str, path: str, message: str) -> None:
        by_node.setdefault(node_id, {}).setdefault(path, []).append(message)

    if len(graph["nodes"]) > MAX_NODES:
        general.append(f"A flow has at most {MAX_NODES} nodes.")
    for index, node in enumerate(graph["nodes"]):
        node_id = node.get("id") if isinstance(node, dict) else None
        if not isinstance(node_id, str) or not node_id:
            general.append(f"Node {index} has no id.")
            continue
        if node_id in nodes:
            problem(node_id, "id", "Two nodes share this id.")
            continue
        nodes[node_id] = node
        node_type = REGISTRY.get(node.get("type", ""))
        if node_type is None:
            problem(node_id, "type", f"Unknown node type {node.get('type')!r}.")
            continue
        for path, messages in config_problems(node_type, node.get("config", {})).items():
            for message in messages:
                problem(node_id, f"config.{path}" if path else "config", message)

    outgoing: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    incoming: dict[str, int] = dict.fromkeys(nodes, 0)
    seen_handles: set[tuple[str, str]] = set()
    for index, edge in enumerate(edges):
        if not isinstance(edge, dict):
            general.append(f"Edge {index} is not an object.")
            continue
        source, target = edge.get("source"), edge.get("target")
        handle = edge.get("sourceHandle") or "next"
        if source not in nodes or target not in nodes:
            general.append(f"Edge {edge.get('id', index)} connects a node that does not exist.")
            continue
        source_type = REGISTRY.get(nodes[source].get("type", ""))
        target_type = REGISTRY.get(nodes[target].get("type", ""))
        if source_type is not None:
            handles = source_type.outputs if source_type.kind != "trigger" else ("next",)
            if handle not in handles:
                problem(
                    source,
                    "edges",
                    f"No output {handle!r}; outputs: {', '.join(handles) or 'none'}.",
                )
                continue
        if target_type is not None and target_type.kind == "trigger":
            problem(target, "edges", "Nothing can lead into a trigger.")
            continue
        if (source, handle) in seen_handles:
            problem(source, "edges", f"Output {handle!r} is connected twice.")
            continue
        seen_handles.add((source, handle))
        outgoing[source].append(target)
        incoming[target] += 1

    triggers = [
        n
        for n, node in nodes.items()
        if getattr(REGISTRY.get(node.get("type", "")), "kind", "") == "trigger"
    ]
    if not triggers:
        general.append("A flow needs at least one trigger.")
    reachable: set[str] = set()
    stack = list(triggers)
    while stack:
        current = stack.pop()
        if current in reachable:
            continue
        reachable.add(current)
        stack.extend(outgoing[current])
    for node_id in nodes:
        if node_id not in reachable and triggers:
            problem(node_id, "node", "No trigger leads here.")
    cycle = _find_cycle(outgoing)
    if cycle:
        for node_id in cycle:
            problem(node_id, "node", "This node is part of a loop.")
    if by_node or general:
        problems: dict[str, Any] = {"nodes": by_node}
        if general:
            problems["graph"] = general
        raise GraphError(problems)
    return graph


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

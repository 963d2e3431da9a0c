"""A small picture of a flow's graph, drawn on the server as inline SVG from the
nodes' canvas positions and the edges: the template gallery shows one per
template, with no script and no request of its own."""

from __future__ import annotations

from typing import Any

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import ngettext

from flows.nodes import REGISTRY
from flows.nodes.summaries import node_type_label

# A node's box in canvas units (the canvas draws them about this size).
NODE_WIDTH = 200
NODE_HEIGHT = 56
MARGIN = 24
# The colours of the kinds, as the palette shows them.
KIND_COLOURS = {
    "trigger": ("#e7f5ec", "#2f9e5b"),
    "action": ("#e8f0fe", "#3a6fd8"),
    "condition": ("#fff4e0", "#d98a00"),
    "wait": ("#f1eafd", "#7a4fd0"),
    "exit": ("#f0f0f0", "#8a8a8a"),
}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def graph_preview_svg(graph: Any, *, title: str) -> SafeString:
    """The graph as an SVG picture: a box per node coloured by its kind, an
    arrow per edge from the bottom of its source to the top of its target.
    ``title`` names the picture for screen readers."""
    graph = graph if isinstance(graph, dict) else {}
    nodes = [n for n in graph.get("nodes", []) if isinstance(n, dict) and "id" in n]
    edges = [e for e in graph.get("edges", []) if isinstance(e, dict)]
    boxes: dict[str, tuple[float, float]] = {}
    for node in nodes:
        position = node.get("position")
        if not isinstance(position, dict):
            position = {}
        boxes[str(node["id"])] = (_number(position.get("x")), _number(position.get("y")))
    if boxes:
        left = min(x for x, _ in boxes.values()) - MARGIN
        top = min(y for _, y in boxes.values()) - MARGIN
        width = max(x for x, _ in boxes.values()) + NODE_WIDTH + MARGIN - left
        height = max(y for _, y in boxes.values()) + NODE_HEIGHT + MARGIN - top
    else:
        left, top, width, height = 0.0, 0.0, float(NODE_WIDTH), float(NODE_HEIGHT)
    parts: list[str] = []
    for edge in edges:
        source, target = boxes.get(str(edge.get("source"))), boxes.get(str(edge.get("target")))
        if source is None or target is None:
            continue
        x1, y1 = source[0] + NODE_WIDTH / 2, source[1] + NODE_HEIGHT
        x2, y2 = target[0] + NODE_WIDTH / 2, target[1] - 6
        middle = (y1 + y2) / 2
        parts.append(
            f'<path d="M{x1:g} {y1:g} C{x1:g} {middle:g} {x2:g} {middle:g} {x2:g} {y2:g}" '
            'fill="none" stroke="#9aa3ad" stroke-width="3"/>'
            f'<path d="M{x2 - 9:g} {y2 - 10:g} L{x2:g} {y2 + 4:g} L{x2 + 9:g} {y2 - 10:g} Z" '
            'fill="#9aa3ad"/>'
        )
    for node in nodes:
        x, y = boxes[str(node["id"])]
        node_type = REGISTRY.get(str(node.get("type")))
        fill, stroke = KIND_COLOURS.get(node_type.kind if node_type else "", ("#fff", "#888"))
        label = node_type_label(str(node.get("type")))
        parts.append(
            f'<g><title>{escape(label)}</title><rect x="{x:g}" y="{y:g}" width="{NODE_WIDTH}" '
            f'height="{NODE_HEIGHT}" rx="10" fill="{fill}" stroke="{stroke}" stroke-width="3"/>'
            f'<rect x="{x:g}" y="{y:g}" width="12" height="{NODE_HEIGHT}" rx="6" '
            f'fill="{stroke}"/></g>'
        )
    described = ngettext("%(title)s: %(count)d step", "%(title)s: %(count)d steps", len(nodes)) % {
        "title": title,
        "count": len(nodes),
    }
    return format_html(
        '<svg class="lf-graph-preview" xmlns="http://www.w3.org/2000/svg" '
        'viewBox="{} {} {} {}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet">'
        "{}</svg>",
        f"{left:g}",
        f"{top:g}",
        f"{width:g}",
        f"{height:g}",
        described,
        mark_safe("".join(parts)),  # noqa: S308 (numbers and escaped labels only)
    )

"""Walking a condition tree: its groups and its rules. Tolerant of trees still
being edited (anything that is neither a group nor a rule is skipped), so the
editor, the summaries and the dry run can all use it."""

from __future__ import annotations

from typing import Any

GROUP_KEYS = ("all", "any")


def group_children(node: dict[str, Any]) -> list[Any] | None:
    """A group's children; None when ``node`` is a rule."""
    for key in GROUP_KEYS:
        children = node.get(key)
        if isinstance(children, list):
            return children
    return None


def rules_in(tree: Any) -> list[dict[str, Any]]:
    """The rules of a tree, at any depth, depth first and in order."""
    found: list[dict[str, Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        kids = group_children(node)
        if kids is not None:
            stack.extend(reversed(kids))
        else:
            found.append(node)
    return found

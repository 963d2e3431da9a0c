"""The node registry: every node type, declared once (see base.NodeType)."""

from flows.nodes import actions, logic, triggers
from flows.nodes.base import REGISTRY, NodeType, StepContext, StepError, StepResult

__all__ = [
    "REGISTRY",
    "NodeType",
    "StepContext",
    "StepError",
    "StepResult",
    "actions",
    "logic",
    "triggers",
]

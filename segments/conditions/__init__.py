"""The condition tree: one JSON shape for segments, flow conditions and wait-until.

``validate`` checks a tree and names the path of every bad rule; ``compile_tree``
turns a valid tree into a Django ``Q`` (activity rules become ``Exists`` or a
counted subquery), used alike for a whole segment, one lead, and a preview count.
"""

from segments.conditions.compiler import Compiler, compile_tree
from segments.conditions.schema import (
    FIELD_TYPES,
    OPERATORS,
    ConditionError,
    dependencies,
    is_time_relative,
    referenced_segments,
    validate,
)

__all__ = [
    "FIELD_TYPES",
    "OPERATORS",
    "Compiler",
    "ConditionError",
    "compile_tree",
    "dependencies",
    "is_time_relative",
    "referenced_segments",
    "validate",
]

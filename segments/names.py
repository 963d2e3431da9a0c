"""The names shown for what conditions and node configs point at (segments, users,
score categories, fields), loaded in bulk: one query per kind that has any. One
loader for every summary: the segment page's conditions in words, and (through
``flows.nodes.summaries``, which adds flows' own names) the builder's node
summaries, the dry run and the score breakdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.utils.text import capfirst

from leads.models import FieldDefinition, Lead, Segment
from leads.services.fields import STANDARD_FIELDS
from scoring.models import ScoreCategory

MAX_ID = 2**63 - 1


@dataclass
class Refs:
    """The ids and keys to load names for."""

    segments: set[int] = field(default_factory=set)
    users: set[int] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    custom_fields: set[str] = field(default_factory=set)


@dataclass
class Names:
    """Display names by id or key. A summary that needs a missing id gets a
    KeyError and shows nothing: what it named is gone."""

    segments: dict[int, str] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)
    # Bare field key (``job_title``, a custom key) to its label.
    fields: dict[str, str] = field(default_factory=dict)

    def field_label(self, key: str) -> str:
        bare = key.removeprefix("custom.")
        return self.fields.get(bare, bare)


def is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def rule_refs(tree: Any, refs: Refs) -> None:
    """Add what the rules of a condition tree point at to ``refs``. Drafts are
    not validated, so anything that is not a rule or a group is skipped."""
    if not isinstance(tree, dict):
        return
    group = tree.get("all", tree.get("any"))
    if isinstance(group, list):
        for child in group:
            rule_refs(child, refs)
        return
    if is_id(tree.get("segment")):
        refs.segments.add(tree["segment"])
    name = tree.get("field")
    if not isinstance(name, str):
        return
    if name == "owner":
        value = tree.get("value")
        refs.users.update(v for v in (value if isinstance(value, list) else [value]) if is_id(v))
    elif name.startswith("score."):
        refs.categories.add(name[6:])
    elif name.startswith("custom."):
        refs.custom_fields.add(name[7:])


def standard_field_labels() -> dict[str, str]:
    """Labels of the lead fields a flow can watch or set, by field name."""
    return {
        name: capfirst(str(getattr(Lead._meta.get_field(name), "verbose_name", name)))
        for name in (*STANDARD_FIELDS, "owner")
    }


def user_display(first_name: str, last_name: str, username: str) -> str:
    return f"{first_name} {last_name}".strip() or username


def names_load(refs: Refs) -> Names:
    """The names of everything in ``refs``, and the standard fields' labels."""
    names = Names(fields=standard_field_labels())
    if refs.segments:
        names.segments = dict(
            Segment.objects.filter(pk__in=refs.segments).values_list("pk", "name")
        )
    if refs.users:
        names.users = {
            pk: user_display(first, last, username)
            for pk, first, last, username in User.objects.filter(pk__in=refs.users).values_list(
                "pk", "first_name", "last_name", "username"
            )
        }
    if refs.categories:
        names.categories = dict(
            ScoreCategory.objects.filter(key__in=refs.categories).values_list("key", "label")
        )
    custom = refs.custom_fields - set(names.fields)
    if custom:
        names.fields.update(
            FieldDefinition.objects.filter(key__in=custom).values_list("key", "label")
        )
    return names


def condition_names_load(*trees: Any) -> Names:
    """The names the rules of ``trees`` need."""
    refs = Refs()
    for tree in trees:
        rule_refs(tree, refs)
    return names_load(refs)

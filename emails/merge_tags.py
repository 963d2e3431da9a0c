"""Merge tags: ``{{ first_name | default: "there" }}`` filled per lead.

The syntax is Liquid's output statement (python-liquid) in a locked-down
environment: no tags (no ``if``, ``for``, ``include``, ``render``, ``assign``), no
loader, a short list of text filters, and a context that holds only the lead's
fields, its custom fields (``custom.<key>``) and its owner's name (``owner.name``,
``owner.first_name``). Liquid cannot call Python code or read attributes of
objects: it looks values up in the dictionaries it is given, and nothing else is
given. An undefined value renders empty, or as the ``default`` (``fallback``)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import Any

from django.utils.translation import gettext as _
from liquid import BoundTemplate, Environment
from liquid.exceptions import LiquidError

from leads.models import FieldDefinition, Lead

# The lead's own fields a template may name, beside ``custom.*`` and ``owner.*``.
LEAD_FIELDS = (
    "first_name",
    "last_name",
    "full_name",
    "email",
    "phone",
    "job_title",
    "company_name",
    "company_size",
    "industry",
    "country",
    "city",
    "stage",
    "score",
    "grade",
    "language",
)
OWNER_FIELDS = ("name", "first_name")
ALLOWED_FILTERS = (
    "default",
    "fallback",
    "upcase",
    "downcase",
    "capitalize",
    "strip",
    "lstrip",
    "rstrip",
    "truncate",
    "truncatewords",
    "append",
    "prepend",
    "replace",
    "remove",
    "url_encode",
    "escape",
    "plus",
    "minus",
    "times",
    "round",
    "date",
    "squish",
)

# ``{{ … }}`` non-greedy: the first ``}}`` closes the tag.
MERGE_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_LIQUID_TAG = re.compile(r"\{%.*?(?:%\}|$)", re.DOTALL)


class _MergeTagEnvironment(Environment):
    """Liquid with output statements and a few text filters only."""

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=False)
        for name in list(self.tags):
            if name not in ("content", "output", "illegal"):
                del self.tags[name]
        self.filters["fallback"] = self.filters["default"]
        for name in list(self.filters):
            if name not in ALLOWED_FILTERS:
                del self.filters[name]


ENVIRONMENT = _MergeTagEnvironment(autoescape=False)


@lru_cache(maxsize=4096)
def merge_tag_compile(expression: str) -> BoundTemplate:
    """The parsed ``{{ expression }}``, kept: each distinct tag is parsed once."""
    return ENVIRONMENT.from_string("{{" + expression + "}}")


def merge_tag_fill(expression: str, context: Mapping[str, Any]) -> str:
    """One merge tag's value for a lead's context, unescaped; empty if it fails."""
    try:
        return merge_tag_compile(expression).render(**context)
    except LiquidError:
        # Saving checks every tag; a tag that still fails (a filter given a value
        # it cannot take) renders empty rather than stopping the email.
        return ""


def merge_text_fill(text: str, context: Mapping[str, Any]) -> str:
    """A whole string (a subject, a preheader) with its merge tags filled, unescaped."""
    if "{{" not in text:
        return text
    return MERGE_TAG.sub(lambda match: merge_tag_fill(match.group(1), context), text)


def lead_merge_context(lead: Lead, *, with_owner: bool = True) -> dict[str, Any]:
    """What a template can read about a lead: its fields, custom fields and owner's name."""
    context: dict[str, Any] = {
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "full_name": lead.full_name,
        "email": lead.email or "",
        "phone": lead.phone,
        "job_title": lead.job_title,
        "company_name": lead.company_name,
        "industry": lead.industry,
        "country": lead.country,
        "city": lead.city,
        "stage": lead.get_stage_display(),
        "score": lead.score,
        "grade": lead.grade,
        "language": lead.language if isinstance(lead.language, str) else "",
        "custom": {
            str(key): value
            for key, value in (lead.custom_fields or {}).items()
            if isinstance(value, str | int | float | bool)
        },
    }
    if lead.company_size is not None:
        context["company_size"] = lead.company_size
    if with_owner and lead.owner_id is not None:
        owner = lead.owner
        assert owner is not None
        context["owner"] = {
            "name": owner.get_full_name() or owner.get_username(),
            "first_name": owner.first_name or owner.get_username(),
        }
    return context


def _suggestion(name: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if not close:
        return ""
    return " " + _("Did you mean “%(name)s”?") % {"name": close[0]}


def _path_problem(segments: list[Any], custom_fields: Collection[str]) -> str | None:
    names = [str(segment) for segment in segments]
    shown = ".".join(names)
    root = names[0]
    if root == "custom":
        if len(names) != 2:
            return _("Write a custom field as custom.<key>, for example “custom.plan”.")
        if names[1] not in custom_fields:
            return _("There is no custom field called “%(name)s”.") % {
                "name": names[1]
            } + _suggestion(names[1], custom_fields)
        return None
    if root == "owner":
        if len(names) != 2 or names[1] not in OWNER_FIELDS:
            return _(
                "“%(name)s” is not available: of the owner, a template can use "
                "owner.name and owner.first_name."
            ) % {"name": shown}
        return None
    if root not in LEAD_FIELDS:
        return _("There is no lead field called “%(name)s”.") % {"name": root} + _suggestion(
            root, (*LEAD_FIELDS, *(f"custom.{key}" for key in custom_fields))
        )
    if len(names) > 1:
        return _("“%(name)s” is not a field: write “%(root)s”.") % {"name": shown, "root": root}
    return None


def merge_tag_problems(text: str, *, custom_fields: Collection[str] | None = None) -> list[str]:
    """What is wrong with the merge tags in a text, in plain sentences (empty: nothing).

    Names unknown fields (with the closest known one), filters that do not exist
    and tags that are not written correctly. ``custom_fields``: the custom field
    keys that exist (read from the database when not given)."""
    problems: list[str] = []
    for match in _LIQUID_TAG.finditer(text):
        problems.append(
            _(
                "“%(tag)s” cannot be used: a template fills in values with merge tags "
                "like {{ first_name }}, it has no other instructions."
            )
            % {"tag": match.group(0)[:60]}
        )
    remainder = MERGE_TAG.sub("", text)
    if "{{" in remainder or "}}" in remainder:
        problems.append(
            _("A merge tag is not closed: every “{{” needs its “}}”, as in {{ first_name }}.")
        )
    expressions = [match.group(1) for match in MERGE_TAG.finditer(text)]
    if not expressions:
        return problems
    if custom_fields is None:
        custom_fields = set(FieldDefinition.objects.values_list("key", flat=True))
    for expression in dict.fromkeys(expressions):
        shown = "{{" + expression + "}}"
        if not expression.strip():
            problems.append(_("An empty merge tag “{{ }}” names no field."))
            continue
        try:
            template = merge_tag_compile(expression)
        except LiquidError as error:
            problems.append(
                _("The merge tag “%(tag)s” is not written correctly (%(reason)s).")
                % {"tag": shown, "reason": getattr(error, "message", None) or str(error)}
            )
            continue
        for name in template.filter_names():
            if name not in ENVIRONMENT.filters:
                problems.append(
                    _("The merge tag “%(tag)s” uses “%(filter)s”, which does not exist.")
                    % {"tag": shown, "filter": name}
                )
        for segments in template.variable_segments():
            problem = _path_problem(list(segments), custom_fields)
            if problem:
                problems.append(problem)
    return list(dict.fromkeys(problems))

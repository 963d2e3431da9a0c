"""The ``person_name`` filter: a user's display name in templates (see
``leads.people``). A built-in of the template engine, so no ``{% load %}``."""

from __future__ import annotations

from typing import Any

from django import template

from leads.people import person_name as _person_name

register = template.Library()


@register.filter
def person_name(user: Any) -> str:
    """``{{ task.assignee|person_name }}``: the full name, else the username."""
    return _person_name(user)

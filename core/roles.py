"""Roles are groups: admin, marketer, sales. These are their names and the sets
pages and endpoints grant; who has which role (users, API keys) is decided in
``leads.roles``."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMIN = "admin", _("Admin")
    MARKETER = "marketer", _("Marketer")
    SALES = "sales", _("Sales")


ALL_ROLES = frozenset({Role.ADMIN, Role.MARKETER, Role.SALES})
# Who builds: flows, segments, scoring settings, lead edits.
ADMIN_MARKETER = frozenset({Role.ADMIN, Role.MARKETER})

# A user in several role groups has the strongest.
_PRECEDENCE = (Role.ADMIN, Role.MARKETER, Role.SALES)


def role_of_groups(names: Iterable[str]) -> Role | None:
    """The role that a user in these groups has (None: no role)."""
    held = set(names)
    return next((role for role in _PRECEDENCE if role in held), None)

"""What a role may change, decided in one place for the pages, the bulk actions
(run in the request or by a worker) and the API.

Pure functions of the role, the acting user's id and the change asked for: no
queries, so every caller can ask before it touches anything. Which leads a user
may reach at all is ``leads_visible_to``; this decides what they may do to them.

- Admins and marketers may change anything on a lead and run every bulk action.
- Sales reps work their own and unassigned leads: they may take a lead for
  themselves or leave it unassigned (as the API has always allowed), change its
  stage, tags and other fields, but not its identity (email, user id,
  unsubscribed), not give it to a colleague, and not change segment membership
  (segments are edited by admins and marketers).
- Anyone without a role may change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext

from core.roles import ADMIN_MARKETER, Role

# What names a person: a rep must not re-identify a lead (merges and unsubscribes
# follow from it).
LEAD_IDENTITY_FIELDS = ("email", "external_id", "unsubscribed")


# Bulk actions by role; for sales, the owner action is further limited to
# themselves or no one (see ``owner_refusal``).
BULK_ACTIONS_BY_ROLE: dict[str, frozenset[str]] = {
    Role.ADMIN: frozenset({"owner", "tag_add", "tag_remove", "segment", "stage"}),
    Role.MARKETER: frozenset({"owner", "tag_add", "tag_remove", "segment", "stage"}),
    Role.SALES: frozenset({"owner", "tag_add", "tag_remove", "stage"}),
}


class ChangeRefused(Exception):
    """The role may not make this change. ``fields`` names the refused inputs
    (field or form input → message); nothing was changed."""

    def __init__(self, fields: Mapping[str, str]):
        self.fields = dict(fields)
        super().__init__(" ".join(self.fields.values()))


def _id(value: Any) -> int | None:
    """A user, a user id or None as an id."""
    if value is None or value == "":
        return None
    return int(getattr(value, "pk", value))


def owner_refusal(*, role: str | None, user_id: int | None, owner: Any) -> str | None:
    """Why this role may not make ``owner`` (a user, an id or None) a lead's
    owner, or None when it may."""
    if role in ADMIN_MARKETER:
        return None
    if role == Role.SALES:
        new_owner = _id(owner)
        if new_owner is None or new_owner == user_id:
            return None
        return gettext("Sales reps can only assign a lead to themselves or to no one.")
    return gettext("Your role does not allow this.")


def lead_change_refusals(
    *,
    role: str | None,
    user_id: int | None,
    current: Mapping[str, Any],
    changes: Mapping[str, Any],
) -> dict[str, str]:
    """Field → why this role may not make that change to a lead, for each change
    it may not make (empty: all allowed). ``current`` holds the lead's values as
    they are (the owner as a user or id), ``changes`` the values asked for; a
    value asked for that equals the current one is no change and always passes,
    so a form that posts every field back is judged on what it changes."""
    if role in ADMIN_MARKETER:
        return {}
    if role != Role.SALES:
        return {name: gettext("Your role does not allow this.") for name in changes}
    refused: dict[str, str] = {}
    for name in LEAD_IDENTITY_FIELDS:
        if name in changes and changes[name] != current.get(name):
            refused[name] = gettext("Sales reps cannot change this field.")
    if "owner" in changes and _id(changes["owner"]) != _id(current.get("owner")):
        message = owner_refusal(role=role, user_id=user_id, owner=changes["owner"])
        if message is not None:
            refused["owner"] = message
    return refused


def lead_values(lead: Any) -> dict[str, Any]:
    """The ``current`` values ``lead_change_refusals`` compares with, from a lead
    (or {} for one not created yet)."""
    if lead is None:
        return {}
    values = {name: getattr(lead, name) for name in LEAD_IDENTITY_FIELDS}
    values["owner"] = lead.owner_id
    return values


# Who works deals: sales reps (on the leads they may see) and admins (a ``full``
# API key acts as one). Marketers read them, in the review and on the profile.
OPPORTUNITY_ROLES = frozenset({Role.ADMIN, Role.SALES})


def opportunity_refusal(role: str | None) -> str | None:
    """Why this role may not open, win or lose an opportunity, or None."""
    if role in OPPORTUNITY_ROLES:
        return None
    return gettext("Only sales reps and admins open, win or lose opportunities.")


def bulk_actions_allowed(role: str | None) -> frozenset[str]:
    """The bulk actions the leads list offers this role."""
    return BULK_ACTIONS_BY_ROLE.get(role or "", frozenset())


def bulk_action_refusal(
    *, role: str | None, user_id: int | None, action: str, values: Mapping[str, Any]
) -> dict[str, str]:
    """Input → why this role may not run ``action`` with ``values`` (as
    ``leads_bulk_change`` takes them: ``owner`` an id or None, ``segment`` an id
    …); empty when it may."""
    if action not in bulk_actions_allowed(role):
        if action == "segment":
            return {"segment": gettext("Only admins and marketers change segment membership.")}
        return {"action": gettext("Your role does not allow this.")}
    if action == "owner":
        message = owner_refusal(role=role, user_id=user_id, owner=values.get("owner"))
        if message is not None:
            return {"owner": message}
    return {}

"""The columns a user may show in the leads list (and its CSV export), and the
ones they chose, in their order. Name and email are always shown first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy as _

from leads.models import FieldDefinition, Lead
from leads.people import person_name

CUSTOM_PREFIX = "custom:"


@dataclass(frozen=True)
class LeadColumn:
    key: str
    label: Any  # a lazy translation, or a custom field's own label
    # The list's sort key (``leads.selectors.LEAD_SORTS``) when it sorts by this.
    sort: str = ""


BUILT_IN_COLUMNS = (
    LeadColumn("job_title", _("Job title"), sort="job_title"),
    LeadColumn("company", _("Company"), sort="company"),
    LeadColumn("score", _("Score"), sort="score"),
    LeadColumn("fit_points", _("Fit points"), sort="fit"),
    LeadColumn("engagement_points", _("Engagement points"), sort="engagement"),
    LeadColumn("fit_grade", _("Fit")),
    LeadColumn("engagement_grade", _("Engagement")),
    LeadColumn("stage", _("Stage")),
    LeadColumn("owner", _("Owner")),
    LeadColumn("source", _("Source")),
    LeadColumn("last_activity", _("Last activity"), sort="activity"),
    LeadColumn("created", _("Created"), sort="created"),
)
DEFAULT_COLUMNS = ("company", "stage", "score", "owner", "last_activity")
# Name and email lead every row; they are not chosen.
FIXED_COLUMNS = (LeadColumn("name", _("Name")), LeadColumn("email", _("Email")))


def lead_columns_available() -> list[LeadColumn]:
    """Every column there is: the built-in ones, then each custom field (one query)."""
    custom = [
        LeadColumn(f"{CUSTOM_PREFIX}{key}", label)
        for key, label in FieldDefinition.objects.order_by("label", "key").values_list(
            "key", "label"
        )
    ]
    return [*BUILT_IN_COLUMNS, *custom]


def lead_columns_resolve(
    keys: Iterable[str] | None, available: list[LeadColumn] | None = None
) -> list[LeadColumn]:
    """The columns named by ``keys``, in that order; a key no column has (say, a
    custom field since deleted) or one named twice is skipped. ``None`` (nothing
    saved) gives the default columns."""
    by_key = {column.key: column for column in available or lead_columns_available()}
    wanted = DEFAULT_COLUMNS if keys is None else keys
    chosen: list[LeadColumn] = []
    for key in wanted:
        if isinstance(key, str) and key in by_key and by_key[key] not in chosen:
            chosen.append(by_key[key])
    return chosen


def user_lead_columns(user: Any, available: list[LeadColumn] | None = None) -> list[LeadColumn]:
    """The columns ``user`` chose, in their order (the defaults until they choose),
    out of ``available`` (read when not given)."""
    preference = getattr(user, "preference", None) if getattr(user, "pk", None) else None
    keys = preference.lead_columns if preference is not None else None
    return lead_columns_resolve(keys if isinstance(keys, list) else None, available)


def columns_need_points(columns: Iterable[LeadColumn]) -> bool:
    return any(column.key in ("fit_points", "engagement_points") for column in columns)


def lead_column_value(lead: Lead, column: LeadColumn, points: dict[str, int]) -> Any:
    """The lead's value in ``column``: text, a whole number, a time or None.
    ``points`` are the lead's category points (``CategoryScores.points``)."""
    key = column.key
    if key.startswith(CUSTOM_PREFIX):
        value = (lead.custom_fields or {}).get(key[len(CUSTOM_PREFIX) :])
        if isinstance(value, list):
            return ", ".join(str(item) for item in value)
        return value
    if key == "fit_points":
        return points.get("fit", 0)
    if key == "engagement_points":
        return points.get("engagement", 0)
    if key == "owner":
        return person_name(lead.owner)
    if key == "stage":
        return lead.get_stage_display()
    if key == "source":
        return lead.get_source_display() if lead.source else ""
    if key == "company":
        return lead.company_name
    if key == "last_activity":
        return lead.last_activity_at
    if key == "created":
        return lead.created_at
    return getattr(lead, key)

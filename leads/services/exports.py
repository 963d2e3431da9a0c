"""CSV export of a leads-list filter: the rows, streamed to the browser for a
small export or written into a file by a worker (``leads.services.jobs``)."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from leads.models import Lead
from leads.selectors import LeadFilters, leads_filter, leads_sorted, leads_visible_to

EXPORT_CHUNK_SIZE = 500
EXPORT_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "company_name",
    "job_title",
    "stage",
    "grade",
    "score",
    "owner",
    "tags",
    "created_at",
    "last_activity_at",
)
# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@")


class _Echo:
    """A file-like object that hands back what is written to it."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: str) -> str:
    """Text as a CSV cell a spreadsheet shows and never evaluates."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def _moment(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).isoformat() if value is not None else ""


def export_leads(*, user: Any, filters: LeadFilters, sort: str) -> QuerySet[Lead]:
    """The leads ``user`` may see that match ``filters``, in the list's order."""
    leads = leads_filter(leads_visible_to(user), filters)
    return leads_sorted(leads, sort).select_related("owner").prefetch_related("tags")


def export_rows(leads: QuerySet[Lead]) -> Iterator[str]:
    """The CSV text: a header line, then one line per lead, read in chunks."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for lead in leads.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        yield writer.writerow(
            [
                csv_cell(lead.email or ""),
                csv_cell(lead.first_name),
                csv_cell(lead.last_name),
                csv_cell(lead.company_name),
                csv_cell(lead.job_title),
                lead.stage,
                lead.grade,
                lead.score,
                csv_cell(lead.owner.get_username()) if lead.owner else "",
                csv_cell(";".join(sorted(tag.name for tag in lead.tags.all()))),
                _moment(lead.created_at),
                _moment(lead.last_activity_at),
            ]
        )

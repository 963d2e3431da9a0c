"""CSV export of a leads-list filter: the rows, streamed to the browser for a
small export or written into a file by a worker (``leads.services.jobs``)."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from leads.category_scores import category_scores
from leads.columns import FIXED_COLUMNS, LeadColumn, columns_need_points, lead_column_value
from leads.models import Lead
from leads.selectors import LeadFilters, leads_filter, leads_sorted, leads_visible_to

EXPORT_CHUNK_SIZE = 500
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
    """A time in ISO 8601, in UTC, to the second: ``2026-12-07T09:15:02+00:00``."""
    if value is None:
        return ""
    return value.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return _moment(value)
    if isinstance(value, bool | int):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return csv_cell(str(value))


def export_leads(
    *, user: Any, filters: LeadFilters, sort: str, columns: list[LeadColumn]
) -> QuerySet[Lead]:
    """The leads ``user`` may see that match ``filters``, in the list's order,
    with what ``columns`` show read alongside."""
    leads = leads_filter(leads_visible_to(user), filters)
    leads = leads_sorted(leads, sort).select_related("owner")
    return category_scores().with_points(leads) if columns_need_points(columns) else leads


def export_rows(leads: QuerySet[Lead], columns: list[LeadColumn]) -> Iterator[str]:
    """The CSV text: a header line with the columns' labels (name and email, then
    ``columns`` in their order), then one line per lead, read in chunks."""
    writer = csv.writer(_Echo())
    scores = category_scores()
    need_points = columns_need_points(columns)
    yield writer.writerow([str(column.label) for column in (*FIXED_COLUMNS, *columns)])
    # A prefetch (category points) needs a chunk size to be read along.
    for lead in leads.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        points = scores.points(lead) if need_points else {}
        yield writer.writerow(
            [
                csv_cell(lead.full_name),
                csv_cell(lead.email or ""),
                *(_cell(lead_column_value(lead, column, points)) for column in columns),
            ]
        )

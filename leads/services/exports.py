"""CSV export of a leads-list filter. Small exports stream straight to the
browser; big ones are written by a worker into a file, counting rows as it goes,
so the page can show progress and offer the file when it is ready."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import logging
import tempfile
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.models import User
from django.core.files import File
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from leads.models import ExportStatus, Lead, LeadExport
from leads.selectors import LeadFilters, leads_filter, leads_sorted, leads_visible_to

logger = logging.getLogger(__name__)

EXPORT_CHUNK_SIZE = 500
# How often the worker writes its progress (rows).
PROGRESS_EVERY = 2000
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


def lead_export_start(*, user: User, filters: LeadFilters, sort: str, query: str) -> LeadExport:
    """Record an export of the list ``user`` sees and have a worker write it."""
    from leads.tasks import lead_export_run_task

    export = LeadExport.objects.create(
        created_by=user, filters=dataclasses.asdict(filters), sort=sort, query=query[:1000]
    )
    transaction.on_commit(lambda: lead_export_run_task.delay(export.pk))
    return export


def lead_export_run(*, export_id: int) -> None:
    """Write the export's file. The leads are those its creator may see now;
    progress is committed as it goes (no transaction around the whole run)."""
    export = LeadExport.objects.select_related("created_by").filter(pk=export_id).first()
    if export is None or export.status in (ExportStatus.DONE, ExportStatus.FAILED):
        return
    leads = export_leads(
        user=export.created_by, filters=LeadFilters(**export.filters), sort=export.sort
    )
    total = leads.count()
    LeadExport.objects.filter(pk=export.pk).update(
        status=ExportStatus.RUNNING, rows_total=total, rows_done=0
    )
    try:
        with tempfile.TemporaryFile(mode="w+b") as spool:
            done = -1  # the header line is not a row
            for line in export_rows(leads):
                spool.write(line.encode("utf-8"))
                done += 1
                if done and done % PROGRESS_EVERY == 0:
                    LeadExport.objects.filter(pk=export.pk).update(rows_done=done)
            spool.seek(0)
            stamp = timezone.localtime(export.created_at).strftime("%Y%m%d-%H%M")
            export.file.save(f"leads-{stamp}-{export.pk}.csv", File(spool), save=False)
    except Exception as exc:
        logger.exception("lead export failed", extra={"export_id": export.pk})
        LeadExport.objects.filter(pk=export.pk).update(
            status=ExportStatus.FAILED, error=str(exc)[:1000], finished_at=timezone.now()
        )
        return
    LeadExport.objects.filter(pk=export.pk).update(
        status=ExportStatus.DONE,
        rows_done=done,
        rows_total=max(total, done),
        file=export.file.name,
        finished_at=timezone.now(),
    )

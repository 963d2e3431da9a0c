"""Long work on a leads-list filter, done by a worker while the page shows its
progress: a CSV export into a file, or a bulk change of every matching lead.

The job keeps the filter, not a list of ids, and runs on the leads its creator
may see when it runs. Progress is committed as it goes (there is no transaction
around the whole run; a bulk change commits batch by batch), so a job stopped
half-way leaves what it did consistent and says how far it got."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from typing import Any

from django.contrib.auth.models import User
from django.core.files import File
from django.utils import timezone, translation

from leads.columns import user_lead_columns
from leads.models import JobKind, JobStatus, LeadJob
from leads.outages import outage, task_send_on_commit
from leads.selectors import LeadFilters, leads_filter, leads_visible_to, user_language
from leads.services import bulk
from leads.services.background import ClaimLost, JobClaim, job_claim
from leads.services.exports import export_leads, export_rows

logger = logging.getLogger(__name__)

# How often an export writes its progress (rows); a bulk change writes it per batch.
PROGRESS_EVERY = 2000


def lead_job_start(
    *,
    user: User,
    kind: str,
    filters: LeadFilters,
    sort: str = "",
    query: str = "",
    action: str = "",
    params: dict[str, Any] | None = None,
) -> LeadJob:
    """Record a job on the leads ``user`` sees through ``filters``; a worker runs
    it after commit. A bulk change ``user``'s role may not make raises
    ChangeRefused and records nothing."""
    from leads.tasks import lead_job_run_task

    if kind == JobKind.BULK:
        if action not in bulk.BULK_ACTIONS:
            raise ValueError(f"unknown bulk action {action!r}")
        # Refused before it is queued; checked again when it runs, for the role then.
        bulk.bulk_change_check(user=user, action=action, values=params or {})
    job = LeadJob.objects.create(
        kind=kind,
        created_by=user,
        filters=dataclasses.asdict(filters),
        sort=sort,
        query=query[:1000],
        action=action,
        params=params or {},
    )
    task_send_on_commit(lead_job_run_task, job.pk)
    return job


def lead_job_run(*, job_id: int) -> None:
    """Run a job once its claim is ours: a finished job, or one another worker
    holds, is left alone, so a redelivered or re-sent message does nothing twice.
    A run that takes over from a worker that died starts an export again and runs
    a bulk change again on what it has not changed yet (the count of changed
    leads goes on from where it was)."""
    claim = job_claim(model=LeadJob, pk=job_id)
    if claim is None:
        return
    job = LeadJob.objects.select_related("created_by").get(pk=job_id)
    leads = leads_filter(leads_visible_to(job.created_by), LeadFilters(**job.filters))
    total = leads.count()
    changed_before = job.rows_changed if job.kind == JobKind.BULK else 0
    try:
        claim.touch(rows_total=total, rows_done=0, rows_changed=changed_before)
        if job.kind == JobKind.EXPORT:
            done, changed = _export(job, claim), 0
        else:
            result = _bulk(job, leads, claim, changed_before)
            done, changed = result.total, result.changed
    except ClaimLost:
        return
    except Exception as exc:
        if outage(exc):
            # Not the job's fault: the claim runs out and beat sends it again.
            raise
        logger.exception("lead job failed", extra={"job_id": job.pk})
        claim.release(status=JobStatus.FAILED, error=str(exc)[:1000], finished_at=timezone.now())
        return
    claim.release(
        status=JobStatus.DONE,
        rows_done=done,
        rows_changed=changed_before + changed,
        rows_total=max(total, done),
        file=job.file.name or "",
        finished_at=timezone.now(),
    )


def _export(job: LeadJob, claim: JobClaim) -> int:
    # The columns its maker has chosen when it runs, labelled in their language.
    columns = user_lead_columns(job.created_by)
    leads = export_leads(
        user=job.created_by, filters=LeadFilters(**job.filters), sort=job.sort, columns=columns
    )
    with (
        tempfile.TemporaryFile(mode="w+b") as spool,
        translation.override(user_language(job.created_by) or None),
    ):
        done = -1  # the header line is not a lead
        for line in export_rows(leads, columns):
            spool.write(line.encode("utf-8"))
            done += 1
            if done and done % PROGRESS_EVERY == 0:
                claim.touch(rows_done=done)
        spool.seek(0)
        stamp = timezone.localtime(job.created_at).strftime("%Y%m%d-%H%M")
        job.file.save(f"leads-{stamp}-{job.pk}.csv", File(spool), save=False)
    return done


def _bulk(job: LeadJob, leads: Any, claim: JobClaim, changed_before: int) -> bulk.BulkResult:
    def progress(result: bulk.BulkResult) -> None:
        claim.touch(rows_done=result.total, rows_changed=changed_before + result.changed)

    return bulk.leads_bulk_change(
        leads=leads, action=job.action, values=job.params, user=job.created_by, progress=progress
    )

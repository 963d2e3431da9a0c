"""Background work that a request hands to the workers (CSV imports, exports and
bulk changes of the leads list; apps above add theirs with ``sweep_register``, like
segments' "Refresh now") survives a lost
message, a broker outage and a worker that dies half-way.

The row is the record, the message only a doorbell, as with events: a worker
claims a job with one conditional UPDATE, so however many messages ask for it
only one worker runs it; the claim is renewed with every step of progress, so a
claim that grows old belonged to a worker that died; and beat's ``jobs_sweep``
sends the message again for a job still waiting once its message has left the
queue, and for a job whose worker died. What the next run does depends on the
kind: an import goes on after the last row it committed, an export starts again
(it only reads), and a bulk change runs again on what is left (changing a lead
to what it already is changes nothing). After ``JOB_MAX_ATTEMPTS`` runs that
died, the job fails and says how far it got.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext

from leads.models import ImportStatus, JobStatus, LeadImport, LeadJob
from leads.outages import BROKER_ERRORS, task_send

logger = logging.getLogger(__name__)

# A claim not renewed for this long belonged to a worker that died: every job
# writes its progress at least once per batch (1,000 to 2,000 rows, seconds).
JOB_CLAIM_SECONDS = 180
# Runs a job may take; one more that would be needed fails it instead.
JOB_MAX_ATTEMPTS = 3
# Re-sends of one job are spaced 1, 2, 4 … times the sweep delay, up to an hour.
RESEND_SPACING_MAX = timedelta(hours=1)
# As for events: a job handed over this long before the oldest queued message
# was sent has left the queue.
SEND_MARGIN = timedelta(seconds=10)


class ClaimLost(Exception):
    """Another worker took the job over (this one's claim had expired)."""


@dataclass
class JobClaim:
    """A worker's hold on one job row: every write of progress renews it, and
    fails with ClaimLost once another worker holds the job."""

    model: type[models.Model]
    pk: int
    at: datetime

    def touch(self, **values: Any) -> None:
        now = timezone.now()
        held = self.model._default_manager.filter(pk=self.pk, claimed_at=self.at)
        if not held.update(claimed_at=now, **values):
            raise ClaimLost()
        self.at = now

    def release(self, **values: Any) -> bool:
        """Write the outcome and let go; False when the job was no longer ours."""
        held = self.model._default_manager.filter(pk=self.pk, claimed_at=self.at)
        return bool(held.update(claimed_at=None, **values))


def _stale(now: datetime) -> Q:
    return Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - timedelta(seconds=JOB_CLAIM_SECONDS))


def job_claim(*, model: type[LeadImport] | type[LeadJob], pk: int) -> JobClaim | None:
    """Take a waiting job, or a running one whose worker died, for this worker:
    one statement, so of two workers asking at once one gets it. None when it is
    done, failed, held by a live worker, or out of runs."""
    now = timezone.now()
    taken = (
        model._default_manager.filter(pk=pk, attempts__lt=JOB_MAX_ATTEMPTS)
        .filter(
            Q(status=JobStatus.PENDING) | (Q(status=JobStatus.RUNNING) & _stale(now)),
        )
        .update(status=JobStatus.RUNNING, claimed_at=now, attempts=F("attempts") + 1)
    )
    return JobClaim(model=model, pk=pk, at=now) if taken else None


def _due(
    *, last: datetime, resends: int, pending: bool, now: datetime, before: datetime | None
) -> bool:
    base = timedelta(seconds=settings.EVENT_SWEEP_AFTER_SECONDS)
    if last > now - min(base * 2 ** min(resends, 16), RESEND_SPACING_MAX):
        return False
    # A waiting job's message may still be queued behind others; a running job's
    # worker took its message.
    return not (pending and before is not None and last >= before)


def _stopped_message(kind: str, row: dict[str, Any]) -> str:
    tries = row["attempts"]
    if kind == "import":
        return gettext(
            "The import stopped after row %(row)s (%(tries)s tries). The rows up to "
            "there are imported; upload the file again to import the rest."
        ) % {"row": number_format(row["rows_position"], force_grouping=True), "tries": tries}
    return gettext("Stopped at %(done)s of %(total)s leads (%(tries)s tries); start it again.") % {
        "done": number_format(row["rows_done"], force_grouping=True),
        "total": number_format(row["rows_total"], force_grouping=True),
        "tries": tries,
    }


class SweepPart(Protocol):
    """Background work of an app above that ``jobs_sweep`` sends again: the
    number sent, and False when the broker went out of reach meanwhile."""

    def __call__(
        self, *, now: datetime, before: datetime | None, waited: datetime, limit: int
    ) -> tuple[int, bool]: ...


_SWEEP_PARTS: dict[str, SweepPart] = {}


def sweep_register(*, name: str, part: SweepPart) -> None:
    """Let ``jobs_sweep`` send again an app's own background work (segments'
    refreshes), with the same spacing as imports and jobs. Called from the
    app's ``AppConfig.ready``; registering a name again replaces it."""
    _SWEEP_PARTS[name] = part


def resend_due(*, last: datetime, resends: int, now: datetime, before: datetime | None) -> bool:
    """Whether a waiting piece of work last sent at ``last`` is due to be sent
    again (its message is not still queued, and the spacing has passed)."""
    return _due(last=last, resends=resends, pending=True, now=now, before=before)


def jobs_sweep(*, limit: int = 200) -> int:
    """Send again the message of each job that waits for one (beat, every 30 s):
    waiting jobs whose message is gone, and running jobs whose worker died; fail
    the jobs whose worker died too often. Returns how many were sent."""
    from leads.services.events import ingest_queued_since
    from leads.tasks import lead_import_run, lead_job_run_task

    now = timezone.now()
    try:
        queued_since = ingest_queued_since(now)
    except BROKER_ERRORS as exc:
        logger.warning("job sweep skipped, broker unreachable: %s", exc)
        return 0
    before = queued_since - SEND_MARGIN if queued_since is not None else None
    waited = now - timedelta(seconds=settings.EVENT_SWEEP_AFTER_SECONDS)
    sent = 0
    kinds: list[tuple[str, Any, Any, str]] = [
        ("import", LeadImport.objects.exclude(queued_at=None), lead_import_run, "queued_at"),
        ("job", LeadJob.objects.all(), lead_job_run_task, "created_at"),
    ]
    for kind, jobs, task, queued_field in kinds:
        dead = jobs.filter(status=JobStatus.RUNNING).filter(_stale(now))
        for row in dead.filter(attempts__gte=JOB_MAX_ATTEMPTS).values(
            "pk", "attempts", "rows_position" if kind == "import" else "rows_done", "rows_total"
        ):
            _job_stopped(kind, row, now)
        candidates = (
            jobs.filter(attempts__lt=JOB_MAX_ATTEMPTS)
            .filter(
                Q(status=JobStatus.PENDING, **{f"{queued_field}__lt": waited})
                | (Q(status=JobStatus.RUNNING) & _stale(now))
            )
            .values("pk", "status", "resends", "resent_at", queued_field)
            .order_by(queued_field)[:limit]
        )
        for row in candidates:
            pending = row["status"] == JobStatus.PENDING
            # A dead worker's job goes at once, unless it was just sent again.
            last = row["resent_at"] or (row[queued_field] if pending else now - RESEND_SPACING_MAX)
            if not _due(last=last, resends=row["resends"], pending=pending, now=now, before=before):
                continue
            if not task_send(task, row["pk"]):
                return sent
            jobs.model._default_manager.filter(pk=row["pk"]).update(
                resends=F("resends") + 1, resent_at=now
            )
            sent += 1
    for part in _SWEEP_PARTS.values():
        resent, broker_ok = part(now=now, before=before, waited=waited, limit=limit)
        sent += resent
        if not broker_ok:
            return sent
    if sent:
        logger.warning("re-sent %s background jobs", sent)
    return sent


def _job_stopped(kind: str, row: dict[str, Any], now: datetime) -> None:
    message = _stopped_message(kind, row)
    if kind == "import":
        record = LeadImport.objects.filter(pk=row["pk"], status=ImportStatus.RUNNING).first()
        if record is not None:
            LeadImport.objects.filter(pk=record.pk, status=ImportStatus.RUNNING).filter(
                _stale(now)
            ).update(
                status=ImportStatus.FAILED,
                claimed_at=None,
                errors=[*record.errors, {"row": None, "error": message}],
                finished_at=now,
            )
        return
    LeadJob.objects.filter(pk=row["pk"], status=JobStatus.RUNNING).filter(_stale(now)).update(
        status=JobStatus.FAILED, claimed_at=None, error=message, finished_at=now
    )

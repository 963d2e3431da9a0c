"""Background jobs (imports, exports, bulk changes, segment refreshes) are run by
one worker at a time, sent again by beat's sweeper when their message is lost,
and taken over when their worker dies: an import goes on where it stopped, an
export starts again, and a job whose workers keep dying fails saying how far it
got."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from leads.models import Event, Lead, LeadImport, LeadJob, Segment
from leads.services import background, imports
from leads.services.background import job_claim, jobs_sweep
from leads.services.jobs import lead_job_run
from tests.factories import LeadFactory, LeadImportFactory, LeadJobFactory, SegmentFactory

pytestmark = pytest.mark.django_db

STALE = timedelta(seconds=background.JOB_CLAIM_SECONDS + 1)
LONG_AGO = timedelta(minutes=5)


class WorkerDied(BaseException):
    """What a killed worker looks like from inside: nothing after it runs."""


def _csv(count: int) -> bytes:
    rows = "".join(f"person{n}@x.example,Title {n}\n" for n in range(count))
    return ("email,title\n" + rows).encode()


def _ago(model, pk, **fields):
    model.objects.filter(pk=pk).update(**{k: timezone.now() - v for k, v in fields.items()})


def test_two_claims_of_one_job_give_it_to_one_worker():
    job = LeadJobFactory.create()

    first = job_claim(model=LeadJob, pk=job.pk)
    second = job_claim(model=LeadJob, pk=job.pk)
    # A redelivered message while the first worker runs it does nothing.
    lead_job_run(job_id=job.pk)
    job.refresh_from_db()

    assert first is not None
    assert second is None
    assert (job.status, job.attempts, job.rows_done, job.file.name) == ("running", 1, 0, "")
    assert job.claimed_at == first.at


def test_a_finished_job_is_not_claimed_again():
    LeadFactory.create_batch(2, grade="hot")
    job = LeadJobFactory.create(filters={"grade": "hot"})
    lead_job_run(job_id=job.pk)

    assert job_claim(model=LeadJob, pk=job.pk) is None
    job.refresh_from_db()
    assert (job.status, job.attempts, job.rows_done, job.claimed_at) == ("done", 1, 2, None)


def test_a_waiting_job_whose_message_was_lost_is_sent_again_spaced():
    LeadFactory.create_batch(3, grade="hot")
    job = LeadJobFactory.create(filters={"grade": "hot"})
    other = LeadJobFactory.create(filters={"grade": "hot"})  # handed over just now
    _ago(LeadJob, job.pk, created_at=LONG_AGO)

    sent = jobs_sweep()  # tasks run inline here: the re-sent message runs the job
    again = jobs_sweep()
    job.refresh_from_db()
    other.refresh_from_db()

    assert (sent, again) == (1, 0)
    assert (job.status, job.rows_done, job.attempts, job.resends) == ("done", 3, 1, 1)
    assert job.file.read().decode().count("\n") == 4  # the header and three leads
    assert (other.status, other.resends) == ("pending", 0)


def test_a_waiting_job_is_sent_again_only_after_twice_the_wait():
    job = LeadJobFactory.create()
    LeadJob.objects.filter(pk=job.pk).update(
        created_at=timezone.now() - LONG_AGO,
        resends=1,
        resent_at=timezone.now() - timedelta(seconds=45),
    )

    assert jobs_sweep() == 0  # the second re-send waits 60 s
    _ago(LeadJob, job.pk, resent_at=timedelta(seconds=61))
    assert jobs_sweep() == 1
    job.refresh_from_db()
    assert (job.status, job.resends) == ("done", 2)


def test_an_import_whose_worker_died_goes_on_after_the_last_committed_row(monkeypatch):
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    record = LeadImportFactory.create(
        file__data=_csv(5), mapping={"email": "email", "title": "job_title"}
    )
    batches = []
    original = imports._import_rows

    def dies_in_the_second_batch(batch, *args):
        batches.append([number for number, _ in batch])
        if len(batches) == 2:
            raise WorkerDied()
        return original(batch, *args)

    monkeypatch.setattr(imports, "_import_rows", dies_in_the_second_batch)
    with pytest.raises(WorkerDied):
        imports.lead_import_run(import_id=record.pk)
    record.refresh_from_db()
    assert (record.status, record.rows_position, record.rows_total, record.rows_created) == (
        "running",
        3,
        2,
        2,
    )

    # Before its claim runs out nobody takes it over; after, the sweeper does.
    assert jobs_sweep() == 0
    _ago(LeadImport, record.pk, claimed_at=STALE, queued_at=LONG_AGO)
    monkeypatch.setattr(imports, "_import_rows", original)
    assert jobs_sweep() == 1
    record.refresh_from_db()

    assert batches == [[2, 3], [4, 5]]
    assert (record.status, record.attempts, record.rows_position) == ("done", 2, 6)
    assert (record.rows_total, record.rows_created, record.rows_updated, record.rows_failed) == (
        5,
        5,
        0,
        0,
    )
    assert sorted(Lead.objects.values_list("email", "job_title")) == [
        (f"person{n}@x.example", f"Title {n}") for n in range(5)
    ]
    assert Event.objects.filter(type="lead.created").count() == 5


def test_an_export_whose_worker_died_starts_again():
    LeadFactory.create_batch(4, grade="hot")
    job = LeadJobFactory.create(filters={"grade": "hot"})
    LeadJob.objects.filter(pk=job.pk).update(
        status="running", attempts=1, rows_total=4, rows_done=2, claimed_at=timezone.now() - STALE
    )

    assert jobs_sweep() == 1
    job.refresh_from_db()

    assert (job.status, job.attempts, job.rows_total, job.rows_done) == ("done", 2, 4, 4)
    assert job.file.read().decode().count("\n") == 5


def test_a_bulk_change_whose_worker_died_changes_the_rest_and_counts_all():
    changed = LeadFactory.create_batch(2, grade="hot", stage="sql")
    LeadFactory.create_batch(3, grade="hot", stage="subscriber")
    job = LeadJobFactory.create(
        kind="bulk", action="stage", params={"stage": "sql"}, filters={"grade": "hot"}
    )
    LeadJob.objects.filter(pk=job.pk).update(
        status="running",
        attempts=1,
        rows_total=5,
        rows_done=2,
        rows_changed=2,
        claimed_at=timezone.now() - STALE,
    )

    assert jobs_sweep() == 1
    job.refresh_from_db()

    assert (job.status, job.attempts, job.rows_done, job.rows_changed) == ("done", 2, 5, 5)
    assert Lead.objects.filter(stage="sql").count() == 5
    assert set(
        Lead.objects.filter(pk__in=[c.pk for c in changed]).values_list("stage", flat=True)
    ) == {"sql"}
    assert Event.objects.filter(type="field.changed", name="stage").count() == 3


def test_a_job_whose_workers_keep_dying_fails_saying_how_far_it_got():
    job = LeadJobFactory.create()
    LeadJob.objects.filter(pk=job.pk).update(
        status="running",
        attempts=background.JOB_MAX_ATTEMPTS,
        rows_total=5000,
        rows_done=1200,
        claimed_at=timezone.now() - STALE,
    )
    record = LeadImportFactory.create()
    LeadImport.objects.filter(pk=record.pk).update(
        status="running",
        attempts=background.JOB_MAX_ATTEMPTS,
        rows_position=1201,
        errors=[{"row": 7, "error": "email: missing; rows are matched by email."}],
        claimed_at=timezone.now() - STALE,
    )

    assert jobs_sweep() == 0
    job.refresh_from_db()
    record.refresh_from_db()

    assert (job.status, job.error, job.claimed_at) == (
        "failed",
        "Stopped at 1,200 of 5,000 leads (3 tries); start it again.",
        None,
    )
    assert job_claim(model=LeadJob, pk=job.pk) is None
    assert record.status == "failed"
    assert record.errors == [
        {"row": 7, "error": "email: missing; rows are matched by email."},
        {
            "row": None,
            "error": "The import stopped after row 1,201 (3 tries). The rows up to there "
            "are imported; upload the file again to import the rest.",
        },
    ]


def test_an_import_not_yet_mapped_is_not_sent():
    record = LeadImportFactory.create(queued_at=None, mapping={})
    LeadImport.objects.filter(pk=record.pk).update(created_at=timezone.now() - LONG_AGO)

    assert jobs_sweep() == 0
    record.refresh_from_db()
    assert (record.status, record.resends) == ("pending", 0)


def test_a_refresh_whose_message_was_lost_is_sent_again():
    LeadFactory.create_batch(2, job_title="CEO")
    LeadFactory.create(job_title="Intern")
    segment = SegmentFactory.create(
        conditions={"all": [{"field": "job_title", "op": "is", "value": "CEO"}]}
    )
    Segment.objects.filter(pk=segment.pk).update(refresh_requested_at=timezone.now() - LONG_AGO)

    assert jobs_sweep() == 1
    assert jobs_sweep() == 0
    segment.refresh_from_db()

    assert (segment.member_count, segment.refreshing, segment.refresh_resends) == (2, False, 1)

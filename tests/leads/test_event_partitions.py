"""The events table by month on PostgreSQL: partitions, global dedupe, the daily
command (months ahead, retention) and the rules retention refuses."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from flows.graph import config_problems
from flows.nodes import REGISTRY
from leads.models import Event, EventKey
from leads.services.events import event_keys_claim, events_record
from leads.services.partitions import (
    DEFAULT_PARTITION,
    event_partitions,
    event_partitions_maintain,
    event_retention_cutoff,
    event_retention_days,
    month_start,
    partition_name,
)
from segments.conditions import ConditionError, validate
from tests.factories import EnrollmentFactory, LeadFactory

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the events table is partitioned on PostgreSQL only"
)


def _event(*, key: str, occurred_at, source: str = "api", **fields) -> Event:
    return Event(
        type=fields.pop("type", "track"),
        name=fields.pop("name", "Signed up"),
        user_id=fields.pop("user_id", "u1"),
        occurred_at=occurred_at,
        received_at=fields.pop("received_at", timezone.now()),
        source=source,
        idempotency_key=key,
        **fields,
    )


def _partition_of(event_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM leads_event WHERE id = %s", [event_id])
        row = cursor.fetchone()
    assert row is not None
    return str(row[0])


def _table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        row = cursor.fetchone()
    return bool(row and row[0])


def test_retention_days_are_the_fewest_days_of_that_many_months():
    assert event_retention_days(12) == 365
    assert event_retention_days(1) == 28
    assert event_retention_days(2) == 59
    assert event_retention_days(24) == 730


def test_retention_cutoff_keeps_the_current_month_and_the_months_before():
    now = timezone.now().replace(year=2026, month=12, day=7)
    assert event_retention_cutoff(now=now, months=12).isoformat() == "2025-12-01T00:00:00+00:00"
    assert event_retention_cutoff(now=now, months=1).isoformat() == "2026-11-01T00:00:00+00:00"


@postgresql_only
def test_the_events_table_is_partitioned_with_the_months_ahead():
    now = timezone.now()

    months = event_partitions()

    assert [partition_name(m) for m in sorted(months)] == [
        partition_name(month_start(now, months=n)) for n in range(4)
    ]
    assert _table_exists(DEFAULT_PARTITION)


@postgresql_only
def test_an_event_lands_in_its_month_and_far_ones_in_the_default_partition():
    now = timezone.now()

    ids = events_record(
        events=[
            _event(key="now", occurred_at=now),
            _event(key="next-month", occurred_at=month_start(now, months=1) + timedelta(days=3)),
            _event(key="1970", occurred_at=now.replace(year=1970)),
            _event(key="2190", occurred_at=now.replace(year=2190)),
        ]
    )

    assert [_partition_of(pk) for pk in ids] == [
        partition_name(month_start(now)),
        partition_name(month_start(now, months=1)),
        DEFAULT_PARTITION,
        DEFAULT_PARTITION,
    ]
    assert list(Event.objects.filter(pk__in=ids).order_by("id").values_list("pk", flat=True)) == ids


@postgresql_only
def test_dedupe_is_global_across_months():
    # Given an email open recorded by the pixel this month
    now = timezone.now()
    first = events_record(events=[_event(key="open:m1", occurred_at=now, type="email.opened")])

    # when the provider's webhook reports it with a time months earlier
    again = events_record(
        events=[_event(key="open:m1", occurred_at=now - timedelta(days=200), type="email.opened")]
    )

    # then it is one event, the first, still waiting to be processed
    assert again == first
    assert Event.objects.filter(source="api", idempotency_key="open:m1").count() == 1
    assert EventKey.objects.filter(source="api", idempotency_key="open:m1").count() == 1


@postgresql_only
def test_a_processed_duplicate_is_not_returned_and_another_source_is_another_event():
    now = timezone.now()
    (first,) = events_record(events=[_event(key="k1", occurred_at=now)])
    Event.objects.filter(pk=first).update(processed_at=now)

    assert events_record(events=[_event(key="k1", occurred_at=now - timedelta(days=40))]) == []
    other = events_record(events=[_event(key="k1", occurred_at=now, source="segment")])

    assert len(other) == 1
    assert Event.objects.filter(idempotency_key="k1").count() == 2


@postgresql_only
def test_the_first_of_two_rows_with_one_key_in_a_batch_wins():
    now = timezone.now()

    ids = events_record(
        events=[
            _event(key="a", occurred_at=now, name="first"),
            _event(key="b", occurred_at=now, name="other"),
            _event(key="a", occurred_at=now - timedelta(days=60), name="second"),
        ]
    )

    assert list(Event.objects.filter(pk__in=ids).order_by("id").values_list("name", flat=True)) == [
        "first",
        "other",
    ]


@postgresql_only
def test_history_written_as_it_is_claims_its_keys_once():
    now = timezone.now()
    events = [_event(key="demo:1", occurred_at=now, processed_at=now)]

    Event.objects.bulk_create(event_keys_claim(events=events))
    again = event_keys_claim(events=[_event(key="demo:1", occurred_at=now - timedelta(days=90))])

    assert again == []
    assert Event.objects.filter(idempotency_key="demo:1").count() == 1


@postgresql_only
def test_the_command_creates_the_months_ahead():
    # Given a day three months on, when the partitions made by the migration end
    later = month_start(timezone.now(), months=3) + timedelta(days=10)

    report = event_partitions_maintain(now=later, retention_months=0)

    assert report.created == [partition_name(month_start(later, months=n)) for n in (1, 2, 3)]
    assert set(event_partitions()) >= {month_start(later, months=n) for n in range(4)}
    # and a second run has nothing to do
    assert event_partitions_maintain(now=later, retention_months=0).created == []


@postgresql_only
def test_the_command_moves_history_out_of_the_default_partition():
    now = timezone.now()
    old = month_start(now, months=-20) + timedelta(days=4)
    (pk,) = events_record(events=[_event(key="history", occurred_at=old)])
    assert _partition_of(pk) == DEFAULT_PARTITION

    report = event_partitions_maintain(now=now, retention_months=0)

    assert report.created == [partition_name(month_start(old))]
    assert report.moved == 1
    assert _partition_of(pk) == partition_name(month_start(old))
    assert Event.objects.get(pk=pk).idempotency_key == "history"


@postgresql_only
def test_retention_drops_old_processed_months_and_keeps_unprocessed_ones():
    # Given processed events of 20 months ago (one that triggered an enrollment),
    # an unprocessed one of 18 months ago, and processed ones of this month
    now = timezone.now()
    long_ago = month_start(now, months=-20) + timedelta(days=2)
    pending_month = month_start(now, months=-18) + timedelta(days=2)
    old_ids = events_record(
        events=[
            _event(key="old-1", occurred_at=long_ago, received_at=long_ago),
            _event(key="old-2", occurred_at=long_ago, received_at=long_ago),
            _event(key="pending", occurred_at=pending_month, received_at=pending_month),
            _event(key="recent", occurred_at=now),
        ]
    )
    Event.objects.exclude(idempotency_key="pending").update(processed_at=now)
    enrollment = EnrollmentFactory.create(trigger_event_id=old_ids[0], lead=LeadFactory.create())
    event_partitions_maintain(now=now, retention_months=0)  # months of their own

    # when retention of 12 months is applied
    report = event_partitions_maintain(now=now, retention_months=12)

    # then the processed old month is gone, with its keys and references
    assert report.dropped == [partition_name(month_start(long_ago))]
    assert report.kept_unprocessed == [partition_name(month_start(pending_month))]
    assert not _table_exists(partition_name(month_start(long_ago)))
    assert set(Event.objects.values_list("idempotency_key", flat=True)) == {"pending", "recent"}
    enrollment.refresh_from_db()
    assert enrollment.trigger_event_id is None
    assert set(EventKey.objects.values_list("idempotency_key", flat=True)) == {"pending", "recent"}
    assert report.keys_deleted == 2


@postgresql_only
def test_retention_can_archive_instead_of_dropping():
    now = timezone.now()
    long_ago = month_start(now, months=-14) + timedelta(days=2)
    events_record(events=[_event(key="old", occurred_at=long_ago)])
    Event.objects.update(processed_at=now)
    event_partitions_maintain(now=now, retention_months=0)

    report = event_partitions_maintain(now=now, retention_months=12, archive=True)

    archived = f"leads_event_archive_{long_ago:%Y_%m}"
    assert report.archived == [archived]
    assert Event.objects.count() == 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT idempotency_key FROM {archived}")  # noqa: S608
        assert cursor.fetchall() == [("old",)]


@postgresql_only
def test_retention_deletes_old_processed_rows_of_the_default_partition():
    now = timezone.now()
    events_record(
        events=[
            _event(key="1970", occurred_at=now.replace(year=1970)),
            _event(key="1971", occurred_at=now.replace(year=1971)),
        ]
    )
    Event.objects.filter(idempotency_key="1970").update(processed_at=now)

    event_partitions_maintain(now=now, retention_months=12)

    assert list(Event.objects.values_list("idempotency_key", flat=True)) == ["1971"]


@postgresql_only
def test_the_command_reports_what_it_did(settings):
    settings.EVENT_RETENTION_MONTHS = 12
    now = timezone.now()
    long_ago = month_start(now, months=-30) + timedelta(days=1)
    events_record(events=[_event(key="old", occurred_at=long_ago, received_at=long_ago)])
    Event.objects.update(processed_at=now)
    event_partitions_maintain(now=now, retention_months=0)
    out = StringIO()

    call_command("events_partitions", stdout=out)

    assert out.getvalue() == (
        f"dropped: {partition_name(month_start(long_ago))}\nidempotency keys forgotten: 1\n"
    )


def _activity(**window) -> dict:
    return {"all": [{"activity": "page", "name": "Pricing", **window}]}


def test_without_retention_a_rule_may_count_ever(settings):
    settings.EVENT_RETENTION_MONTHS = 0

    assert validate(_activity()) == _activity()
    assert validate(_activity(within_days=400)) == _activity(within_days=400)


def test_a_rule_reaching_past_retention_is_refused(settings):
    settings.EVENT_RETENTION_MONTHS = 12

    with pytest.raises(ConditionError) as too_far:
        validate(_activity(within_days=400))
    with pytest.raises(ConditionError) as ever:
        validate(_activity())

    assert too_far.value.fields == {
        "all[0].within_days": ["Events are kept for 12 months. Count in the last 365 days at most."]
    }
    assert ever.value.fields == {
        "all[0]": [
            "Events are kept for 12 months. A rule cannot count them ever: count them in the "
            "last 365 days at most."
        ]
    }
    assert validate(_activity(within_days=365)) == _activity(within_days=365)


def test_dates_before_retention_are_refused(settings):
    settings.EVENT_RETENTION_MONTHS = 1
    today = timezone.localdate()
    earliest = today - timedelta(days=28)

    with pytest.raises(ConditionError) as refused:
        validate(_activity(between=[str(earliest - timedelta(days=1)), str(today)]))

    assert refused.value.fields == {
        "all[0].between": [f"Events are kept for 1 month. Choose dates from {earliest} on."]
    }
    assert validate(_activity(between=[str(earliest), str(today)]))


def test_a_flow_condition_reaching_past_retention_is_refused(settings):
    settings.EVENT_RETENTION_MONTHS = 6

    problems = config_problems(REGISTRY["condition"], {"conditions": _activity(within_days=200)})

    assert problems == {
        "conditions.all[0].within_days": [
            "Events are kept for 6 months. Count in the last 181 days at most."
        ]
    }


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_migration_converts_a_table_of_events():
    from django.db.migrations.executor import MigrationExecutor

    def migrate(target: tuple[str, str] | None) -> None:
        """To ``target``, or with None to every app's latest migration."""
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([target] if target else executor.loader.graph.leaf_nodes())

    latest = None
    before = set(event_partitions())
    now = timezone.now()
    long_ago = month_start(now, months=-7) + timedelta(days=3)
    migrate(("leads", "0023_lead_hot_owner_index"))
    try:
        # Given the plain table with events of this month and of seven months ago
        with connection.cursor() as cursor:
            for key, at in (("a", now), ("b", long_ago), ("c", now.replace(year=1970))):
                cursor.execute(
                    "INSERT INTO leads_event (type, name, properties, context, user_id, "
                    "anonymous_id, email, occurred_at, received_at, source, idempotency_key, "
                    "error, attempts, depth) VALUES ('track', 'x', '{}', '{}', 'u', '', '', "
                    "%s, %s, 'api', %s, '', 0, 0) RETURNING id",
                    [at, now, key],
                )

        # when it is migrated
        migrate(latest)
    finally:
        migrate(latest)

    # then every event is in its month's partition (the far one in the default)
    by_key = dict(Event.objects.values_list("idempotency_key", "pk"))
    assert {key: _partition_of(pk) for key, pk in by_key.items()} == {
        "a": partition_name(month_start(now)),
        "b": partition_name(month_start(long_ago)),
        "c": DEFAULT_PARTITION,
    }
    # its keys are claimed, and new events take ids after the old ones
    assert events_record(events=[_event(key="b", occurred_at=now)]) == [by_key["b"]]
    (new,) = events_record(events=[_event(key="d", occurred_at=now)])
    assert new > max(by_key.values())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'leads_event'::regclass "
            "AND contype IN ('p', 'f', 'u') ORDER BY contype, conname"
        )
        constraints = [row[0] for row in cursor.fetchall()]
    assert constraints[-1] == "leads_event_pkey"
    assert constraints[0].startswith("leads_event_lead_id_")
    assert len(constraints) == 2
    # A flush empties tables but keeps tables: the next tests find the months they expect.
    with connection.cursor() as cursor:
        for start in set(event_partitions()) - before:
            cursor.execute(f"DROP TABLE {partition_name(start)}")

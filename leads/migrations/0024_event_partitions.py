"""On PostgreSQL, the events table partitioned by month of ``occurred_at``.

A partitioned table cannot be made from a table in place: a new one is created
like the old, given a partition per month found in the data (and the months
ahead), filled with a copy, and swapped in by name; the old one's indexes and
foreign keys are made again on it under their names. The global dedupe moves to
``leads_eventkey`` (filled from the copy), since a unique index on a
partitioned table must hold the partition key. The old table is locked for the
copy: fine for the accounts there are; SCALING.md says how a large one would do
it online. SQLite keeps its plain table and only gets the (unused) key table.

Self-contained on purpose: the daily command (leads/services/partitions.py) may
change, this must keep doing what it did.
"""

from datetime import UTC, datetime

from django.db import migrations, models
from django.utils import timezone

TABLE = "leads_event"
NEW = "leads_event_partitioned"
OLD = "leads_event_plain"
MONTHS_AHEAD = 3
HISTORY_MONTHS = 120


def _month(moment, months=0):
    moment = moment.astimezone(UTC)
    index = moment.year * 12 + moment.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _indexes_and_foreign_keys(cursor, table):
    """The definitions of ``table``'s indexes (but its primary key and unique
    constraints) and foreign keys, to make them again on its replacement."""
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND NOT EXISTS "
        "(SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        [table],
    )
    indexes = cursor.fetchall()
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f'",
        [table],
    )
    return indexes, cursor.fetchall()


def _swap(cursor, indexes, foreign_keys):
    """Drop the old table, give the new one its name, sequence name, indexes
    and foreign keys."""
    cursor.execute(f"DROP TABLE {OLD}")
    cursor.execute(f"ALTER TABLE {NEW} RENAME TO {TABLE}")
    cursor.execute(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')")
    sequence = cursor.fetchone()[0]
    if sequence and sequence != f"public.{TABLE}_id_seq":
        cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {TABLE}_id_seq")
    cursor.execute(f"ALTER TABLE {TABLE} RENAME CONSTRAINT {NEW}_pkey TO {TABLE}_pkey")
    for _name, definition in indexes:
        cursor.execute(definition)
    for name, definition in foreign_keys:
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}")


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        indexes, foreign_keys = _indexes_and_foreign_keys(cursor, TABLE)
        cursor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT event_idempotency")
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
        for name, _definition in indexes:
            cursor.execute(f"ALTER INDEX {name} RENAME TO {name[:50]}_plain")
        cursor.execute(
            f"CREATE TABLE {NEW} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY "
            "INCLUDING CONSTRAINTS INCLUDING STORAGE) PARTITION BY RANGE (occurred_at)"
        )
        cursor.execute(f"ALTER TABLE {NEW} ADD PRIMARY KEY (id, occurred_at)")
        now = timezone.now()
        months = {_month(now, n) for n in range(MONTHS_AHEAD + 1)}
        cursor.execute(
            "SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') "
            f"FROM {OLD} WHERE occurred_at >= %s AND occurred_at < %s",
            [_month(now, -HISTORY_MONTHS), _month(now, MONTHS_AHEAD + 1)],
        )
        months |= {row[0].replace(tzinfo=UTC) for row in cursor.fetchall()}
        for start in sorted(months):
            cursor.execute(
                f"CREATE TABLE {TABLE}_p{start.year:04d}_{start.month:02d} PARTITION OF {NEW} "
                "FOR VALUES FROM (%s) TO (%s)",
                [start, _month(start, 1)],
            )
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {NEW} DEFAULT")
        cursor.execute(f"INSERT INTO {NEW} SELECT * FROM {OLD}")
        cursor.execute(
            "INSERT INTO leads_eventkey (source, idempotency_key, received_at) "
            f"SELECT source, idempotency_key, received_at FROM {OLD}"
        )
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{NEW}', 'id'), "
            f"coalesce((SELECT max(id) FROM {OLD}), 0) + 1, false)"
        )
        _swap(cursor, indexes, foreign_keys)
        # Keys are forgotten by the day they came (manage.py events_partitions): a
        # block range index costs inserts nearly nothing, as rows come in that order.
        cursor.execute(
            "CREATE INDEX event_key_received_brin ON leads_eventkey USING brin (received_at)"
        )


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = %s::regclass)",
            [TABLE],
        )
        if not cursor.fetchone()[0]:
            return
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        indexes, foreign_keys = _indexes_and_foreign_keys(cursor, TABLE)
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
        for name, _definition in indexes:
            cursor.execute(f"ALTER INDEX {name} RENAME TO {name[:50]}_plain")
        cursor.execute(
            f"CREATE TABLE {NEW} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY "
            "INCLUDING CONSTRAINTS INCLUDING STORAGE)"
        )
        cursor.execute(f"INSERT INTO {NEW} SELECT * FROM {OLD}")
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{NEW}', 'id'), "
            f"coalesce((SELECT max(id) FROM {OLD}), 0) + 1, false)"
        )
        cursor.execute(f"ALTER TABLE {NEW} ADD PRIMARY KEY (id)")
        cursor.execute(
            f"ALTER TABLE {NEW} ADD CONSTRAINT event_idempotency "
            "UNIQUE (source, idempotency_key)"
        )
        # Dropping the partitioned table drops its partitions; detached archives
        # (leads_event_archive_…) stay as they are.
        _swap(cursor, indexes, foreign_keys)

class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0023_lead_hot_owner_index"),
        # Its foreign key to the events is gone before the table is swapped.
        ("flows", "0009_enrollment_trigger_event_no_constraint"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("source", models.CharField(max_length=40)),
                ("idempotency_key", models.CharField(max_length=255)),
                ("received_at", models.DateTimeField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("source", "idempotency_key"), name="event_key_unique"
                    )
                ],
            },
        ),
        migrations.RunPython(partition, unpartition),
    ]

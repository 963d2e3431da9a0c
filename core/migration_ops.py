"""Operations our migrations share."""

from __future__ import annotations

from django.db import migrations, models


def lead_index_dropped(
    *, table: str, index: str, model_name: str, field: models.ForeignKey[object, object]
) -> migrations.SeparateDatabaseAndState:
    """Drop the index Django made for a foreign key to the lead (``index`` on
    ``table``), where a composite index that leads with the lead serves every
    read by lead, and each index is a write on every insert. Only the index
    goes: Django's own AlterField would drop and re-add the foreign key, which
    checks every row again under a lock that stops the table's writes.
    ``field``: the foreign key as it is now, with ``db_index=False``."""
    return migrations.SeparateDatabaseAndState(
        database_operations=[
            migrations.RunSQL(
                sql=f'DROP INDEX IF EXISTS "{index}"',
                reverse_sql=f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("lead_id")',
            )
        ],
        state_operations=[migrations.AlterField(model_name=model_name, name="lead", field=field)],
    )

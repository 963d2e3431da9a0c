import django.db.models.deletion
from django.db import migrations, models

# The events' and the stays' own index on lead_id: the timeline's (lead_id,
# occurred_at) and the stays' (lead_id, segment_id) serve every read by lead,
# and each index is a write on every insert. Only the indexes go: Django's own
# AlterField would drop and re-add the foreign key, which checks every event
# again under a lock that stops ingest.
INDEXES = [
    ("leads_event", "leads_event_lead_id_feb552a3"),
    ("leads_segmentmembership", "leads_segmentmembership_lead_id_c0d0b4fd"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0024_event_partitions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{index}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("lead_id")',
                )
                for table, index in INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="event",
                    name="lead",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="leads.lead",
                    ),
                ),
                migrations.AlterField(
                    model_name="segmentmembership",
                    name="lead",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to="leads.lead",
                    ),
                ),
            ],
        ),
    ]

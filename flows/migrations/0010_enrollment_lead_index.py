import django.db.models.deletion
from django.db import migrations, models

# The enrollments' own index on lead_id: (lead_id, flow_id, created_at) serves every read by lead, and each index is a write on every enrollment. Only the index goes: Django's own AlterField would drop and re-add the
# foreign key, which checks every row again under a lock.
TABLE, INDEX = "flows_enrollment", "flows_enrollment_lead_id_56ec4d22"


class Migration(migrations.Migration):
    dependencies = [
        ("flows", "0009_enrollment_trigger_event_no_constraint"),
        ("leads", "0025_drop_redundant_lead_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "{TABLE}" ("lead_id")',
                )
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="enrollment",
                    name="lead",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="enrollments",
                        to="leads.lead",
                    ),
                ),
            ],
        ),
    ]

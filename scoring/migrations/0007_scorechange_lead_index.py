import django.db.models.deletion
from django.db import migrations, models

# The ledger's own index on lead_id: (lead_id, created_at) and (lead_id, occurred_at) serve every read by lead, and each index is a write on every score change. Only the index goes: Django's own AlterField would drop and re-add the
# foreign key, which checks every row again under a lock.
TABLE, INDEX = "scoring_scorechange", "scoring_scorechange_lead_id_1171402a"


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0006_score_history_reads_the_index"),
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
                    model_name="scorechange",
                    name="lead",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="score_changes",
                        to="leads.lead",
                    ),
                ),
            ],
        ),
    ]

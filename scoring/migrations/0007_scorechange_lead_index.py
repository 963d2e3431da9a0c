import django.db.models.deletion
from django.db import migrations, models

from core.migration_ops import lead_index_dropped

# The ledger's own index on lead_id: (lead_id, created_at) and (lead_id,
# occurred_at) serve every read by lead.


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0006_score_history_reads_the_index"),
        ("leads", "0025_drop_redundant_lead_indexes"),
    ]

    operations = [
        lead_index_dropped(
            table="scoring_scorechange",
            index="scoring_scorechange_lead_id_1171402a",
            model_name="scorechange",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="score_changes",
                to="leads.lead",
            ),
        ),
    ]

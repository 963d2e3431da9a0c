import django.db.models.deletion
from django.db import migrations, models

from core.migration_ops import lead_index_dropped

# The enrollments' own index on lead_id: (lead_id, flow_id, created_at) serves
# every read by lead.


class Migration(migrations.Migration):
    dependencies = [
        ("flows", "0009_enrollment_trigger_event_no_constraint"),
        ("leads", "0025_drop_redundant_lead_indexes"),
    ]

    operations = [
        lead_index_dropped(
            table="flows_enrollment",
            index="flows_enrollment_lead_id_56ec4d22",
            model_name="enrollment",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="enrollments",
                to="leads.lead",
            ),
        ),
    ]

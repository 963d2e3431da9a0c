import django.db.models.deletion
from django.db import migrations, models

from core.migration_ops import lead_index_dropped

# The events' and the stays' own index on lead_id: the timeline's (lead_id,
# occurred_at) and the stays' (lead_id, segment_id) serve every read by lead.


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0024_event_partitions"),
    ]

    operations = [
        lead_index_dropped(
            table="leads_event",
            index="leads_event_lead_id_feb552a3",
            model_name="event",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="leads.lead",
            ),
        ),
        lead_index_dropped(
            table="leads_segmentmembership",
            index="leads_segmentmembership_lead_id_c0d0b4fd",
            model_name="segmentmembership",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="memberships",
                to="leads.lead",
            ),
        ),
    ]

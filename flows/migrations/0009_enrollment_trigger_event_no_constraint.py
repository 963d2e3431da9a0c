import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """The trigger event keeps no foreign key in the database: on PostgreSQL the
    events table becomes partitioned by month (leads 0023), and a foreign key to
    it would have to include the partition key."""

    dependencies = [
        ("flows", "0008_flow_name_unique"),
    ]

    operations = [
        migrations.AlterField(
            model_name="enrollment",
            name="trigger_event",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="leads.event",
            ),
        ),
    ]

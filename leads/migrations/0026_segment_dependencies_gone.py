from django.db import migrations

# The keys a segment depends on are read from its conditions, once per batch,
# by the per-lead check (segments.check.segment_index); the table that also
# kept them was written at every save and never read.


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0025_drop_redundant_lead_indexes"),
    ]

    operations = [
        migrations.DeleteModel(
            name="SegmentDependency",
        ),
    ]
